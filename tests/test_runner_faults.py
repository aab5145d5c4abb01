"""The in-process runner (legion_runtime/runner.py, the main job's control loop) on the MuJoCo plant with a joint
sensor that starts reading wrong (issue 15): it stops before computing anything from that state, sends nothing more,
and stays latched until armed. (The same faults through the ROS 2 node graph: tests/test_fault_injection.py.)"""
import numpy as np
import pytest

from legion_runtime import messages as m
from legion_runtime.main_job import make_chain


def _set(q, j, value):
    q[j] = value
    return q


class FaultySensorPlant:
    """A MuJoCo plant whose joint sensor reads ``corrupt(q)`` once ``at`` plant steps have run (None: correct)."""

    def __init__(self, plant, at: int, corrupt):
        self.plant, self.at, self.corrupt, self.steps = plant, at, corrupt, 0

    def __getattr__(self, name):
        return getattr(self.plant, name)

    def joint_state(self):
        q, qd = self.plant.joint_state()
        if self.corrupt is not None and self.steps >= self.at:
            q = self.corrupt(q.copy())
        return q, qd

    def step(self, q_target, gripper):
        self.steps += 1
        self.plant.step(q_target, gripper)


class Forward:
    """A stand-in policy: move the TCP along +x, gripper open."""

    def act(self, obs, embedding):
        return np.array([0.5, 0.0, 0.0, -1.0]), 0


@pytest.mark.parametrize("corrupt, words, arm_refused", [
    (lambda q: _set(q, 4, 3.52e13), "A5 measured 3.52e+13 rad", True),  # the sensor keeps reading it: arm is refused
    (lambda q: _set(q, 0, q[0] + 0.5), "A1 moved", False),  # an offset from then on: plausible on its own
])
def test_the_in_process_runner_stops_on_a_joint_state_no_iiwa_can_be_in(corrupt, words, arm_refused):
    from legion_runtime.runner import ControlLoop
    from legion_sim.plant import KukaPlant

    plant = KukaPlant("reach-v3", seed=0)
    plant.reset(0)
    faulty = FaultySensorPlant(plant, at=5, corrupt=corrupt)
    published = []
    loop = ControlLoop(Forward(), *make_chain(), publish=lambda key, msg, stamp: published.append((key, msg)))
    embedding = np.zeros(384, np.float32)
    outcome = loop.run_subtask(faulty, "reach", embedding, max_steps=150)
    assert faulty.steps == 5 and outcome.steps == 5 and not outcome.success, "the plant was stepped after the fault"
    assert words in outcome.fault and loop.fault == outcome.fault
    assert outcome.interventions["joint_state_fault"] == 1
    assert sum(key == "joint_targets" for key, _ in published) == 5, "a joint target was sent for the faulty state"
    (diag,) = [msg for key, msg in published if key == "diagnostics"]
    level, message = m.diagnostics_from_msg(diag)[0][1:3]
    assert level == m.DIAG_ERROR and "joint_state_fault" in message and words in message

    again = loop.run_subtask(faulty, "reach", embedding, max_steps=150)  # latched: the next subtask sends nothing
    assert again.steps == 0 and faulty.steps == 5 and again.fault == outcome.fault and "latched" in again.skipped
    ok, why = loop.arm(faulty)
    assert ok != arm_refused, why
    faulty.corrupt = None  # the sensor is repaired
    assert loop.arm(faulty)[0] and loop.fault is None
    plant.reset(1)
    resumed = loop.run_subtask(faulty, "reach", embedding, max_steps=10)
    assert resumed.steps == 10 and not resumed.fault and faulty.steps == 15
    plant.close()


def test_the_gripper_holds_only_when_closed_on_an_object_and_stopped():
    """The 2F-85's object-detected status from its state: passing through the holding band while closing is not a
    grasp (the fingers had not reached the plug yet, and a hand measurement from then called it pulled out)."""
    from legion_runtime.runner import gripper_holds

    assert gripper_holds(1.0, 0.45, 0.449)  # stopped on a puck
    assert not gripper_holds(1.0, 0.172, 0.144)  # closing through the band, 0.028 rad in one cycle
    assert not gripper_holds(1.0, 0.79, 0.79)  # closed on nothing
    assert not gripper_holds(0.0, 0.45, 0.45)  # commanded open
    assert not gripper_holds(1.0, 0.45, None)  # first cycle: not known to be stopped
