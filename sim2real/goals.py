"""The goal of a subtask from the detected objects and the task context (the paper: "the task-related goal
position is determined by the initial position of the detected object and the corresponding side information
context"), and the subtask's success test on perceived positions.

A :class:`GoalRule` names the object a subtask acts on and where its goal lies: at the initial position of a
goal object (a marker) or of the object itself, plus a fixed offset in the sim frame. A :class:`SuccessTest`
reproduces Meta-World v3's ``evaluate_state`` success test from the tool centre point, the object point and
the goal. The rules and tests of the ten subtasks live in the task library
(``legion_language/data/task_library.yaml``, ``load_task_library().by_env_id(env_id).goal_rule`` / ``.success``),
where each offset and threshold is derived from the Meta-World source it reproduces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class ObjectNotSeenError(RuntimeError):
    """An object a subtask needs is not (or no longer) detected; the subtask must not be attempted blind."""


@dataclass(frozen=True)
class GoalRule:
    """How one subtask's goal is derived.

    Attributes:
        object: tag-map object the subtask acts on (observation[3:6]).
        goal_object: tag-map object whose initial position is the goal; None: the goal is derived from ``object``.
        offset_m: (3,) added to that initial position, sim frame, m.
        rest_z_m: sim-frame z of the object point while the object rests on the table (the sim frame's table top is
            z = 0), m, for objects that lie loose on it (the pucks); None: the object is not loose. Perception holds
            a measured height near it at it (:func:`sim2real.object_state.on_table`).
    """

    object: str
    goal_object: str | None = None
    offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rest_z_m: float | None = None

    def goal(self, initial: dict[str, np.ndarray]) -> np.ndarray:
        """(3,) goal in the sim frame from the initial positions ``{object: (3,) sim frame, m}``.

        Raises:
            ObjectNotSeenError: the object the goal is derived from is missing.
        """
        source = self.goal_object or self.object
        if source not in initial:
            raise ObjectNotSeenError(f"cannot derive the goal: {source!r} is not detected (seen: {sorted(initial)})")
        return np.asarray(initial[source], dtype=np.float64) + np.asarray(self.offset_m)


#: Success measures, name -> the axes of (object or tcp) - goal that the Euclidean distance is taken over.
MEASURES: dict[str, tuple[str, tuple[int, ...]]] = {
    "tcp_to_goal": ("tcp", (0, 1, 2)),
    "object_to_goal": ("object", (0, 1, 2)),
    "object_to_goal_x": ("object", (0,)),
    "object_to_goal_y": ("object", (1,)),
    "object_to_goal_z": ("object", (2,)),
}


@dataclass(frozen=True)
class SuccessTest:
    """A subtask's success test: ``distance(tcp, obj, goal) <= threshold_m`` (Meta-World's ``evaluate_state``).

    Attributes:
        measure: a key of :data:`MEASURES`: ``"tcp_to_goal"`` / ``"object_to_goal"`` (3-D distance) or
            ``"object_to_goal_x|y|z"`` (absolute difference along one sim axis).
        threshold_m: success when the distance is at most this, m.
        object_offset_m: (3,) added to the object point before measuring, sim frame, m (faucet-open-v3
            measures the handle point shifted by (-0.04, 0, 0.03)).

    Raises:
        ValueError: unknown measure, or a threshold that is not a positive number.
    """

    measure: str
    threshold_m: float
    object_offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self):
        if self.measure not in MEASURES:
            raise ValueError(f"unknown success measure {self.measure!r}; known: {sorted(MEASURES)}")
        if not (isinstance(self.threshold_m, (int, float)) and self.threshold_m > 0):
            raise ValueError(f"threshold_m must be a positive number of metres, got {self.threshold_m!r}")

    @property
    def uses_object(self) -> bool:
        """True when the test measures the object point (False: the tool centre point)."""
        return MEASURES[self.measure][0] == "object"

    def distance(self, tcp: np.ndarray, obj: np.ndarray, goal: np.ndarray) -> float:
        """The measured distance, m.

        Args:
            tcp: (3,) tool centre point, sim frame (= Meta-World world frame), m.
            obj: (3,) object point (observation[3:6]), sim frame, m.
            goal: (3,) goal, sim frame, m.
        """
        source, axes = MEASURES[self.measure]
        point = np.asarray(tcp, np.float64) if source == "tcp" else np.asarray(obj, np.float64) + self.object_offset_m
        return float(np.linalg.norm((point - np.asarray(goal, np.float64))[list(axes)]))

    def passed(self, tcp: np.ndarray, obj: np.ndarray, goal: np.ndarray) -> bool:
        """True when :meth:`distance` (same arguments: (3,) each, sim frame, m) is at most ``threshold_m``."""
        return self.distance(tcp, obj, goal) <= self.threshold_m
