"""Long-horizon commands as sequences of learned subtasks (the task sequencer node's logic, plain Python).

A recognised command is planned with the task library (:meth:`legion_language.tasks.TaskLibrary.plan`) and its
subtasks run one at a time, in an order chosen by ``order``:

* ``"library"``: the order the library lists (a compound command's subtasks in library order);
* ``"random"``: the subtasks of a ``set`` task ("clean the table") shuffled with ``rng``; a ``chain`` ("make
  the coffee") and single subtasks keep their order (the status notes it);
* ``"spoken"``: a compound command ("close the drawer then press the button") in the order spoken, anything
  else in library order.

The sequencer is stepped once per control step with what perception gives (tcp, object point, goal; sim frame,
m). Success is judged with the subtask's library :class:`sim2real.goals.SuccessTest` (Meta-World v3's own
``evaluate_state`` test) on those perceived positions. An attempt that has used ``max_steps`` steps (paper: 150)
without success failed; it is tried again ``retries`` times, then the sequencer moves on. :meth:`skip` gives up
on the current subtask without attempting it (its object is not seen). In a chain, a subtask that finally fails
or is skipped stops the chain: the later subtasks are skipped with reason :data:`CHAIN_FAILED`.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from legion_language.tasks import Plan, Subtask, TaskLibrary, UnknownCommandError

ORDERS = ("library", "random", "spoken")
CHAIN_FAILED = "previous subtask of the chain failed"


@dataclass
class Attempt:
    """One attempt at a subtask.

    Attributes:
        subtask: library name of the subtask.
        attempt: 1 for the first try, 2 for the retry...
        steps: control steps used.
        success: the success test passed.
        skipped: why the subtask was not attempted (further), or None.
        why: why the attempt ended: "success", "max_steps" (its step budget used), or the reason given to
            :meth:`TaskSequencer.expire` (e.g. its time ran out without observations); "" while it runs.
    """

    subtask: str
    attempt: int = 1
    steps: int = 0
    success: bool = False
    skipped: str | None = None
    why: str = ""


class TaskSequencer:
    """Runs the subtasks of one command (see the module docstring).

    Args:
        library: the task library (checkpoint's or the shipped one).
        max_steps: control steps per attempt (paper: 150).
        retries: extra attempts of a failed subtask (0: none).
        order: ``"library"``, ``"random"`` or ``"spoken"``.
        rng: ``random.Random`` for ``"random"`` (default: a fresh unseeded one).
        confirm_steps: consecutive steps the success test must pass before the attempt succeeds (1: at once). A
            measured object (cameras) needs a few: its millimetres of noise at a threshold otherwise decide a step
            before the true state does.
        matcher: builds the :class:`legion_language.matching.CommandMatcher` of ``library`` for commands in one's
            own words (called once, at the first command that is no library phrasing: the language model loads
            then); None: library phrasings only.

    Raises:
        ValueError: unknown order, ``max_steps`` < 1, ``retries`` < 0 or ``confirm_steps`` < 1.
    """

    def __init__(self, library: TaskLibrary, max_steps: int = 150, retries: int = 1, order: str = "library",
                 rng: random.Random | None = None, confirm_steps: int = 1, matcher: Callable[[], Any] | None = None):
        if order not in ORDERS:
            raise ValueError(f"order must be one of {list(ORDERS)}, got {order!r}")
        if max_steps < 1 or retries < 0 or confirm_steps < 1:
            raise ValueError(f"need max_steps >= 1, retries >= 0 and confirm_steps >= 1, got {max_steps}, {retries} "
                             f"and {confirm_steps}")
        self.library, self.max_steps, self.retries, self.order = library, int(max_steps), int(retries), order
        self.confirm_steps, self._passed = int(confirm_steps), 0
        self.rng = rng or random.Random()
        self.plan: Plan | None = None
        self.queue: list[Subtask] = []
        self.order_used, self.note = "", ""
        self.index = 0
        self.attempts: list[Attempt] = []
        self._make_matcher, self._matcher = matcher, None
        self.understood: list = []  # legion_language.matching.Understanding of each clause, for a matched command

    def command(self, text: str) -> str:
        """Start a command (dropping any running one); returns the description of its first subtask.

        Raises:
            legion_language.tasks.UnknownCommandError: ``text`` is not in the library (it lists the known ones); with
                a matcher, :class:`legion_language.matching.NotUnderstoodError` (the closest known commands).
        """
        try:
            plan, understood = self.library.plan(text), []
        except UnknownCommandError:
            if self._make_matcher is None:
                raise
            self._matcher = self._matcher or self._make_matcher()
            plan, understood = self._matcher.plan(text)
        self.understood = understood
        queue, self.note = list(plan.subtasks), ""
        if plan.order == "set" and self.order == "random":
            self.rng.shuffle(queue)
            self.order_used = "random"
        elif plan.order == "spoken" and self.order != "spoken":
            names = list(self.library.subtasks)
            queue.sort(key=lambda st: names.index(st.name))
            self.order_used = "library"
        else:
            self.order_used = {"set": "library"}.get(plan.order, plan.order)
        if plan.order == "chain" and self.order == "random":
            self.note = f"{plan.text!r} is a chain: it runs in its order, order 'random' applies to set tasks only"
        self.plan, self.queue, self.index = plan, queue, 0
        self.attempts = [Attempt(queue[0].name)]
        return self.current()

    def current_subtask(self) -> Subtask | None:
        """The subtask to run now (None when idle or done)."""
        return self.queue[self.index] if self.index < len(self.queue) else None

    def current(self) -> str:
        """Description of the subtask to run now ('' when idle or done)."""
        subtask = self.current_subtask()
        return subtask.description if subtask else ""

    def step(self, tcp: np.ndarray, obj: np.ndarray | None, goal: np.ndarray | None) -> bool:
        """Count one control step of the running subtask and judge its success.

        Args:
            tcp: (3,) tool centre point, sim frame, m.
            obj: (3,) perceived object point, sim frame, m; None while not seen (then an object test cannot pass).
            goal: (3,) goal, sim frame, m; None while not derived.

        Returns:
            True when the subtask changed (next subtask, a retry, or done).
        """
        subtask = self.current_subtask()
        if subtask is None:
            return False
        attempt = self.attempts[-1]
        if attempt.steps == 0:
            self._passed = 0
        attempt.steps += 1
        test = subtask.success
        passed = goal is not None and (obj is not None or not test.uses_object) and test.passed(tcp, obj, goal)
        self._passed = self._passed + 1 if passed else 0
        if self._passed >= self.confirm_steps:
            attempt.success, attempt.why = True, "success"
        elif attempt.steps < self.max_steps:
            return False
        else:
            attempt.why = "max_steps"
        self._finish(attempt)
        return True

    def expire(self, why: str) -> bool:
        """End the running attempt as failed for ``why`` (e.g. its time ran out while no observations came), then
        retry or move on as after a failure.

        Returns:
            True when an attempt was running.
        """
        if self.current_subtask() is None:
            return False
        self.attempts[-1].why = why
        self._finish(self.attempts[-1])
        return True

    def skip(self, reason: str) -> bool:
        """Give up the current subtask without attempting it (further), e.g. its object is not seen.

        Returns:
            True when there was a subtask to skip.
        """
        if self.current_subtask() is None:
            return False
        self.attempts[-1].skipped = reason
        self._finish(self.attempts[-1])
        return True

    def _finish(self, attempt: Attempt) -> None:
        """End ``attempt``: retry it, or move on (stopping a chain after a failure)."""
        if not attempt.success and attempt.skipped is None and attempt.attempt <= self.retries:
            self.attempts.append(Attempt(attempt.subtask, attempt.attempt + 1))
            return
        self.index += 1
        if not attempt.success and self.order_used == "chain":
            self.attempts += [Attempt(st.name, skipped=CHAIN_FAILED) for st in self.queue[self.index:]]
            self.index = len(self.queue)
        elif self.index < len(self.queue):
            self.attempts.append(Attempt(self.queue[self.index].name))

    def status(self) -> dict:
        """JSON-ready status for the ROS node: command, state (idle/running/done), order used, note, subtask index
        and description, attempts so far (:class:`Attempt` fields); when done also ``success`` (every subtask
        succeeded) and ``subtasks`` (:meth:`report`'s, each with ``why`` it ended: success, max_steps, the
        expiry reason or the skip reason)."""
        state = "idle" if self.plan is None else ("running" if self.current() else "done")
        status = {"command": self.plan.text if self.plan else "", "state": state, "order": self.order_used,
                  "note": self.note, "subtask_index": self.index, "subtask": self.current(),
                  "attempts": [asdict(a) for a in self.attempts]}
        if self.understood:  # a command in one's own words: what it was understood as, and how sure
            status["understood"] = [{"text": u.text, "meaning": u.meaning, "score": round(u.score, 3)}
                                    for u in self.understood]
        if state == "done":  # the outcome, and why each subtask ended as it did
            report = self.report()
            status["success"] = report["success"]
            status["subtasks"] = [{**s, "why": next((a.why or (a.skipped or "") for a in reversed(self.attempts)
                                                     if a.subtask == s["subtask"]), "")}
                                  for s in report["subtasks"]]
        return status

    def report(self) -> dict:
        """JSON-ready outcome of the command.

        Returns:
            ``command``, ``order`` (used: library, random, spoken, chain or single), ``note``, ``done``,
            ``attempts`` (run order, :class:`Attempt` fields), ``subtasks`` (every planned subtask in run order:
            name, final ``success``, ``skipped`` reason, number of ``attempts`` that ran, 0 when not attempted) and
            ``success`` (every subtask succeeded).
        """
        finals = [a for i, a in enumerate(self.attempts)
                  if i + 1 == len(self.attempts) or self.attempts[i + 1].attempt == 1]
        # a skipped attempt that never ran is not an attempt (a chain's later subtasks, an object not seen)
        subtasks = [{"subtask": a.subtask, "success": a.success, "skipped": a.skipped,
                     "attempts": a.attempt - (a.skipped is not None and a.steps == 0)} for a in finals]
        subtasks += [{"subtask": st.name, "success": False, "skipped": None, "attempts": 0}
                     for st in self.queue[len(finals):]]  # not started yet
        done = self.plan is not None and self.current_subtask() is None
        return {"command": self.plan.text if self.plan else "", "order": self.order_used, "note": self.note,
                "done": done, "attempts": [asdict(a) for a in self.attempts], "subtasks": subtasks,
                "success": done and all(s["success"] for s in subtasks)}
