"""The MuJoCo KUKA iiwa 14 + Robotiq 2F-85 plant, driven by Meta-World's scripted experts through
Sim2Real + IK + joint targets, and checked against Meta-World's own envs."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before the first mujoco import of the session

import warnings

import mujoco
import numpy as np
import pytest

from legion_sim.kuka_scene import GRIPPER_CLOSED_RAD, ServoGains, build_kuka_scene
from legion_sim.plant import TASKS, KukaPlant
from sim2real.kinematics import JOINT_LIMITS_RAD
from sim2real.transforms import METAWORLD_EE_OFFSET_M, Real2Sim, Sim2Real


@pytest.fixture(scope="module")
def reach():
    with KukaPlant("reach-v3", seed=0) as plant:
        yield plant


@pytest.fixture(scope="module")
def drawer():
    with KukaPlant("drawer-close-v3", seed=0) as plant:
        yield plant


def metaworld_env(task: str):
    """Meta-World's own env for ``task`` with its first MT1 task set."""
    import metaworld  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mt1 = metaworld.MT1(task, seed=0)
        env = mt1.train_classes[task]()
        env.set_task(mt1.train_tasks[0])
    return env


def run_expert(plant: KukaPlant, policy, episodes: int, max_steps: int = 150) -> list[int | None]:
    """Meta-World's scripted policy -> Sim2Real -> IK -> joint targets, observations by Real2Sim (FK).

    Returns the step at which each episode first succeeded (None: not within max_steps).
    """
    s2r, r2s = Sim2Real(plant.frame), Real2Sim(plant.frame)
    result = []
    for ep in range(episodes):
        plant.reset(seed=100 + ep)
        q, _ = plant.joint_state()
        s2r.reset(r2s.tcp_position(q))
        q_cmd, done = q, None
        for t in range(max_steps):
            q, _ = plant.joint_state()
            s = r2s.observation(q, plant.object_position(), plant.goal_position())
            obs39 = np.zeros(39)  # Meta-World layout: hand 0:3, object 4:7, goal 36:39
            obs39[0:3], obs39[4:7], obs39[36:39] = s[0:3], s[3:6], s[9:12]
            cmd = s2r.command(policy.get_action(obs39), stamp=t * plant.dt)
            ik = s2r.joint_targets(cmd, q_cmd)
            assert np.all(np.abs(ik.q) < JOINT_LIMITS_RAD)  # IK never leaves the limits
            q_cmd = ik.q
            plant.step(q_cmd, cmd.gripper)
            if plant.success():
                done = t + 1
                break
        result.append(done)
    return result


@pytest.mark.filterwarnings("ignore:Constant.s. may be too high")
def test_reach_expert_succeeds(reach):
    from metaworld.policies import SawyerReachV3Policy  # noqa: PLC0415

    steps = run_expert(reach, SawyerReachV3Policy(), episodes=10)
    print("reach-v3 steps to success:", steps)
    assert sum(s is not None for s in steps) >= 9, steps


@pytest.mark.filterwarnings("ignore:Constant.s. may be too high")
def test_drawer_close_expert_succeeds(drawer):
    from metaworld.policies import SawyerDrawerCloseV3Policy  # noqa: PLC0415

    steps = run_expert(drawer, SawyerDrawerCloseV3Policy(), episodes=10)
    print("drawer-close-v3 steps to success:", steps)
    assert sum(s is not None for s in steps) >= 8, steps


def test_api_shapes_and_start_posture(reach):
    reach.reset(seed=3)
    assert reach.joint_names == [f"lbr_iiwa_joint_{i}" for i in range(1, 8)] and reach.dt == 0.05
    q, qd = reach.joint_state()
    assert q.shape == qd.shape == (7,) and np.all(qd == 0.0)
    # the ee point (Meta-World's hand) starts at the task's hand_init_pos, top-down, gripper open
    np.testing.assert_allclose(reach.ee_position(), [0.0, 0.6, 0.2], atol=1e-3)
    np.testing.assert_allclose(Real2Sim(reach.frame).ee_position(q), reach.ee_position(), atol=1e-6)
    assert 0.0 <= reach.gripper_position() < 0.05  # open: Menagerie's spring links rest the driver at ~0.04 rad
    for v in (reach.object_position(), reach.goal_position(), reach.tcp_position()):
        assert v.shape == (3,) and np.all(np.isfinite(v))
    assert not reach.success()


def test_reset_is_seeded_and_follows_metaworld_distribution(reach, drawer):
    reach.reset(seed=7)
    a = reach.object_position(), reach.goal_position()
    reach.reset(seed=7)
    np.testing.assert_array_equal(a[0], reach.object_position())
    np.testing.assert_array_equal(a[1], reach.goal_position())
    objs, goals = [], []
    for s in range(30):
        reach.reset(seed=s)
        objs.append(reach.object_position())
        goals.append(reach.goal_position())
    objs, goals = np.array(objs), np.array(goals)
    # reach-v3: obj in [-0.1, 0.1] x [0.6, 0.7] x 0.02, goal in [-0.1, 0.1] x [0.8, 0.9] x [0.05, 0.3],
    # at least 0.15 m apart in the plane
    assert np.all(objs[:, :2] >= [-0.1, 0.6]) and np.all(objs[:, :2] <= [0.1, 0.7])
    assert np.all(goals >= [-0.1, 0.8, 0.05]) and np.all(goals <= [0.1, 0.9, 0.3])
    assert np.all(np.linalg.norm(objs[:, :2] - goals[:, :2], axis=1) >= 0.15)
    assert np.unique(goals[:, 0]).size == 30
    xs = []
    for s in range(10):
        drawer.reset(seed=s)
        xs.append(drawer.goal_position()[0])
        assert not drawer.success()  # the drawer starts pulled out
    assert np.all(np.abs(xs) <= 0.1) and np.unique(xs).size == 10


@pytest.mark.parametrize("task", TASKS)
def test_object_and_goal_match_metaworld(task):
    # every one of the ten tasks: the same placement in Meta-World's own Sawyer env gives the same object and goal
    with KukaPlant(task, seed=11) as plant:
        rand_vec = plant._task.env._last_rand_vec.copy()
        assert not plant.success()  # no task starts solved
        env = metaworld_env(task)
        env._last_rand_vec, env._freeze_rand_vec = rand_vec, True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env.reset()
        mujoco.mj_forward(env.model, env.data)  # window-close's reset opens the window after its last forward
        np.testing.assert_allclose(env._get_pos_objects(), plant.object_position(), atol=2e-3)
        np.testing.assert_allclose(env._target_pos, plant.goal_position(), atol=1e-4)  # push: the settled puck's z
        np.testing.assert_allclose(plant.metaworld_observation()[36:39], plant.goal_position())


def test_holding_still_and_tracking(reach):
    reach.reset(seed=0)
    q0, _ = reach.joint_state()
    for _ in range(20):
        reach.step(q0, 0.0)
    q, qd = reach.joint_state()
    assert np.max(np.abs(q - q0)) < 2e-3 and np.max(np.abs(qd)) < 1e-2  # gravity compensated servo
    target = q0 + np.deg2rad([5, -5, 5, 5, -5, 5, 5])
    for _ in range(20):  # 1 s
        reach.step(target, 0.0)
    assert np.max(np.abs(reach.joint_state()[0] - target)) < np.deg2rad(0.5)
    assert np.isclose(reach.data.time, 40 * 0.05)


def test_gripper_closes_parallel_and_reopens(reach):
    reach.reset(seed=0)
    q0, _ = reach.joint_state()
    pads = reach._pads
    gap_open = np.linalg.norm(np.subtract(*reach.data.site_xpos[pads]))
    for _ in range(20):
        reach.step(q0, 1.0)
    assert abs(reach.gripper_position() - GRIPPER_CLOSED_RAD) < 0.02
    gap_closed = np.linalg.norm(np.subtract(*reach.data.site_xpos[pads]))
    assert 0.085 <= gap_open - 0.008 <= 0.087 and gap_closed < 0.01  # 2F-85: 85 mm stroke (pad centres 4 mm in)
    # the 4-bar linkage keeps the pads parallel to the gripper axis
    hand_z = reach.data.xmat[reach.model.body("gripper/robotiq_85_adapter_link").id].reshape(3, 3)[:, 2]
    for g in pads:
        assert abs(reach.data.site_xmat[g].reshape(3, 3)[:, 2] @ hand_z) > 0.999
    # the closed pads meet at the fixed TCP, which is FK's TCP
    fk_tcp = Real2Sim(reach.frame).tcp_position(reach.joint_state()[0])
    np.testing.assert_allclose(reach.pad_midpoint(), reach.tcp_position(), atol=1e-3)
    np.testing.assert_allclose(fk_tcp, reach.tcp_position(), atol=1e-3)
    for _ in range(20):
        reach.step(q0, 0.0)
    assert reach.gripper_position() < 0.02


def test_step_rejects_bad_commands(reach):
    reach.reset(seed=0)
    q0, _ = reach.joint_state()
    for bad in (q0[:6], np.r_[q0[:6], np.nan], np.r_[q0[:6], np.deg2rad(176.0)]):
        with pytest.raises(ValueError, match="q_target"):
            reach.step(bad, 0.0)
    for g in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError, match="gripper"):
            reach.step(q0, g)
    with pytest.raises(ValueError, match="unknown task 'assembly-v3'; the KUKA plant runs the paper's ten tasks"):
        KukaPlant("assembly-v3")


def test_scene_builder_rejects_bad_input(tmp_path):
    xml = tmp_path / "empty.xml"
    xml.write_text("<mujoco><worldbody/></mujoco>")
    with pytest.raises(ValueError, match="Sawyer"):
        build_kuka_scene(str(xml))
    with pytest.raises(ValueError, match="kp"):
        ServoGains(kp=(1.0,) * 6)


def test_metaworld_observation_layout(drawer):
    drawer.reset(seed=0)
    obs = drawer.metaworld_observation()
    assert obs.shape == (39,)
    np.testing.assert_allclose(obs[0:3], drawer.ee_position())
    np.testing.assert_allclose(obs[4:7], drawer.object_position())
    np.testing.assert_allclose(obs[36:39], drawer.goal_position())
    # open gripper: the pads sit 1.2 cm above the closed-gripper TCP, so 3.3 cm below the ee point ...
    np.testing.assert_allclose(drawer.ee_position() - drawer.pad_midpoint(), [0, 0, METAWORLD_EE_OFFSET_M - 0.012],
                               atol=2e-3)
    # ... while the fixed TCP stays 4.5 cm below it at any opening, like Meta-World's tcp_center below the hand
    np.testing.assert_allclose(drawer.ee_position() - drawer.tcp_position(), [0, 0, METAWORLD_EE_OFFSET_M], atol=1e-6)


def test_render_is_an_upright_rgb_image(reach):
    reach.reset(seed=0)
    img = reach.render(320, 240)
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8 and img.std() > 10
    # upright: the wooden table top (red > blue) fills the bottom of the picture, not the top
    bottom, top = img[-60:].astype(float), img[:60].astype(float)
    assert (bottom[..., 0] - bottom[..., 2]).mean() > (top[..., 0] - top[..., 2]).mean() + 10
    q0, _ = reach.joint_state()
    for _ in range(10):
        reach.step(q0 + np.deg2rad([20, 0, 0, 0, 0, 0, 0]), 1.0)
    assert np.abs(reach.render(320, 240).astype(int) - img).mean() > 0.5  # the arm moved in the picture
    with pytest.raises(ValueError, match="render size"):
        reach.render(0, 240)
