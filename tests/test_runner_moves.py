"""The runner's joint move (legion_runtime/runner.py ``ControlLoop.move_joints``), what the move between long-horizon
subtasks ends with, on the MuJoCo KUKA plant: it reaches a posture at the speed it is given, through the safety
filter's joint checks, and never past the joint limits."""
import numpy as np
import pytest

from legion_runtime.main_job import make_chain
from legion_runtime.runner import JOINT_GOAL_TOLERANCE_RAD, ControlLoop
from legion_sim.plant import KukaPlant


@pytest.fixture(scope="module")
def plant():
    return KukaPlant("reach-v3", seed=0)


class Recorder:
    """A plant wrapper that records every joint command sent."""

    def __init__(self, plant):
        self.plant, self.sent = plant, []

    def __getattr__(self, name):
        return getattr(self.plant, name)

    def step(self, q_target, gripper):
        self.sent.append((np.asarray(q_target).copy(), gripper))
        self.plant.step(q_target, gripper)


def test_a_joint_move_reaches_its_posture_at_the_speed_it_is_given(plant):
    plant.reset(0)
    q0, _ = plant.joint_state()
    goal = q0 + np.deg2rad([20.0, -10.0, 0.0, 15.0, 0.0, -10.0, 30.0])
    published = []
    loop = ControlLoop(None, *make_chain(), publish=lambda key, msg, stamp: published.append(key))
    rec = Recorder(plant)
    out = loop.move_joints(rec, "transfer", goal, max_steps=100, speed_fraction=0.5)
    q, _ = plant.joint_state()
    assert out.success and out.holds == 0 and not out.interventions, out
    assert np.all(np.abs(q - goal) <= JOINT_GOAL_TOLERANCE_RAD)
    # every command a step of at most half the velocity limits from the measured posture, gripper open
    vmax = loop.safety.limits.joint_velocity_max
    before = q0
    for sent, gripper in rec.sent:
        assert np.all(np.abs(sent - before) <= 0.5 * vmax * plant.dt + 1e-9) and gripper == 0.0
        before = sent
    # A1's 20 deg at 42.5 deg/s take 10 cycles; the servos settle within a few more
    assert 10 <= out.steps <= 30, out.steps
    assert published.count("joint_targets") == out.steps and "action" not in published


def test_a_posture_past_the_joint_limits_is_held_short_of_them(plant):
    plant.reset(0)
    q0, _ = plant.joint_state()
    limits = make_chain()[2].limits
    goal = q0.copy()
    goal[6] = limits.joint_position_max[6]  # A7 (the flange) at its limit: inside the 5 deg margin is refused
    loop = ControlLoop(None, *make_chain())
    out = loop.move_joints(plant, "transfer", goal, max_steps=120)
    q, _ = plant.joint_state()
    assert not out.success and out.holds > 0 and out.interventions.get("joint_limit") == out.holds
    band = limits.joint_position_max[6] - limits.joint_position_margin
    assert band - np.deg2rad(5.0) < q[6] <= band + 0.01  # it went as far as the band allows


@pytest.mark.parametrize("goal, fraction, words", [
    (np.zeros(6), 0.5, "7 finite joint positions"),
    (np.full(7, np.nan), 0.5, "7 finite joint positions"),
    (np.zeros(7), 0.0, "speed_fraction"),
    (np.zeros(7), 1.5, "speed_fraction"),
])
def test_a_joint_move_refuses_bad_input_before_moving(plant, goal, fraction, words):
    plant.reset(0)
    q0, _ = plant.joint_state()
    with pytest.raises(ValueError, match=words):
        ControlLoop(None, *make_chain()).move_joints(plant, "transfer", goal, max_steps=10, speed_fraction=fraction)
    np.testing.assert_array_equal(plant.joint_state()[0], q0)
