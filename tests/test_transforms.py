"""Frame transform, Sim2Real (Meta-World mocap semantics) and Real2Sim (FK observation)."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before the first mujoco import of the session

import warnings

import numpy as np
import pytest

from sim2real.kinematics import TOP_DOWN_ROT, forward_kinematics
from sim2real.observation import OBS_DIM
from sim2real.transforms import (
    METAWORLD_EE_OFFSET_M, CartesianCommand, FrameTransform, Real2Sim, Sim2Real,
)

Q_NOMINAL = np.deg2rad([90.0, 30.0, 0.0, -90.0, 0.0, 60.0, 0.0])
TILTED = FrameTransform.from_pos_quat([0.3, -0.2, 0.1], [np.cos(0.4), 0.1, 0.2, np.sin(0.4)])


@pytest.fixture(scope="module")
def metaworld_reach():
    """A real Meta-World reach-v3 env (Sawyer, mocap) with its first MT1 task set."""
    import metaworld  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mt1 = metaworld.MT1("reach-v3", seed=0)
        env = mt1.train_classes["reach-v3"]()
        env.set_task(mt1.train_tasks[0])
        env.reset()
    return env


# --- FrameTransform ------------------------------------------------------------------------------
def test_frame_round_trip_and_rigidity():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(20, 3))
    np.testing.assert_allclose(TILTED.to_base(TILTED.to_sim(p)), p, atol=1e-12)
    # distances are preserved, and the base origin lands on the translation
    d_base = np.linalg.norm(p[1:] - p[:-1], axis=1)
    d_sim = np.linalg.norm(TILTED.to_sim(p)[1:] - TILTED.to_sim(p)[:-1], axis=1)
    np.testing.assert_allclose(d_sim, d_base, atol=1e-12)
    np.testing.assert_allclose(TILTED.to_sim(np.zeros(3)), [0.3, -0.2, 0.1])
    r = TOP_DOWN_ROT
    np.testing.assert_allclose(TILTED.rotation_to_base(TILTED.rotation_to_sim(r)), r, atol=1e-12)


def test_default_frame_is_the_scene_arm_base():
    f = FrameTransform.default()
    np.testing.assert_allclose(f.to_sim([0.0, 0.0, 0.0]), [0.0, 0.1, 0.0])
    np.testing.assert_allclose(f.rotation, np.eye(3))


def test_frame_dict_round_trip_ros_layout():
    d = TILTED.to_dict()
    assert set(d) == {"translation", "rotation"} and set(d["rotation"]) == {"x", "y", "z", "w"}
    back = FrameTransform.from_dict(d)
    np.testing.assert_allclose(back.rotation, TILTED.rotation, atol=1e-12)
    np.testing.assert_allclose(back.translation, TILTED.translation)


def test_frame_bad_input():
    with pytest.raises(ValueError, match="rotation matrix"):
        FrameTransform(np.zeros(3), np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match="quaternion"):
        FrameTransform.from_pos_quat([0, 0, 0], [0, 0, 0, 0])
    with pytest.raises(ValueError, match="translation"):
        FrameTransform.from_dict({"translation": {"x": 1.0}, "rotation": {"x": 0, "y": 0, "z": 0, "w": 1}})


# --- Sim2Real ------------------------------------------------------------------------------------
def test_target_accumulates_exactly_like_metaworld_mocap(metaworld_reach):
    # Meta-World's own set_xyz_action on its mocap, against Sim2Real, same random actions (some beyond
    # [-1, 1] and some that push into the mocap bounds)
    env = metaworld_reach
    s2r = Sim2Real(frame=FrameTransform.default())
    s2r.reset(env.data.mocap_pos[0] - [0.0, 0.0, METAWORLD_EE_OFFSET_M])  # the TCP below the hand
    np.testing.assert_allclose(s2r.target_sim, env.data.mocap_pos[0], atol=1e-12)
    rng = np.random.default_rng(0)
    for k in range(300):
        a = rng.uniform(-1.5, 1.5, 4) + (np.array([0.0, 0.0, 1.2, 0.0]) if k < 60 else 0.0)
        env.set_xyz_action(a[:3])
        s2r.command(a)
        np.testing.assert_allclose(s2r.target_sim, env.data.mocap_pos[0], atol=1e-12)


def test_gripper_sign_follows_metaworld(metaworld_reach):
    # In Meta-World a[3] = +1 closes the claws (pads come together), -1 opens them
    env = metaworld_reach
    for _ in range(15):
        obs_open = env.step(np.array([0.0, 0.0, 0.0, -1.0]))[0]
    for _ in range(15):
        obs_closed = env.step(np.array([0.0, 0.0, 0.0, 1.0]))[0]
    assert obs_closed[3] < obs_open[3] - 0.3  # obs[3]: normalised pad distance
    s2r = Sim2Real()
    s2r.reset([0.0, 0.6, 0.2])
    fractions = [s2r.command([0.0, 0.0, 0.0, g]).gripper for g in (-1.0, 0.0, 0.02, 0.04, 1.0, 3.0)]
    assert fractions == [0.0, 0.0, 0.5, 1.0, 1.0, 1.0]  # Meta-World's Sawyer: open at <= 0, closed from 0.04


def test_command_is_the_tcp_target_in_the_base_frame():
    s2r = Sim2Real(frame=TILTED, workspace_low_sim=None, workspace_high_sim=None)
    s2r.reset([0.1, 0.6, 0.3])  # measured TCP; the ee point is METAWORLD_EE_OFFSET_M above it
    cmd = s2r.command([1.0, 0.0, -1.0, 0.2], stamp=12.5)
    assert isinstance(cmd, CartesianCommand) and cmd.stamp == 12.5
    ee_sim = np.array([0.11, 0.6, 0.29 + METAWORLD_EE_OFFSET_M])
    np.testing.assert_allclose(s2r.target_sim, ee_sim)
    # the TCP lies METAWORLD_EE_OFFSET_M below the ee point (top-down in the sim frame)
    np.testing.assert_allclose(TILTED.to_sim(cmd.position_base), ee_sim - [0.0, 0.0, METAWORLD_EE_OFFSET_M],
                               atol=1e-12)


def test_joint_targets_reach_the_command():
    s2r = Sim2Real()
    s2r.reset([0.0, 0.6, 0.2])
    q = Q_NOMINAL
    for _ in range(30):
        cmd = s2r.command([0.5, 0.8, -0.3, 0.0])
        res = s2r.joint_targets(cmd, q)
        assert res.converged
        pos, rot = forward_kinematics(res.q)
        assert np.linalg.norm(pos - cmd.position_base) < 1e-3
        np.testing.assert_allclose(rot, TOP_DOWN_ROT, atol=5e-3)
        q = res.q


def test_sim2real_errors():
    s2r = Sim2Real()
    with pytest.raises(RuntimeError, match="reset"):
        s2r.command([0.0, 0.0, 0.0, 0.0])
    s2r.reset([0.0, 0.6, 0.2])
    with pytest.raises(ValueError, match="4 finite"):
        s2r.command([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="4 finite"):
        s2r.command([0.0, np.nan, 0.0, 0.0])
    with pytest.raises(ValueError, match="workspace"):
        Sim2Real(workspace_low_sim=[0, 0, 0], workspace_high_sim=None)
    with pytest.raises(ValueError, match="below"):
        Sim2Real(workspace_low_sim=[0, 1, 0], workspace_high_sim=[1, 0, 1])


def test_gripper_opening_fills_the_zero_slot_only_when_asked():
    """On the real KUKA + 2F-85 Meta-World scene: the opening reads ~0.93 open and drops when the fingers close on
    nothing; the paper's layout keeps the slot zero; bad openings are refused."""
    from legion_sim.metaworld_env import MetaWorldTaskEnv
    from sim2real.observation import GRIPPER_SLOT, build_observation, from_metaworld, gripper_opening

    env = MetaWorldTaskEnv("pick-place-v3", seed=1, robot="kuka", control="joint")
    paper, info = env.reset()
    opened = from_metaworld(info["obs39"], with_gripper=True)
    for _ in range(15):
        env.step(np.array([0.0, 0.0, 0.0, 1.0]))  # close, far above the puck
    closed = from_metaworld(env._obs39, with_gripper=True)
    assert paper[GRIPPER_SLOT] == 0.0 and from_metaworld(env._obs39)[GRIPPER_SLOT] == 0.0
    assert opened[GRIPPER_SLOT] > 0.8 and closed[GRIPPER_SLOT] < 0.2
    np.testing.assert_array_equal(np.delete(opened, GRIPPER_SLOT), np.delete(paper, GRIPPER_SLOT))
    assert gripper_opening(0.05) == 0.5 and gripper_opening(0.3) == 1.0
    obs = build_observation([0.0, 0.6, 0.2], [0.1, 0.7, 0.02], [0.0, 0.8, 0.2], gripper=gripper_opening(0.047))
    assert obs[GRIPPER_SLOT] == pytest.approx(0.47) and obs[7] == obs[8] == 0.0
    for bad in (1.2, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"gripper opening must lie in \[0, 1\]"):
            build_observation([0.0, 0.6, 0.2], [0.1, 0.7, 0.02], [0.0, 0.8, 0.2], gripper=bad)
    with pytest.raises(ValueError, match="pad distance must be a finite distance >= 0"):
        gripper_opening(-0.01)


# --- Real2Sim ------------------------------------------------------------------------------------
def test_observation_layout_from_joint_state():
    r2s = Real2Sim(frame=TILTED)
    obj, goal = np.array([0.05, 0.65, 0.02]), np.array([-0.1, 0.85, 0.2])
    s = r2s.observation(Q_NOMINAL, obj, goal)
    assert s.shape == (OBS_DIM,) and s.dtype == np.float32
    pos, rot = forward_kinematics(Q_NOMINAL)
    np.testing.assert_allclose(s[0:3], TILTED.to_sim(pos - METAWORLD_EE_OFFSET_M * rot[:, 2]), atol=1e-6)
    np.testing.assert_allclose(s[3:6], obj, atol=1e-6)
    np.testing.assert_allclose(s[6:9], 0.0)
    np.testing.assert_allclose(s[9:12], goal, atol=1e-6)
    np.testing.assert_allclose(r2s.tcp_position(Q_NOMINAL), TILTED.to_sim(pos), atol=1e-12)
    # object and goal given in the base frame are moved to the sim frame
    s_base = r2s.observation(Q_NOMINAL, TILTED.to_base(obj), TILTED.to_base(goal), frame="base")
    np.testing.assert_allclose(s_base, s, atol=1e-6)


def test_sim2real_after_real2sim_closes_the_loop():
    # start Sim2Real at the measured TCP, command zero motion: IK returns (nearly) the same joints, and
    # the target Sim2Real accumulates is the ee point the policy observes
    r2s, s2r = Real2Sim(), Sim2Real()
    q0 = s2r.kinematics.solve_ik(s2r.frame.to_base([0.05, 0.65, 0.2]), Q_NOMINAL).q
    s2r.reset(r2s.tcp_position(q0))
    np.testing.assert_allclose(s2r.target_sim, r2s.ee_position(q0), atol=1e-3)
    res = s2r.joint_targets(s2r.command(np.zeros(4)), q0)
    assert res.converged
    np.testing.assert_allclose(r2s.tcp_position(res.q), r2s.tcp_position(q0), atol=1e-3)


def test_joint_state_reordering():
    names = [f"lbr_A{i}" for i in range(1, 8)]
    r2s = Real2Sim(joint_names=names)
    order = [3, 0, 6, 1, 5, 2, 4]
    q = r2s.joint_positions([names[i] for i in order] + ["robotiq_85_left_knuckle_joint"],
                            list(Q_NOMINAL[order]) + [0.3])
    np.testing.assert_allclose(q, Q_NOMINAL)
    with pytest.raises(ValueError, match="lacks joints"):
        r2s.joint_positions(names[:6], Q_NOMINAL[:6])
    with pytest.raises(ValueError, match="names but"):
        r2s.joint_positions(names, Q_NOMINAL[:6])
    with pytest.raises(ValueError, match="frame"):
        r2s.observation(Q_NOMINAL, np.zeros(3), np.zeros(3), frame="camera")
    with pytest.raises(ValueError, match="7 distinct"):
        Real2Sim(joint_names=names[:6])


def test_workspace_offset_shifts_every_point_of_the_observation():
    r2s = Real2Sim()
    q = np.deg2rad([90.0, 30.0, 0.0, -90.0, 0.0, 60.0, 0.0])
    plain = r2s.observation(q, [0.1, 0.7, 0.02], [0.0, 0.8, 0.2])
    r2s.workspace_offset_sim = np.array([0.3, 0.05, 0.0])
    shifted = r2s.observation(q, [0.1, 0.7, 0.02], [0.0, 0.8, 0.2])
    for part in (slice(0, 3), slice(3, 6), slice(9, 12)):
        np.testing.assert_allclose(shifted[part], plain[part] - [0.3, 0.05, 0.0], atol=1e-6)
