"""The deployment graph's control loop in one process, in lockstep with a MuJoCo plant at 20 Hz.

One cycle (50 ms of plant time), the same chain the ROS 2 nodes run on the robot:

    joint states ─► Real2Sim (FK → end-effector point, + object, goal) ─► s_t (12-d, sim frame)
    s_t, l ─► frozen LEGION policy ─► a_t (4-d), DPMM component k
    a_t ─► Sim2Real (accumulated TCP target, base frame) ─► safety filter (Cartesian)
        ─► IK ─► safety filter (joints) ─► plant (joint targets + gripper)

A rejected command (HOLD) is never sent: the plant is given the measured joint positions and the
last accepted gripper command instead. A measured joint state that no iiwa can be in (a sensor fault:
:func:`sim2real.supervisor.joint_state_fault`, e.g. a joint far past its limit or faster than its velocity limit
since the last cycle) stops the loop before anything is computed from it: nothing is sent to the plant, the
subtask ends with :attr:`SubtaskOutcome.fault`, and the fault stays latched (later subtasks are skipped) until
:meth:`ControlLoop.arm`. Every message of the graph can be handed to a ``publish``
callback (the rosbag2 recorder of the main job); the evaluation loops pass none and skip the
message conversions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from legion_runtime import messages as m
from sim2real.safety import SafetyFilter
from sim2real.supervisor import JointStateMonitor
from sim2real.transforms import Real2Sim, Sim2Real

#: 2F-85 knuckle joint at "closed", rad (PickNikRobotics/ros2_robotiq_gripper; robot.md).
GRIPPER_CLOSED_RAD = m.GRIPPER_CLOSED_RAD
#: The gripper holds an object when it is commanded closed and its knuckle stopped in this range, rad (the 2F-85's
#: object-detected status: the fingers stopped before closing; a 4 cm puck stops them at 0.45 rad, empty 0.79).
GRIPPER_HOLDING_RAD = (0.15, 0.70)
#: The knuckle counts as stopped when it moved at most this in one control cycle, rad (the 2F-85 closes its 0.79 rad
#: in 0.55 s, about 0.07 rad per 50 ms cycle; passing through GRIPPER_HOLDING_RAD while closing is not a grasp).
GRIPPER_STOPPED_RAD = 0.005


def gripper_holds(commanded: float, knuckle: float, knuckle_before: float | None) -> bool:
    """The 2F-85's object-detected status from its state: commanded closed (fraction >= 0.5), the knuckle (rad)
    inside :data:`GRIPPER_HOLDING_RAD` and stopped there (moved at most :data:`GRIPPER_STOPPED_RAD` since the last
    cycle's ``knuckle_before``; None: unknown, not stopped)."""
    return (commanded >= 0.5 and knuckle_before is not None and abs(knuckle - knuckle_before) <= GRIPPER_STOPPED_RAD
            and GRIPPER_HOLDING_RAD[0] < knuckle < GRIPPER_HOLDING_RAD[1])

Publish = Callable[[str, object, int], None]  # (topic key of legion_runtime.graph.TOPICS, message, stamp ns)
#: Perceived object and goal at a stamp (s), given the measured TCP ((3,) sim frame, m) and whether the gripper holds
#: an object: ((3,), (3,)) sim frame, m, or None while the object is not seen
#: (``sim2real.object_state.ObjectState.positions`` bound to the cameras).
Objects = Callable[[float, np.ndarray, bool], "tuple[np.ndarray, np.ndarray] | None"]
#: Success judged from perception: (measured TCP (3,) sim frame m, (object, goal) or None) -> success.
Until = Callable[[np.ndarray, "tuple[np.ndarray, np.ndarray] | None"], bool]


#: :meth:`ControlLoop.move_joints` has reached its posture when every joint is this close, rad (0.3 deg).
JOINT_GOAL_TOLERANCE_RAD = 0.005


class Plant(Protocol):
    """What the loop needs of a plant (``legion_sim.plant.KukaPlant``; a real driver adapter later)."""

    joint_names: list[str]
    dt: float

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]: ...
    def object_position(self) -> np.ndarray: ...
    def goal_position(self) -> np.ndarray: ...
    def step(self, q_target: np.ndarray, gripper: float) -> None: ...
    def success(self) -> bool: ...
    def gripper_position(self) -> float: ...


class Policy(Protocol):
    def act(self, obs: np.ndarray, embedding: np.ndarray) -> tuple[np.ndarray, int]: ...


@dataclass
class Exploring:
    """The controller of a retry: actions drawn from the policy's distribution (``policy.sample(obs, embedding, rng)``,
    :meth:`legion_policy.checkpoint.LegionPolicy.sample`) instead of its mean. A failed attempt of a deterministic
    policy, retried from the same start, repeats itself (drawer-close on the table, 20 trials: 1 of 8 failed first
    attempts recovered on the retry; with drawn actions 8 of 8, docs/long-horizon.md).

    Args:
        policy: has ``sample(obs (12,), embedding (D,), rng) -> (action (4,), component)``.
        rng: the draws' source (seeded: the same actions again).
    """

    policy: object
    rng: np.random.Generator

    def act(self, obs: np.ndarray, embedding: np.ndarray) -> tuple[np.ndarray, int]:
        """(action (4,) float32 in (-1, 1), component) drawn from the policy."""
        return self.policy.sample(obs, embedding, self.rng)


@dataclass
class SubtaskOutcome:
    """Result of one subtask.

    Attributes:
        subtask: library name, e.g. ``"reach"``.
        success: the plant's success test held at some step (Meta-World: success if any step succeeds).
        steps: control steps executed (<= max_steps; the loop stops at the first success).
        holds: cycles in which nothing new was sent (safety filter rejection, or no fresh object pose).
        interventions: safety interventions by reason during this subtask, and ``object_not_seen``
            (cycles held because perception had no fresh pose of the object).
        components: DPMM component inferred at each step the policy ran.
        skipped: why the subtask was not attempted ('' if it was), e.g. its object was not seen.
        fault: the joint-state sensor fault that stopped it ('' if none): which joint and why.
    """

    subtask: str
    success: bool
    steps: int
    holds: int = 0
    interventions: dict[str, int] = field(default_factory=dict)
    components: list[int] = field(default_factory=list)
    skipped: str = ""
    fault: str = ""


class ControlLoop:
    """Runs subtasks on a plant through Real2Sim → policy → Sim2Real → safety → IK → safety → plant.

    Args:
        policy: frozen policy with ``act(obs (12,), embedding (D,)) -> (action (4,), component)``; where it has an
            ``observation_layout`` (a checkpoint's policy), ``real2sim`` must build that layout.
        real2sim: observation builder (its FK must model the plant's arm).
        sim2real: action → Cartesian command and IK.
        safety: the safety filter; its limits are in the robot base frame.
        publish: optional callback receiving every graph message with its stamp (ns).

    Attributes:
        fault: the latched joint-state sensor fault (None: none); while set, :meth:`run_subtask` sends nothing.

    Raises:
        ValueError: the policy takes another observation layout than ``real2sim`` builds.
    """

    def __init__(self, policy: Policy, real2sim: Real2Sim, sim2real: Sim2Real, safety: SafetyFilter,
                 publish: Publish | None = None):
        wanted = getattr(policy, "observation_layout", None)
        if wanted is not None and wanted != real2sim.observation_layout:
            raise ValueError(f"the policy takes the {wanted!r} observation layout, and Real2Sim builds "
                             f"{real2sim.observation_layout!r}: build the chain with make_chain(observation_layout="
                             f"policy.observation_layout)")
        self.policy, self.real2sim, self.sim2real, self.safety = policy, real2sim, sim2real, safety
        self.publish = publish
        self.fault: str | None = None

    def arm(self, plant: Plant) -> tuple[bool, str]:
        """Release a latched joint-state sensor fault; refused (False, why) while ``plant``'s joint state is itself
        one (the checks of a single state: finite, within the position tolerance of the limits)."""
        why = JointStateMonitor(self.safety.limits).check(plant.joint_state()[0], 0.0)
        if why is not None:
            return False, f"the joint state is a sensor fault ({why}): cannot arm"
        previous, self.fault = self.fault, None
        return True, "armed" + (f" (was latched: {previous})" if previous else "")

    def run_subtask(self, plant: Plant, name: str, embedding: np.ndarray, max_steps: int = 150,
                    t0_ns: int = 0, on_step: Callable[[int], None] | None = None,
                    objects: Objects | None = None, until: Until | None = None,
                    workspace_offset: np.ndarray | None = None) -> SubtaskOutcome:
        """Run one subtask (see :meth:`_run`); ``workspace_offset``: (3,) sim frame, m, the policy's observations are
        shifted by for this subtask (:attr:`sim2real.transforms.Real2Sim.workspace_offset_sim`; None: none)."""
        self.real2sim.workspace_offset_sim = np.zeros(3) if workspace_offset is None else \
            np.asarray(workspace_offset, dtype=np.float64).reshape(3).copy()
        try:
            return self._run(plant, name, embedding, max_steps, t0_ns, on_step, objects, until)
        finally:
            self.real2sim.workspace_offset_sim = np.zeros(3)

    def _run(self, plant: Plant, name: str, embedding: np.ndarray, max_steps: int, t0_ns: int,
             on_step: Callable[[int], None] | None, objects: Objects | None, until: Until | None) -> SubtaskOutcome:
        """Run one subtask until the plant reports success or ``max_steps`` control steps have passed.

        Args:
            plant: a reset plant.
            name: subtask name (for the outcome).
            embedding: (D,) float32 language embedding of the subtask description.
            max_steps: step limit (paper: 150).
            t0_ns: stamp of the first cycle, ns (the plant's clock then advances by ``plant.dt``).
            on_step: called after each plant step with the step index (video frames).
            objects: where the object and goal come from: perception (a camera through the tag detector);
                None reads them from the plant (the simulator's ground truth).
            until: success judged from perception, as on the robot: called at the start of every cycle with the
                measured TCP (sim frame, m) and what ``objects`` gave; True ends the subtask as a success before
                acting. None: the plant's own success test after every step (the simulator's ground truth).

        Returns:
            :class:`SubtaskOutcome`.
        """
        outcome = SubtaskOutcome(subtask=name, success=False, steps=0)
        if self.fault is not None:
            outcome.fault, outcome.skipped = self.fault, f"joint-state sensor fault latched, arm to release: {self.fault}"
            return outcome
        before = dict(self.safety.counters)
        monitor = JointStateMonitor(self.safety.limits)  # the plant was reset: no earlier state to compare with
        dt_ns = int(round(plant.dt * 1e9))
        q, _ = plant.joint_state()
        if self._faulty(monitor, q, t0_ns, outcome):
            max_steps = 0  # a sensor fault before the first cycle: nothing is computed or sent
        else:
            self.sim2real.reset(self.real2sim.tcp_position(q))
            # The per-cycle step cap applies to the command: each target may move at most max_step_m from the
            # last one sent (re-anchored on the measured TCP at the start and after a HOLD).
            last_sent = self.real2sim.kinematics.forward_kinematics(q)[0]
        gripper = 0.0  # last accepted gripper command (fraction closed); starts open
        knuckle_before = None  # the 2F-85 knuckle at the last cycle, rad
        not_seen = outside = 0
        for step in range(max_steps):
            stamp = t0_ns + step * dt_ns
            q, qd = plant.joint_state()
            if self._faulty(monitor, q, stamp, outcome):  # a sensor fault: stop, send nothing
                break
            tcp_base = self.real2sim.kinematics.forward_kinematics(q)[0]
            tcp_sim = self.real2sim.frame.to_sim(tcp_base)
            knuckle = plant.gripper_position()
            if objects is None:
                seen = plant.object_position(), plant.goal_position()
            else:
                seen = objects(stamp * 1e-9, tcp_sim, gripper_holds(gripper, knuckle, knuckle_before))
                knuckle_before = knuckle
            if until is not None and until(tcp_sim, seen):
                outcome.success = True
                break
            q_cmd, accepted_target = None, None
            pushed = self.safety.outside_band(q)
            if pushed:  # a contact pushed a joint past its band: hold, which pulls it back in
                outside += 1
            if seen is None:  # no fresh object pose: nothing for the policy to act on; hold
                not_seen += 1
                obs, action, component = np.full(12, np.nan), np.full(4, np.nan), -1
            elif pushed:
                obs = self.real2sim.observation(q, *seen, knuckle_rad=knuckle)
                action, component = np.full(4, np.nan), -1
            else:
                obs = self.real2sim.observation(q, *seen, knuckle_rad=knuckle)
                action, component = self.policy.act(obs, embedding)
                if np.all(np.isfinite(action)):
                    cmd = self.sim2real.command(action, stamp=stamp * 1e-9)
                    verdict = self.safety.filter_cartesian(cmd.position_base, last_sent, cmd.gripper)
                else:  # a non-finite action is a HOLD, decided by the safety filter like any other
                    verdict = self.safety.filter_cartesian(np.full(3, np.nan), tcp_base, gripper)
                if verdict.accepted:
                    ik = self.sim2real.kinematics.solve_ik(verdict.position, q, self.sim2real.target_rot_base,
                                                           max_iterations=self.sim2real.ik_iterations)
                    joint_verdict = self.safety.filter_joints(ik.q, q, plant.dt)
                    if joint_verdict.accepted:
                        q_cmd, gripper, last_sent = joint_verdict.q, verdict.gripper, verdict.position
                        accepted_target = verdict.position
            if component >= 0:  # the policy ran this cycle
                outcome.components.append(int(component))
            if q_cmd is None:  # HOLD: keep the measured posture, re-anchor the target on the measured TCP
                outcome.holds += 1
                self.sim2real.reset(tcp_sim)
                last_sent = tcp_base
                # a contact can push a joint past the safety band; the hold target pulls it back
                q_cmd = self.safety.hold_target(q, plant.dt)
            if self.publish is not None:
                self._publish(stamp, plant, q, qd, obs, action, component,
                              tcp_base if accepted_target is None else accepted_target, q_cmd, gripper)
            plant.step(q_cmd, gripper)
            outcome.steps = step + 1
            if on_step is not None:
                on_step(step)
            if until is None and plant.success():
                outcome.success = True
                break
        outcome.interventions = {k: v - before.get(k, 0) for k, v in self.safety.counters.items()
                                 if v - before.get(k, 0)}
        if not_seen:
            outcome.interventions["object_not_seen"] = not_seen
        if outside:
            outcome.interventions["joint_outside_band"] = outside
        if outcome.fault:
            outcome.interventions["joint_state_fault"] = 1
        if self.publish is not None:  # the subtask's safety record, as the safety node publishes it
            level = m.DIAG_OK if not outcome.holds else m.DIAG_WARN
            message = f"subtask {name}: {outcome.holds} holds"
            if outcome.fault:
                level, message = m.DIAG_ERROR, f"{message}; stopped, joint_state_fault: {outcome.fault}"
            self.publish("diagnostics", m.diagnostics_to_msg(
                "legion: safety", level, message,
                {**outcome.interventions, "cycles": outcome.steps}, (t0_ns + outcome.steps * dt_ns) * 1e-9),
                t0_ns + outcome.steps * dt_ns)
        return outcome

    def move_joints(self, plant: Plant, name: str, q_goal: np.ndarray, max_steps: int, t0_ns: int = 0,
                    on_step: Callable[[int], None] | None = None, tolerance_rad: float = JOINT_GOAL_TOLERANCE_RAD,
                    speed_fraction: float = 0.5) -> SubtaskOutcome:
        """Move the arm to the posture ``q_goal`` in joint space, gripper open: each cycle a step towards it at
        ``speed_fraction`` of the joints' velocity limits, judged by the safety filter's joint checks (a rejected
        step is a HOLD at the measured posture), with the same sensor monitoring and messages as :meth:`run_subtask`.

        What the move between subtasks ends with: a Cartesian path from another posture can end on another IK
        branch, short of a start the arm reaches from the posture the skill was trained in (the table's button
        start: 3 cm short, however long the Cartesian move).

        Args:
            plant: the plant.
            name: for the outcome.
            q_goal: (7,) joint positions A1..A7, rad, inside the safety filter's band.
            max_steps: control-cycle limit.
            t0_ns, on_step: as :meth:`run_subtask`.
            tolerance_rad: reached when every joint is this close.
            speed_fraction: of the joints' velocity limits, in (0, 1].

        Returns:
            :class:`SubtaskOutcome`; ``success``: reached within ``tolerance_rad``.

        Raises:
            ValueError: ``q_goal`` is not 7 finite numbers or ``speed_fraction`` is outside (0, 1].
        """
        q_goal = np.asarray(q_goal, dtype=np.float64)
        if q_goal.shape != (7,) or not np.all(np.isfinite(q_goal)):
            raise ValueError(f"q_goal must be 7 finite joint positions in rad, got {q_goal!r}")
        if not 0.0 < speed_fraction <= 1.0:
            raise ValueError(f"speed_fraction must be in (0, 1], got {speed_fraction}")
        outcome = SubtaskOutcome(subtask=name, success=False, steps=0)
        if self.fault is not None:
            outcome.fault, outcome.skipped = self.fault, f"joint-state sensor fault latched, arm to release: {self.fault}"
            return outcome
        before = dict(self.safety.counters)
        monitor = JointStateMonitor(self.safety.limits)
        dt_ns = int(round(plant.dt * 1e9))
        max_delta = speed_fraction * self.safety.limits.joint_velocity_max * plant.dt
        for step in range(max_steps):
            stamp = t0_ns + step * dt_ns
            q, qd = plant.joint_state()
            if self._faulty(monitor, q, stamp, outcome):
                break
            if np.all(np.abs(q_goal - q) <= tolerance_rad):
                outcome.success = True
                break
            verdict = self.safety.filter_joints(q + np.clip(q_goal - q, -max_delta, max_delta), q, plant.dt)
            if verdict.accepted:
                q_cmd = verdict.q
            else:
                outcome.holds += 1
                q_cmd = self.safety.hold_target(q, plant.dt)
            if self.publish is not None:
                nan = np.full(4, np.nan)
                self._publish(stamp, plant, q, qd, np.full(12, np.nan), nan, -1,
                              self.real2sim.kinematics.forward_kinematics(q_cmd)[0], q_cmd, 0.0)
            plant.step(q_cmd, 0.0)
            outcome.steps = step + 1
            if on_step is not None:
                on_step(step)
        outcome.interventions = {k: v - before.get(k, 0) for k, v in self.safety.counters.items()
                                 if v - before.get(k, 0)}
        if outcome.fault:
            outcome.interventions["joint_state_fault"] = 1
        return outcome

    def _faulty(self, monitor: JointStateMonitor, q: np.ndarray, stamp_ns: int, outcome: SubtaskOutcome) -> bool:
        """Judge the measured state ``q`` of cycle ``stamp_ns``; a fault is latched on the loop and the outcome."""
        why = monitor.check(q, stamp_ns * 1e-9)
        if why is None:
            return False
        self.fault = outcome.fault = why
        return True

    def _publish(self, stamp, plant, q, qd, obs, action, component, target_base, q_cmd, gripper) -> None:
        pub = self.publish
        pub("joint_states", m.joint_state_to_msg(plant.joint_names, q, qd, stamp=stamp * 1e-9), stamp)
        if np.all(np.isfinite(obs)):
            pub("observation", m.observation_to_msg(obs), stamp)
        if np.all(np.isfinite(action)):
            pub("action", m.action_to_msg(action), stamp)
        if component >= 0:  # -1: no inference this cycle (no fresh object pose)
            pub("component", m.component_to_msg(int(component)), stamp)
        pub("cartesian_target", m.cartesian_target_to_msg(target_base, stamp * 1e-9), stamp)
        pub("joint_targets", m.joint_trajectory_to_msg(q_cmd, plant.joint_names, stamp * 1e-9, plant.dt), stamp)
        pub("gripper_command", m.gripper_command_to_msg(gripper * GRIPPER_CLOSED_RAD), stamp)
