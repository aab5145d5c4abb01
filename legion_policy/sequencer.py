"""Long-horizon commands as sequences of learned subtasks (the task sequencer node's logic).

A recognised command is planned with the task library (:meth:`legion_policy.tasks.TaskLibrary.plan`);
its subtasks then run one at a time. The sequencer is stepped once per control step (one observation)
and moves on when the running subtask succeeds or has used ``max_steps`` steps (paper: 150); a failed
subtask is tried again up to ``retries`` times. Success is judged from the 12-d observation where a
test exists (:data:`SUCCESS_TESTS`, Meta-World's own thresholds); other subtasks end on their step budget
and are reported with ``success: None`` (unknown) until perception judges them (issue 8).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from legion_policy.tasks import Plan, TaskLibrary

#: env_id -> success test on the 12-d sim-frame observation (sim2real.observation layout: ee 0:3, object 3:6,
#: goal 9:12). reach-v3: Meta-World's ``reach_dist <= 0.05`` m between the hand and the goal.
SUCCESS_TESTS: dict[str, Callable[[np.ndarray], bool]] = {
    "reach-v3": lambda obs: float(np.linalg.norm(obs[0:3] - obs[9:12])) <= 0.05,
}


@dataclass
class SubtaskRecord:
    """One attempt: subtask name, steps used, success (None: no test for this subtask)."""

    subtask: str
    steps: int = 0
    success: bool | None = None


@dataclass
class TaskSequencer:
    """Runs the subtasks of one command in order (see the module docstring).

    Args:
        library: the task library (checkpoint's or the shipped one).
        max_steps: control steps per subtask attempt (paper: 150).
        retries: extra attempts of a failed subtask (0: none).
    """

    library: TaskLibrary
    max_steps: int = 150
    retries: int = 1
    plan: Plan | None = None
    index: int = 0
    attempt: int = 0
    records: list[SubtaskRecord] = field(default_factory=list)

    def command(self, text: str) -> str:
        """Start a command; returns the description of its first subtask.

        Raises:
            legion_policy.tasks.UnknownCommandError: ``text`` is not in the library (it lists the known ones).
        """
        self.plan, self.index, self.attempt = self.library.plan(text), 0, 0
        self.records = [SubtaskRecord(self.plan.subtasks[0].name)]
        return self.current()

    def current(self) -> str:
        """Description of the subtask to run now ('' when idle or done)."""
        if self.plan is None or self.index >= len(self.plan.subtasks):
            return ""
        return self.plan.subtasks[self.index].description

    def step(self, obs: np.ndarray) -> bool:
        """Count one control step of the running subtask, observed as ``obs`` (12,). True if the subtask changed."""
        if not self.current():
            return False
        subtask = self.plan.subtasks[self.index]
        record = self.records[-1]
        record.steps += 1
        test = SUCCESS_TESTS.get(subtask.env_id)
        if test is not None and test(np.asarray(obs)):
            record.success = True
        elif record.steps < self.max_steps:
            return False
        elif test is not None:
            record.success = False
            if self.attempt < self.retries:  # try the same subtask again
                self.attempt += 1
                self.records.append(SubtaskRecord(subtask.name))
                return True
        self.index, self.attempt = self.index + 1, 0
        if self.current():
            self.records.append(SubtaskRecord(self.plan.subtasks[self.index].name))
        return True

    def status(self) -> dict:
        """JSON-ready status: command, state (idle/running/done), subtask index, attempts so far."""
        state = "idle" if self.plan is None else ("running" if self.current() else "done")
        return {"command": self.plan.text if self.plan else "", "state": state, "subtask_index": self.index,
                "subtask": self.current(), "attempts": [vars(r).copy() for r in self.records]}
