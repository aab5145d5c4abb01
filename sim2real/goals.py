"""The goal of a subtask from the detected objects and the task context (the paper: "the task-related goal
position is determined by the initial position of the detected object and the corresponding side information
context").

A :class:`GoalRule` names the object a subtask acts on and where its goal lies: at the initial position of a
goal object (a marker) or of the object itself, plus a fixed offset in the sim frame. The offsets reproduce
Meta-World v3's ``reset_model`` geometry, so the derived goal is the goal the policy was trained with.
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
    """

    object: str
    goal_object: str | None = None
    offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def goal(self, initial: dict[str, np.ndarray]) -> np.ndarray:
        """(3,) goal in the sim frame from the initial positions ``{object: (3,) sim frame, m}``.

        Raises:
            ObjectNotSeenError: the object the goal is derived from is missing.
        """
        source = self.goal_object or self.object
        if source not in initial:
            raise ObjectNotSeenError(f"cannot derive the goal: {source!r} is not detected (seen: {sorted(initial)})")
        return np.asarray(initial[source], dtype=np.float64) + np.asarray(self.offset_m)


#: Meta-World v3 env id -> rule. reach-v3: the goal is a marker of its own. drawer-close-v3: reset_model puts
#: the goal at drawer + (0, -0.16, 0.09) and pulls the drawer out fully, which leaves the handle point at
#: drawer + (0, -0.32, 0.14): the goal is the initial handle + (0, 0.16, -0.05) (tests/test_sim_perception.py).
GOAL_RULES: dict[str, GoalRule] = {
    "reach-v3": GoalRule(object="puck", goal_object="goal"),
    "drawer-close-v3": GoalRule(object="drawer_handle", offset_m=(0.0, 0.16, -0.05)),
}
