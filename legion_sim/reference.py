"""Reference controllers: one scripted controller per task, written for the iiwa 14 + Robotiq 2F-85.

Each controller acts on the policy's own input, the 12-d observation s_t (:data:`sim2real.observation.OBS_LAYOUT`:
the ee point, 4.5 cm behind the TCP, the object point and the goal, sim frame, m), and returns Meta-World's 4-d
action (TCP displacement, 1 unit = 1 cm per step, and the gripper command: -1 open, +1 closed), so it runs through
the same Sim2Real, safety filter and IK as the learned policy (:class:`legion_runtime.runner.ControlLoop`), on the
simulated plant or on the robot. Meta-World's scripted experts (``metaworld.policies``) are the model of the task
logic; the geometry is the 2F-85's: the TCP (the closed fingertips' midpoint) is placed, not the Sawyer's hand,
grasps close on the object's centre, and every leg waits until the arm is where it was sent (the joint-mode arm lags
its target by a few centimetres, where Meta-World's mocap hand follows at once).

A controller is a sequence of :class:`Phase` legs. A leg drives the TCP to a target computed from the observation
(and from what was seen when the leg started) with a fixed gripper command, and ends when the TCP is within the leg's
tolerance and has stayed for its ``settle_s`` (the gripper's closing time for a grasp), when its ``done`` condition
holds, or after its ``max_s``; the last leg lasts until the episode ends. The controllers keep no other state, and are
reset by
:meth:`ReferenceController.reset` (a new episode) or :meth:`ReferenceController.select` (another task).

Usage::

    controller = ReferenceController("push-v3")
    controller.reset()
    action, _ = controller.act(obs, embedding)  # the policy interface of ControlLoop (component -1)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from sim2real.transforms import ACTION_SCALE_M, METAWORLD_EE_OFFSET_M

#: ee point above the TCP when the gripper points down (Meta-World's hand above its tcp_center), sim frame, m.
EE_ABOVE_TCP = np.array([0.0, 0.0, METAWORLD_EE_OFFSET_M])
#: Gripper commands (Meta-World's action[3]): fully open, fully closed.
OPEN, CLOSED = -1.0, 1.0
#: Position gain: the fraction of the TCP error commanded per step (Sim2Real accumulates the commanded target, so
#: a full step of the error would overshoot while the arm lags); the speed is capped too (MAX_SPEED_MPS).
GAIN = 0.5


@dataclass(frozen=True)
class View:
    """What a leg's target is computed from: the current TCP, object point and goal, and the object point and
    TCP when the leg started (sim frame, m)."""

    tcp: np.ndarray
    obj: np.ndarray
    goal: np.ndarray
    obj0: np.ndarray
    tcp0: np.ndarray


Target = Callable[[View], np.ndarray]


@dataclass(frozen=True)
class Phase:
    """One leg: drive the TCP to ``target(view)`` (sim frame, m) with the gripper at ``grip`` (-1 open .. 1 closed).

    Done when the TCP has been within ``tolerance_m`` of the target for ``settle_s`` seconds, or after ``max_s``
    seconds, or as soon as ``done(view)`` holds; a last leg never ends. ``speed_mps`` caps the commanded TCP speed per
    axis (None: :data:`MAX_SPEED_MPS`).
    """

    name: str
    target: Target
    grip: float
    tolerance_m: float = 0.01
    settle_s: float = 0.0
    max_s: float = 3.0
    speed_mps: float | None = None
    done: Callable[[View], bool] | None = None


def _above(dz: float, dx: float = 0.0, dy: float = 0.0) -> Target:
    """The object point as the leg started, offset by (dx, dy, dz), m."""
    return lambda v: v.obj0 + (dx, dy, dz)


def _at_object(dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> Target:
    """The object point now, offset, m (follows an object that moves: a handle on an arc)."""
    return lambda v: v.obj + (dx, dy, dz)


def _grasp(name: str, dz: float = 0.0, seconds: float = 0.6, dx: float = 0.0) -> Phase:
    """Close on the object point (as the leg started) + (dx, 0, dz) and wait ``seconds`` (the 2F-85 closes in 0.55 s)."""
    return Phase(name, _above(dz, dx=dx), CLOSED, tolerance_m=1.0, settle_s=seconds, max_s=seconds)


def _descend(name: str, dz: float = 0.0, grip: float = OPEN, dx: float = 0.0) -> Phase:
    """Down to the object point (as the leg started) + (dx, 0, dz), gripper as given."""
    return Phase(name, _above(dz, dx=dx), grip, tolerance_m=0.008, settle_s=0.05, max_s=2.0)


#: Largest TCP speed per axis, m/s: the deployed chain's 1 cm per 50 ms step; in mocap mode (12.5 ms steps) the same
#: speed is a quarter unit per step (at a full unit the welded hand overshoots and pushes the plug out of its socket).
MAX_SPEED_MPS = 0.2
#: A puck is approached from this far above its centre, m: clear of the drawer's handle (z 0.14 m) beside it on the
#: table when the arm comes from the start pose.
PUCK_APPROACH_DZ = 0.15
#: Speed of a pull against friction (the plug in its socket): slow enough that the grip holds, m/s.
PULL_SPEED_MPS = 0.04
#: Grasp height: the TCP this far above a puck's centre, m (at the centre, 2 cm above the table: the pads close on the
#: puck's middle; the safety box keeps the TCP at least 5 mm above the table).
_PUCK_GRASP_DZ = 0.0


def _reach() -> list[Phase]:
    # reach-v3: the TCP to the goal
    return [Phase("to goal", lambda v: v.goal, OPEN)]


def _push() -> list[Phase]:
    # push-v3: grasp the puck where it lies and slide it to the goal at the same height (success: puck within 5 cm)
    return [Phase("above puck", _above(PUCK_APPROACH_DZ), OPEN, tolerance_m=0.012),
            _descend("down to puck", _PUCK_GRASP_DZ),
            _grasp("grasp", _PUCK_GRASP_DZ),
            Phase("slide to goal", lambda v: np.r_[v.goal[:2], v.tcp0[2] + 0.01], CLOSED)]


def _pick_place() -> list[Phase]:
    # pick-place-v3: grasp, lift 10 cm, carry the puck's centre to the goal in the air (success: within 7 cm)
    return [Phase("above puck", _above(PUCK_APPROACH_DZ), OPEN, tolerance_m=0.012),
            _descend("down to puck", _PUCK_GRASP_DZ),
            _grasp("grasp", _PUCK_GRASP_DZ),
            Phase("lift", lambda v: v.tcp0 + (0.0, 0.0, 0.10), CLOSED, tolerance_m=0.03, max_s=1.5),
            Phase("carry to goal", lambda v: v.goal, CLOSED)]


#: door-open-v3's geometry (metaworld/assets/objects/assets/doorlock*.xml, reset_model): the hinge from the goal, and
#: the handle point from the hinge with the door shut, in the table plane, m.
_DOOR_HINGE_FROM_GOAL = np.array([0.115, 0.350])
_DOOR_HANDLE_FROM_HINGE = np.array([0.376, -0.107])


def _door_angle(v: View) -> float:
    """How far the door is open, rad (0 shut; negative: open towards the robot), from the handle and the goal."""
    arm = v.obj[:2] - (v.goal[:2] + _DOOR_HINGE_FROM_GOAL)
    shut = np.arctan2(_DOOR_HANDLE_FROM_HINGE[1], _DOOR_HANDLE_FROM_HINGE[0])
    return float(np.arctan2(arm[1], arm[0]) - shut)


def _behind_panel(radius_m: float, clearance_m: float, z: float | None = None) -> Target:
    """A point off the door panel's back face, ``radius_m`` from the hinge, ``clearance_m`` out (negative: into it)."""
    def target(v: View) -> np.ndarray:
        theta = _door_angle(v)
        along, back = np.array([np.cos(theta), np.sin(theta)]), np.array([-np.sin(theta), np.cos(theta)])
        xy = v.goal[:2] + _DOOR_HINGE_FROM_GOAL + radius_m * along + clearance_m * back
        return np.r_[xy, v.obj[2] if z is None else z]
    return target


def _door_open() -> list[Phase]:
    # door-open-v3: the door swings open towards the robot about a hinge at its -x edge; success: the handle 0.22 m
    # along -x. The closed fingers go down beside the handle on its +x side and pull it until the door is open
    # 0.5 rad: further on, the handle comes nearer the arm's base than a top-down grasp reaches (joint 4's 120 deg).
    # Then they go over the top of the door, down behind its panel 0.22 m from the hinge, and push the panel open.
    return [Phase("above handle", _above(0.10, dx=0.07), CLOSED, tolerance_m=0.015),
            Phase("down beside handle", _above(0.0, dx=0.07), CLOSED, tolerance_m=0.01),
            Phase("pull open", _at_object(dx=-0.06, dy=-0.02), CLOSED, done=lambda v: _door_angle(v) <= -0.5),
            Phase("up over the door", lambda v: np.r_[v.tcp0[:2], 0.33], CLOSED, tolerance_m=0.02),
            Phase("over the panel's back", _behind_panel(0.22, 0.04, z=0.33), CLOSED, tolerance_m=0.015),
            Phase("down behind the panel", _behind_panel(0.22, 0.04), CLOSED, tolerance_m=0.012),
            Phase("push open", _behind_panel(0.22, -0.05), CLOSED)]


def _faucet_open() -> list[Phase]:
    # faucet-open-v3: the handle turns about the faucet's vertical axis; push its end sideways (+x) from -x
    return [Phase("above handle", _above(0.08, dx=-0.05), CLOSED, tolerance_m=0.015),
            Phase("down beside handle", _above(0.0, dx=-0.05), CLOSED, tolerance_m=0.01),
            Phase("turn", _at_object(dx=0.06, dy=0.03), CLOSED)]


def _drawer_close() -> list[Phase]:
    # drawer-close-v3: the drawer stands out towards the robot (-y); push its handle's front face back to the goal.
    # The fingers stand 4.5 cm in front of the handle point: 7 cm is nearer the arm's base than it reaches top-down
    return [Phase("above front of handle", _above(0.12, dy=-0.045), CLOSED, tolerance_m=0.02),
            Phase("down in front of handle", _above(-0.01, dy=-0.045), CLOSED, tolerance_m=0.01),
            Phase("push shut", lambda v: np.r_[v.goal[0], v.goal[1] + 0.04, v.tcp0[2]], CLOSED)]


def _button_press_topdown() -> list[Phase]:
    # button-press-topdown-v3: press the button's top (object point) down to the goal with the closed fingertips
    return [Phase("above button", _above(0.06), CLOSED, tolerance_m=0.01),
            Phase("press", lambda v: np.r_[v.obj0[:2], v.goal[2] - 0.02], CLOSED)]


def _peg_unplug_side() -> list[Phase]:
    # peg-unplug-side-v3: the plug sticks out of the box's side along +x: a 7.6 cm block, then an 8 cm ball at its
    # end (the object point is 2 cm into the ball). Grasp the block behind the ball, 3.5 cm back from the object
    # point, so that pulling along +x presses the fingers against the ball instead of sliding them over it
    return [Phase("above plug", _above(0.08, dx=-0.035), OPEN, tolerance_m=0.012),
            _descend("down to plug", dx=-0.035),
            _grasp("grasp", dx=-0.035),
            Phase("pull out", lambda v: v.tcp0 + (0.20, 0.0, 0.0), CLOSED, speed_mps=PULL_SPEED_MPS)]


def grasp_lift_test(lift_m: float = 0.10, hold_s: float = 2.0) -> list[Phase]:
    """Not a task: grasp the puck, lift it ``lift_m`` and hold it ``hold_s`` (the grasp benchmark's legs)."""
    return [Phase("above puck", _above(PUCK_APPROACH_DZ), OPEN, tolerance_m=0.012),
            _descend("down to puck", _PUCK_GRASP_DZ),
            _grasp("grasp", _PUCK_GRASP_DZ),
            Phase("lift and hold", lambda v: v.tcp0 + (0.0, 0.0, lift_m), CLOSED, tolerance_m=0.01, settle_s=hold_s,
                  max_s=hold_s + 2.0),
            Phase("done", lambda v: v.tcp0, CLOSED)]


def _window(direction: float) -> list[Phase]:
    # window-open/close-v3: the handle slides along x; put the closed fingers beside it and push it along
    return [Phase("above handle", _above(0.08, dx=-0.04 * direction), CLOSED, tolerance_m=0.015),
            Phase("down beside handle", _above(-0.01, dx=-0.04 * direction), CLOSED, tolerance_m=0.01),
            Phase("slide", _at_object(dx=0.08 * direction, dz=-0.01), CLOSED)]


#: The legs of each task's reference controller, by Meta-World v3 name (the paper's ten tasks).
PLANS: dict[str, Callable[[], list[Phase]]] = {
    "reach-v3": _reach,
    "push-v3": _push,
    "pick-place-v3": _pick_place,
    "door-open-v3": _door_open,
    "faucet-open-v3": _faucet_open,
    "drawer-close-v3": _drawer_close,
    "button-press-topdown-v3": _button_press_topdown,
    "peg-unplug-side-v3": _peg_unplug_side,
    "window-open-v3": lambda: _window(+1.0),
    "window-close-v3": lambda: _window(-1.0),
}


class ReferenceController:
    """The scripted reference controller of one task, with the policy interface of ``ControlLoop``.

    Args:
        env_id: Meta-World v3 name of the task, one of :data:`PLANS` (with ``phases``: any name).
        phases: legs to run instead of the task's (e.g. :func:`grasp_lift_test`).
        dt: control period, s (0.05: the robot's 20 Hz; 0.0125: Meta-World's mocap step); legs last seconds.

    Attributes:
        env_id: the task.
        phase: name of the leg being executed.

    Raises:
        ValueError: no reference controller for ``env_id`` (the message lists the tasks).
    """

    def __init__(self, env_id: str = "reach-v3", dt: float = 0.05, phases: list[Phase] | None = None):
        if not (np.isfinite(dt) and dt > 0.0):
            raise ValueError(f"dt must be a positive control period in s, got {dt!r}")
        self.dt = float(dt)
        if phases is None:
            self.select(env_id)
        else:  # a scripted motion that is not a task's (e.g. grasp_lift_test())
            self.env_id, self._phases = env_id, list(phases)
            self.reset()

    def select(self, env_id: str) -> None:
        """Act as the controller of ``env_id`` from its first leg (e.g. ``"drawer-close-v3"``).

        Raises:
            ValueError: unknown task.
        """
        if env_id not in PLANS:
            raise ValueError(f"no reference controller for {env_id!r}; there is one for {', '.join(PLANS)}")
        self.env_id = env_id
        self._phases = PLANS[env_id]()
        self.reset()

    def reset(self) -> None:
        """Start again from the first leg (a new episode or attempt)."""
        self._index, self._steps, self._settled, self._start = 0, 0, 0, None

    @property
    def phase(self) -> str:
        return self._phases[self._index].name

    def act(self, obs: np.ndarray, embedding: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """(4,) float64 action in [-1, 1] for the (12,) observation; component -1 (no knowledge space).

        ``embedding`` is ignored (the controller knows its task); it is there for ``ControlLoop``'s policy interface.

        Raises:
            ValueError: ``obs`` is not 12 finite numbers.
        """
        obs = np.asarray(obs, dtype=np.float64).reshape(-1)
        if obs.shape != (12,) or not np.all(np.isfinite(obs)):
            raise ValueError(f"obs must be the 12-d observation s_t (sim frame, m), got {obs!r}")
        tcp, obj, goal = obs[0:3] - EE_ABOVE_TCP, obs[3:6], obs[9:12]
        while True:
            phase = self._phases[self._index]
            if self._start is None:
                self._start = (obj.copy(), tcp.copy())
            view = View(tcp, obj, goal, *self._start)
            target = np.asarray(phase.target(view), dtype=np.float64)
            if self._index == len(self._phases) - 1 or not self._done(phase, target, view):
                break
            self._index, self._steps, self._settled, self._start = self._index + 1, 0, 0, None
        self._steps += 1
        speed = MAX_SPEED_MPS if phase.speed_mps is None else phase.speed_mps
        limit = min(1.0, speed * self.dt / ACTION_SCALE_M)  # action units per axis (1 unit = 1 cm per step)
        step = np.clip(GAIN * (target - tcp) / ACTION_SCALE_M, -limit, limit)
        return np.r_[step, phase.grip], -1

    def _done(self, phase: Phase, target: np.ndarray, view: View) -> bool:
        if self._steps * self.dt >= phase.max_s - 1e-9 or (phase.done is not None and phase.done(view)):
            return True
        self._settled = self._settled + 1 if np.linalg.norm(target - view.tcp) <= phase.tolerance_m else 0
        return (self._settled - 1) * self.dt >= phase.settle_s - 1e-9
