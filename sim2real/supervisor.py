"""The safety node's state machine: HOLD / ARMED / ESTOP, watchdog, and the joint filter in front of the driver.

The safety node is the only node that talks to the arm driver. It forwards a proposed joint command
only while ARMED, and only what :meth:`sim2real.safety.SafetyFilter.filter_joints` accepts:

* it starts in HOLD (``start_in_hold``) and moves only after an explicit :meth:`SafetySupervisor.arm`
  (``std_srvs/srv/Trigger`` on the robot);
* :meth:`hold` returns to HOLD; :meth:`estop` latches ESTOP, which only :meth:`arm` releases;
* arming needs fresh joint states (so the filter has a measured posture to compare against);
* watchdog: while the last joint state is older than ``watchdog_s`` (default 0.1 s, two 20 Hz
  periods; age from the state's own stamp, so a burst of late states is still stale) nothing is
  forwarded, and forwarding resumes by itself when states are fresh again. A command stamped more than
  ``watchdog_s`` ago is refused too ("stale_command"). A command is acted on when it arrives, so a
  stopped policy simply sends nothing: the driver's trajectory controller holds its last target;
* command rate monitor: the rate of arriving commands (:attr:`command_rate_hz`, exponential average) and
  every gap longer than two command periods ("command_gap") are reported as diagnostics;
* with ``fk`` (forward kinematics to the TCP, base frame), a joint command is also checked in
  Cartesian space: its TCP must lie in the workspace box and within ``max_step_m`` of the last
  forwarded target (the sim2real node clamps each step before IK; this catches anything else, e.g. an
  IK solution that flips the arm); any Cartesian intervention refuses the command;
* a measured joint outside its limits minus the margin (a contact pushed it there) replaces the command by
  one that pulls it back at its velocity limit ("joint_outside_band"; :meth:`SafetyFilter.hold_target`);
* every refusal is counted by reason in :attr:`counters` (published as diagnostics).

Times are seconds of one clock (ROS time on the robot, plant time in tests).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim2real.safety import SafetyFilter

HOLD, ARMED, ESTOP = "HOLD", "ARMED", "ESTOP"


@dataclass(frozen=True)
class Decision:
    """What to send for one proposed command: ``q`` (7,) rad to forward, or None (send nothing); ``reasons``."""

    q: np.ndarray | None
    reasons: tuple[str, ...]


class SafetySupervisor:
    """HOLD / ARMED / ESTOP around a :class:`SafetyFilter` (see the module docstring).

    Args:
        safety: the joint and Cartesian filter (iiwa 14 limits).
        watchdog_s: maximum age of joint states and commands while ARMED, s (> 0).
        start_in_hold: start in HOLD (True, always on a robot) or ARMED (simulation tests only).
        fk: joint positions (7,) rad -> TCP position (3,) m in the base frame, for the Cartesian check (None: off).

    Raises:
        ValueError: ``watchdog_s`` not positive.
    """

    def __init__(self, safety: SafetyFilter, watchdog_s: float = 0.1, start_in_hold: bool = True,
                 fk: Callable[[np.ndarray], np.ndarray] | None = None):
        if not (np.isfinite(watchdog_s) and watchdog_s > 0):
            raise ValueError(f"watchdog_s must be > 0 s, got {watchdog_s!r}")
        self.safety, self.watchdog_s = safety, float(watchdog_s)
        self.state = HOLD if start_in_hold else ARMED
        self.counters: dict[str, int] = {}
        self._q: np.ndarray | None = None
        self._t_state = -np.inf
        self.fk = fk
        self._last_tcp: np.ndarray | None = None  # TCP of the last forwarded command (step reference)
        self._t_command: float | None = None
        self.command_rate_hz = 0.0

    def _count(self, reason: str) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + 1

    # ------------------------------------------------------------------------------ services
    def arm(self, now: float) -> tuple[bool, str]:
        """Leave HOLD or ESTOP. Refused (False, why) without joint states newer than ``watchdog_s``."""
        if now - self._t_state > self.watchdog_s:
            return False, f"no joint states in the last {self.watchdog_s:.3f} s: cannot arm"
        previous, self.state = self.state, ARMED
        self._last_tcp = None
        return True, f"armed (was {previous})"

    def hold(self) -> tuple[bool, str]:
        """Stop forwarding commands (an ESTOP stays latched)."""
        if self.state == ESTOP:
            return True, "e-stop is latched; call arm to release it"
        self.state = HOLD
        return True, "holding"

    def estop(self) -> tuple[bool, str]:
        """Latched stop: nothing is forwarded until :meth:`arm`."""
        self.state = ESTOP
        self._count("estop")
        return True, "e-stop latched"

    # ------------------------------------------------------------------------------ inputs
    def on_joint_state(self, q: np.ndarray, stamp: float) -> None:
        """Measured joint positions (7,) rad, measured at ``stamp`` (s); non-finite states are ignored and counted."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (7,) or not np.all(np.isfinite(q)):
            self._count("bad_joint_state")
            return
        if stamp >= self._t_state:  # an older state arriving late does not replace a newer one
            self._q, self._t_state = q, stamp

    def on_joint_command(self, q_target: np.ndarray, period_s: float, now: float,
                         stamp: float | None = None) -> Decision:
        """A proposed joint command reaching the target in ``period_s``, made at ``stamp`` (None: now), arriving
        at ``now``: forward it (filtered) or not."""
        if self._t_command is not None and now > self._t_command:
            interval = now - self._t_command
            if interval > 2 * period_s:
                self._count("command_gap")
            rate = 1.0 / interval
            self.command_rate_hz = rate if self.command_rate_hz == 0 else 0.9 * self.command_rate_hz + 0.1 * rate
        self._t_command = now
        if stamp is not None and now - stamp > self.watchdog_s:
            self._count("stale_command")
            return Decision(None, ("stale_command",))
        if self.state != ARMED:
            self._count(f"not_armed_{self.state.lower()}")
            return Decision(None, (f"state {self.state}",))
        if not self.healthy(now):
            self._count("stale_joint_states")
            return Decision(None, ("stale_joint_states",))
        if self.safety.outside_band(self._q):  # pushed past the margin band: pull back instead of the command
            self._count("joint_outside_band")
            self._last_tcp = None
            return Decision(self.safety.hold_target(self._q, period_s), ("joint_outside_band",))
        verdict = self.safety.filter_joints(q_target, self._q, period_s)
        for r in verdict.reasons:
            self._count(r)
        if not verdict.accepted:
            return Decision(None, tuple(verdict.reasons))
        if self.fk is not None:
            tcp = np.asarray(self.fk(verdict.q), dtype=np.float64)
            reference = self._last_tcp if self._last_tcp is not None else self.fk(self._q)
            cartesian = self.safety.filter_cartesian(tcp, reference, self.safety.limits.gripper_min)
            if cartesian.reasons:
                for r in cartesian.reasons:
                    self._count(f"cartesian_{r}")
                self._last_tcp = None
                return Decision(None, tuple(f"cartesian_{r}" for r in cartesian.reasons))
            self._last_tcp = tcp
        return Decision(verdict.q, tuple(verdict.reasons))

    def healthy(self, now: float) -> bool:
        """True when the last joint state is at most ``watchdog_s`` old."""
        return now - self._t_state <= self.watchdog_s
