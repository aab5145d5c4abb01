"""FK / DLS IK of the iiwa 14 + 2F-85 TCP on the real URDF model (sim2real.kinematics)."""
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before the first mujoco import of the session

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim2real.kinematics import (
    GRIPPER_TCP_DEPTH_M, JOINT_LIMITS_RAD, JOINT_NAMES, TOP_DOWN_ROT, ArmKinematics, forward_kinematics, solve_ik,
)

Q_NOMINAL = np.deg2rad([90.0, 30.0, 0.0, -90.0, 0.0, 60.0, 0.0])


@pytest.fixture(scope="module")
def kin():
    return ArmKinematics()


def test_urdf_limits_match_datasheet(kin):
    # the URDF's ranges are the iiwa 14 datasheet's (robot.md): +-170, 120, 170, 120, 170, 120, 175 deg
    ranges = np.array([kin.model.jnt_range[kin.model.joint(n).id] for n in JOINT_NAMES])
    np.testing.assert_allclose(ranges[:, 1], JOINT_LIMITS_RAD, atol=1e-6)
    np.testing.assert_allclose(ranges[:, 0], -JOINT_LIMITS_RAD, atol=1e-6)
    # IK keeps 2 deg more than the safety filter's band: its targets are never refused, and tracking errors
    # near a limit do not carry the measured joint out of the band
    from sim2real.safety import SafetyLimits

    margin = SafetyLimits.__dataclass_fields__["joint_position_margin"].default
    np.testing.assert_allclose(kin.upper, JOINT_LIMITS_RAD - margin - np.deg2rad(2.0))


def test_fk_at_zero_is_the_iiwa14_column(kin):
    # q = 0: arm straight up; base to flange 0.36 + 0.42 + 0.40 + 0.126 = 1.306 m, then the TCP offset
    pos, rot = kin.forward_kinematics(np.zeros(7))
    np.testing.assert_allclose(pos, [0.0, 0.0, 1.306 + GRIPPER_TCP_DEPTH_M], atol=1e-9)
    np.testing.assert_allclose(rot, np.eye(3), atol=1e-9)


def test_fk_matches_finite_differences_of_jacobian_direction(kin):
    # moving joint 1 (vertical axis) rotates the TCP about the base z axis
    q = Q_NOMINAL.copy()
    p0, _ = kin.forward_kinematics(q)
    q[0] += 0.1
    p1, _ = kin.forward_kinematics(q)
    assert np.isclose(np.hypot(*p0[:2]), np.hypot(*p1[:2]), atol=1e-9) and np.isclose(p0[2], p1[2], atol=1e-9)
    angle = np.arctan2(p1[1], p1[0]) - np.arctan2(p0[1], p0[0])
    assert np.isclose(angle, 0.1, atol=1e-9)


def test_round_trip_top_down_task_workspace(kin):
    # top-down targets over the table region the tasks use (base frame, arm base at sim (0, 0.1, 0))
    rng = np.random.default_rng(0)
    targets = rng.uniform([-0.15, 0.45, 0.03], [0.15, 0.72, 0.35], size=(100, 3))
    for target in targets:
        res = kin.solve_ik(target, Q_NOMINAL, TOP_DOWN_ROT, max_iterations=200)
        pos, rot = kin.forward_kinematics(res.q)
        assert res.converged, (target, res)
        assert np.linalg.norm(pos - target) < 1e-3
        assert np.allclose(rot, TOP_DOWN_ROT, atol=5e-3)


def test_round_trip_random_reachable_poses(kin):
    # any pose the arm can take: FK of random joints, IK from a perturbed seed
    rng = np.random.default_rng(1)
    errors, converged = [], 0
    for _ in range(150):
        q = rng.uniform(kin.lower, kin.upper)
        pos, rot = kin.forward_kinematics(q)
        seed = np.clip(q + rng.normal(0.0, 0.15, 7), kin.lower, kin.upper)
        res = kin.solve_ik(pos, seed, rot, max_iterations=200)
        converged += res.converged
        if res.converged:
            errors.append(np.linalg.norm(kin.forward_kinematics(res.q)[0] - pos))
    assert converged >= 145
    assert max(errors) < 1e-3


def test_warm_start_tracks_small_steps_quickly(kin):
    # the 20 Hz use: 1 cm steps from the previous solution converge in a few iterations
    res = kin.solve_ik([0.0, 0.55, 0.2], Q_NOMINAL, max_iterations=200)
    q = res.q
    for k in range(20):
        res = kin.solve_ik([0.01 * k, 0.55, 0.2], q, max_iterations=20)
        assert res.converged and res.iterations <= 10
        q = res.q


@pytest.mark.parametrize("target", [[0.0, 2.0, 0.3], [0.0, 0.05, 0.1], [0.0, 0.0, -1.0]])
def test_unreachable_targets_are_reported(kin, target):
    # too far, inside the base (joint 4 cannot fold that far), below the floor
    res = kin.solve_ik(target, Q_NOMINAL)
    assert not res.converged
    assert res.pos_error_m > 0.01
    assert np.all(res.q >= kin.lower) and np.all(res.q <= kin.upper)


@settings(max_examples=60, deadline=None)
@given(target=st.tuples(st.floats(-1.5, 1.5), st.floats(-1.5, 1.5), st.floats(-0.5, 1.8)),
       seed_frac=st.lists(st.floats(0.0, 1.0), min_size=7, max_size=7))
def test_ik_never_leaves_the_limits(target, seed_frac):
    kin = _shared()
    seed = -JOINT_LIMITS_RAD + 2 * JOINT_LIMITS_RAD * np.array(seed_frac)  # anywhere up to the hard limits
    res = kin.solve_ik(np.array(target), seed, max_iterations=50)
    assert np.all(res.q >= kin.lower - 1e-12) and np.all(res.q <= kin.upper + 1e-12)
    assert np.all(np.abs(res.q) < JOINT_LIMITS_RAD)


_SHARED = []


def _shared():
    if not _SHARED:
        _SHARED.append(ArmKinematics())
    return _SHARED[0]


def test_module_level_functions_use_default_model():
    pos, rot = forward_kinematics(Q_NOMINAL)
    res = solve_ik(pos, Q_NOMINAL + 0.05, rot)
    assert res.converged and np.linalg.norm(forward_kinematics(res.q)[0] - pos) < 1e-3


@pytest.mark.parametrize("kwargs, match", [
    (dict(target_pos=[0.0, 0.5], q_seed=Q_NOMINAL), "target_pos"),
    (dict(target_pos=[0.0, np.nan, 0.2], q_seed=Q_NOMINAL), "target_pos"),
    (dict(target_pos=[0.0, 0.5, 0.2], q_seed=np.zeros(6)), "q_seed"),
    (dict(target_pos=[0.0, 0.5, 0.2], q_seed=Q_NOMINAL, target_rot=2 * np.eye(3)), "rotation"),
    (dict(target_pos=[0.0, 0.5, 0.2], q_seed=Q_NOMINAL, target_rot=np.diag([1.0, 1.0, -1.0])), "rotation"),
])
def test_bad_input_is_rejected(kin, kwargs, match):
    with pytest.raises(ValueError, match=match):
        kin.solve_ik(**kwargs)


def test_bad_fk_input_and_config_are_rejected(kin):
    with pytest.raises(ValueError, match="7 finite"):
        kin.forward_kinematics([0.0] * 6)
    with pytest.raises(ValueError, match="limit_margin_rad"):
        ArmKinematics(limit_margin_rad=-0.1)
