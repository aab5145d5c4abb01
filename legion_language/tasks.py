"""The task library: which spoken commands map to which learned subtasks, and what each subtask needs.

One YAML file (``legion_language/data/task_library.yaml`` by default) lists every subtask with the
Meta-World v3 environment it is trained on, its spoken phrasings, the perceived object it acts on, how its
goal is derived (:class:`sim2real.goals.GoalRule`) and its success test (:class:`sim2real.goals.SuccessTest`),
plus long-horizon commands made of subtasks, strictly ordered (``chain``) or in any order (``set``). Speech
grammars, the trainer's language inputs, perception and the task sequencer all read it; the file's header
comment documents the schema.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from sim2real.goals import GoalRule, SuccessTest

DEFAULT_LIBRARY_PATH = Path(str(resources.files("legion_language") / "data" / "task_library.yaml"))
FORMAT_VERSION = 2
#: Long-horizon orders: ``chain`` runs the subtasks strictly in the listed order, ``set`` in any order.
LONG_HORIZON_ORDERS = ("chain", "set")
#: Words that join subtask phrasings into one compound command, longest first ("close the drawer then ...").
JOINERS = (("and", "then"), ("then",), ("and",))


#: The paper's stream of Meta-World v3 tasks, easy to hard (Results, "Stream of tasks").
PAPER_STREAM = ["reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "faucet-open-v3", "drawer-close-v3",
                "button-press-topdown-v3", "peg-unplug-side-v3", "window-open-v3", "window-close-v3"]
#: The paper's few-shot recall stream (5 tasks, trained in 3 loops with a buffer for 3 visits).
FEW_SHOT_STREAM = ["reach-v3", "push-v3", "faucet-open-v3", "button-press-topdown-v3", "window-close-v3"]


class UnknownCommandError(ValueError):
    """A command that matches no subtask or long-horizon task of the library.

    Attributes:
        text: the command as received.
        known: every phrasing the library accepts, sorted.
        part: the part of a compound command that is unknown (``None`` for a single command).
    """

    def __init__(self, text: str, known: list[str], part: str | None = None):
        self.text = text
        self.known = known
        self.part = part
        listing = "\n".join(f"  - {k}" for k in known)
        what = f"unknown task {text!r}" + (f" (unknown part {part!r})" if part is not None else "")
        super().__init__(f"{what}. Known tasks (subtasks can be joined with 'then' or 'and'):\n{listing}")


class MissingSkillsError(UnknownCommandError):
    """A command of the shipped task library that needs skills a checkpoint was not trained on.

    Attributes (besides :class:`UnknownCommandError`'s):
        checkpoint: the checkpoint that lacks them (as given).
        missing: names of the subtasks it lacks, in the command's order.
        have: names of the subtasks it has.
        holders: checkpoints that have every subtask of the command (e.g. ``models/legion-table-kuka/checkpoint``).
    """

    def __init__(self, text: str, known: list[str], *, checkpoint: str, missing: list[str], have: list[str],
                 holders: list[str]):
        self.text, self.known, self.part = text, known, None
        self.checkpoint, self.missing, self.have, self.holders = checkpoint, missing, have, holders
        where = (f"The shipped checkpoint {holders[0]} has them: legion run --checkpoint {holders[0]} --text "
                 f"{text!r}" + (f" (also: {', '.join(holders[1:])})" if holders[1:] else "")) if holders else \
            "No shipped checkpoint has them all: train one with `legion train --tasks ...`"
        ValueError.__init__(self, f"{text!r} needs skills that checkpoint {checkpoint} was not trained on: "
                                  f"{', '.join(missing)} (it has {', '.join(have)}). {where}")


class TaskLibraryError(ValueError):
    """The task library file is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Subtask:
    """One learned skill.

    Attributes:
        name: library key, e.g. ``"reach"``.
        env_id: Meta-World v3 environment name, e.g. ``"reach-v3"``.
        phrasings: spoken forms, lower case; ``phrasings[0]`` is the canonical description.
        goal_rule: the object it acts on and how its goal is derived (sim frame, m).
        success: its success test on (tcp, object point, goal).
    """

    name: str
    env_id: str
    phrasings: tuple[str, ...]
    goal_rule: GoalRule
    success: SuccessTest

    @property
    def description(self) -> str:
        """Canonical task description (the paper's language side information l)."""
        return self.phrasings[0]

    @property
    def object(self) -> str:
        """The perceived object the subtask acts on (observation[3:6]), e.g. ``"drawer_handle"``."""
        return self.goal_rule.object


@dataclass(frozen=True)
class LongHorizonTask:
    """A spoken command made of several subtasks.

    Attributes:
        name: library key, e.g. ``"make the coffee"``.
        subtasks: subtask names, in the order to run them for ``chain`` (the library order for ``set``).
        order: ``"chain"`` (strictly ordered) or ``"set"`` (any order).
        phrasings: spoken forms, normalised.
    """

    name: str
    subtasks: tuple[str, ...]
    order: str
    phrasings: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """What a recognised command asks for.

    Attributes:
        text: the command heard, normalised.
        subtasks: the subtasks to run, in library (or spoken) order.
        order: ``"single"`` (one subtask), ``"chain"`` / ``"set"`` (a long-horizon task), ``"spoken"`` (a compound
            command: subtask phrasings joined by "then", "and then" or "and", in the order spoken).
    """

    text: str
    subtasks: tuple[Subtask, ...]
    order: str = "single"


def normalise(text: str) -> str:
    """Lower-case, strip punctuation and collapse whitespace: ``"Reach  the goal!"`` → ``"reach the goal"``."""
    return " ".join(re.sub(r"[^a-z0-9' -]", " ", text.lower()).split())


class TaskLibrary:
    """Subtasks and long-horizon commands loaded from a task library YAML file.

    Args:
        subtasks: subtasks by name.
        long_horizon: long-horizon tasks by name.
        path: the file it was read from (for messages and checkpoint provenance).

    Raises:
        TaskLibraryError: a long-horizon task names an unknown subtask or has an unknown order, or a phrasing
            is used twice with different meanings.
    """

    def __init__(self, subtasks: dict[str, Subtask], long_horizon: dict[str, LongHorizonTask],
                 path: Path | None = None):
        self.subtasks = subtasks
        self.long_horizon = long_horizon
        self.path = path
        self._index: dict[str, tuple[str, ...]] = {}
        self._subtask_phrasings: set[str] = set()
        for st in subtasks.values():
            for p in st.phrasings:
                self._add(p, (st.name,))
                self._subtask_phrasings.add(normalise(p))
        for task in long_horizon.values():
            for s in task.subtasks:
                if s not in subtasks:
                    raise TaskLibraryError(f"long-horizon task {task.name!r} names unknown subtask {s!r}; "
                                           f"known subtasks: {sorted(subtasks)}")
            if task.order not in LONG_HORIZON_ORDERS:
                raise TaskLibraryError(f"long-horizon task {task.name!r}: order must be one of "
                                       f"{list(LONG_HORIZON_ORDERS)}, got {task.order!r}")
            for p in task.phrasings:
                self._add(p, (task.name,))

    def _add(self, phrase: str, meaning: tuple[str, ...]) -> None:
        key = normalise(phrase)
        if key in self._index and self._index[key] != meaning:
            raise TaskLibraryError(f"phrasing {phrase!r} is used twice with different meanings")
        self._index[key] = meaning

    def phrasings(self) -> list[str]:
        """Every accepted phrasing (subtasks and long-horizon), normalised and sorted."""
        return sorted(self._index)

    def subtask_phrasings(self) -> list[str]:
        """The phrasings of subtasks only (the parts of compound commands), normalised and sorted."""
        return sorted(self._subtask_phrasings)

    def words(self) -> list[str]:
        """The vocabulary of all phrasings and joiners, sorted (for recogniser dictionaries)."""
        return sorted({w for p in self._index for w in p.split()} | {w for j in JOINERS for w in j})

    def plan(self, text: str) -> Plan:
        """Map a recognised command to the subtasks to run.

        ``text`` is one phrasing of a subtask or long-horizon task, or a compound command: subtask phrasings
        joined by " then ", " and then " or " and " (run in the spoken order).

        Raises:
            UnknownCommandError: the text (after :func:`normalise`) is none of these; for a compound command
                its ``part`` names the first part that is not a subtask phrasing.
        """
        key = normalise(text)
        meaning = self._index.get(key)
        if meaning is not None:
            (name,) = meaning
            if name in self.long_horizon:
                task = self.long_horizon[name]
                return Plan(key, tuple(self.subtasks[s] for s in task.subtasks), task.order)
            return Plan(key, (self.subtasks[name],), "single")
        words = key.split()
        if not any(w in ("then", "and") for w in words):
            raise UnknownCommandError(text, self.phrasings())
        parts, unknown = _segment(tuple(words), frozenset(self._subtask_phrasings))
        if parts is None:
            raise UnknownCommandError(text, self.phrasings(), part=unknown)
        by_phrase = {normalise(p): st for st in self.subtasks.values() for p in st.phrasings}
        return Plan(key, tuple(by_phrase[p] for p in parts), "spoken")

    def by_env_id(self, env_id: str) -> Subtask:
        """The subtask trained on Meta-World environment ``env_id``.

        Raises:
            KeyError: no subtask uses that environment.
        """
        for st in self.subtasks.values():
            if st.env_id == env_id:
                return st
        raise KeyError(f"no subtask of the task library uses {env_id!r}; "
                       f"known: {sorted(s.env_id for s in self.subtasks.values())}")

    def restricted_to(self, env_ids) -> "TaskLibrary":
        """The library reduced to the subtasks trained on ``env_ids`` and the long-horizon tasks made
        only of them (what a checkpoint trained on those environments can do).

        Raises:
            KeyError: an env_id is used by no subtask.
        """
        keep = {self.by_env_id(e).name for e in env_ids}
        return TaskLibrary({n: s for n, s in self.subtasks.items() if n in keep},
                           {n: t for n, t in self.long_horizon.items() if set(t.subtasks) <= keep}, self.path)

    def to_dict(self) -> dict:
        """Plain-data form, the YAML's schema (what checkpoints record); :func:`library_from_dict` inverts it."""
        def goal(rule: GoalRule) -> dict:
            out = {"goal_object": rule.goal_object} if rule.goal_object else {}
            return out | {"offset_m": list(rule.offset_m)}

        def success(test: SuccessTest) -> dict:
            out = {"measure": test.measure, "threshold_m": test.threshold_m}
            return out | ({"object_offset_m": list(test.object_offset_m)} if any(test.object_offset_m) else {})

        return {
            "format_version": FORMAT_VERSION,
            "subtasks": {n: {"env_id": s.env_id, "phrasings": list(s.phrasings), "object": s.object}
                         | ({} if s.goal_rule.rest_z_m is None else {"object_rest_z_m": s.goal_rule.rest_z_m})
                         | {"goal": goal(s.goal_rule), "success": success(s.success)}
                         for n, s in self.subtasks.items()},
            "long_horizon": {n: {"order": t.order, "subtasks": list(t.subtasks), "phrasings": list(t.phrasings)}
                             for n, t in self.long_horizon.items()},
        }


def _segment(words: tuple[str, ...], phrases: frozenset[str]) -> tuple[tuple[str, ...] | None, str | None]:
    """Split ``words`` into ``phrases`` joined by :data:`JOINERS`.

    Returns:
        (the phrases in order, None), or (None, the first part that is no phrase) when no split exists.
    """
    @lru_cache(maxsize=None)
    def parse(i: int) -> tuple[str, ...] | None:
        for j in range(len(words), i, -1):
            part = " ".join(words[i:j])
            if part not in phrases:
                continue
            if j == len(words):
                return (part,)
            for joiner in JOINERS:
                k = j + len(joiner)
                if words[j:k] == joiner and (rest := parse(k)) is not None:
                    return (part,) + rest
        return None

    def after_joiner(j: int) -> list[int]:
        return [j + len(joiner) for joiner in JOINERS if words[j:j + len(joiner)] == joiner]

    parts = parse(0)
    if parts is not None:
        return parts, None
    # the unknown part starts at the furthest point reached by known phrases + joiners from the left, and
    # ends before the first joiner after which the rest is a valid compound (else at the end)
    start, frontier = 0, [0]
    while frontier:
        i = frontier.pop()
        start = max(start, i)
        frontier += [k for j in range(i + 1, len(words) + 1) if " ".join(words[i:j]) in phrases
                     for k in after_joiner(j) if k > start]
    end = next((j for j in range(start + 1, len(words)) if any(parse(k) for k in after_joiner(j))), len(words))
    return None, " ".join(words[start:end])


def _vector(value, subtask: str, field: str) -> tuple[float, float, float]:
    """(3,) floats from a YAML list, or TaskLibraryError naming the subtask and field."""
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3:
        raise TaskLibraryError(f"subtask {subtask!r}: {field} must be a list of 3 numbers (m), got {value!r}")
    return out


def _subtask(name: str, spec, legacy: TaskLibrary | None) -> Subtask:
    """One subtask from its YAML mapping (``legacy``: where format-1 libraries take goal rules and tests from)."""
    if not isinstance(spec, dict):
        raise TaskLibraryError(f"subtask {name!r} must be a mapping with env_id, phrasings, object, goal, success")
    missing = [f for f in ("env_id", "phrasings") if f not in spec]
    if missing:
        raise TaskLibraryError(f"subtask {name!r}: missing field {missing[0]!r}")
    env_id, phrasings = str(spec["env_id"]), spec["phrasings"]
    if not isinstance(phrasings, list) or not phrasings:
        raise TaskLibraryError(f"subtask {name!r}: phrasings must be a non-empty list of strings")
    phrasings = tuple(normalise(str(p)) for p in phrasings)
    if legacy is not None:  # format 1 predates object/goal/success: take them from the shipped library
        try:
            known = legacy.by_env_id(env_id)
        except KeyError as exc:
            raise TaskLibraryError(f"subtask {name!r}: format 1 library and {exc.args[0]}") from exc
        return Subtask(name, env_id, phrasings, known.goal_rule, known.success)
    for field in ("object", "goal", "success"):
        if field not in spec:
            raise TaskLibraryError(f"subtask {name!r}: missing field {field!r}")
    obj, goal, success = spec["object"], spec["goal"], spec["success"]
    if not isinstance(obj, str) or not obj:
        raise TaskLibraryError(f"subtask {name!r}: object must be an object name, got {obj!r}")
    if not isinstance(goal, dict) or "offset_m" not in goal or set(goal) - {"goal_object", "offset_m"}:
        raise TaskLibraryError(f"subtask {name!r}: goal must be {{offset_m: [x, y, z]}} or "
                               f"{{goal_object: NAME, offset_m: [x, y, z]}}, got {goal!r}")
    goal_object = goal.get("goal_object")
    if goal_object is not None and (not isinstance(goal_object, str) or not goal_object):
        raise TaskLibraryError(f"subtask {name!r}: goal.goal_object must be an object name, got {goal_object!r}")
    rest_z = spec.get("object_rest_z_m")
    if rest_z is not None and (isinstance(rest_z, bool) or not isinstance(rest_z, (int, float))
                               or not 0.0 < rest_z < 0.5):
        raise TaskLibraryError(f"subtask {name!r}: object_rest_z_m must be the object point's height on the table, "
                               f"0 < z < 0.5 m, got {rest_z!r}")
    rule = GoalRule(obj, goal_object, _vector(goal["offset_m"], name, "goal.offset_m"),
                    None if rest_z is None else float(rest_z))
    if not isinstance(success, dict) or set(success) - {"measure", "threshold_m", "object_offset_m"}:
        raise TaskLibraryError(f"subtask {name!r}: success must be {{measure: M, threshold_m: T"
                               f"[, object_offset_m: [x, y, z]]}}, got {success!r}")
    offset = _vector(success.get("object_offset_m", [0.0, 0.0, 0.0]), name, "success.object_offset_m")
    try:
        test = SuccessTest(success.get("measure"), success.get("threshold_m"), offset)
    except ValueError as exc:
        raise TaskLibraryError(f"subtask {name!r}: success: {exc}") from exc
    return Subtask(name, env_id, phrasings, rule, test)


def library_from_dict(data: dict, path: Path | None = None) -> TaskLibrary:
    """Build a :class:`TaskLibrary` from the YAML's plain data (schema: the shipped file's header comment).

    Format 1 (checkpoints written before the library held goal rules and success tests) is accepted: its
    subtasks take object, goal and success from the shipped library's subtask of the same env_id, and its
    long-horizon tasks are chains.

    Raises:
        TaskLibraryError: a required key is missing or malformed (the message names the subtask and field).
    """
    where = str(path) if path else "task library"
    if not isinstance(data, dict) or not isinstance(data.get("subtasks"), dict) or not data["subtasks"]:
        raise TaskLibraryError(f"{where}: needs a non-empty 'subtasks' mapping")
    version = data.get("format_version", FORMAT_VERSION)
    if version not in (1, FORMAT_VERSION):
        raise TaskLibraryError(f"{where}: format_version {version!r} is not supported (1 or {FORMAT_VERSION})")
    legacy = load_task_library() if version == 1 else None
    try:
        subtasks = {name: _subtask(name, spec, legacy) for name, spec in data["subtasks"].items()}
        long_horizon = {}
        for name, spec in (data.get("long_horizon") or {}).items():
            if not isinstance(spec, dict) or not isinstance(spec.get("subtasks"), list):
                raise TaskLibraryError(f"long-horizon task {name!r}: missing field 'subtasks' (a list)")
            order = spec.get("order", "chain" if version == 1 else None)
            long_horizon[name] = LongHorizonTask(name, tuple(spec["subtasks"]), order,
                                                 tuple(normalise(p) for p in spec.get("phrasings", [name])))
        return TaskLibrary(subtasks, long_horizon, path)
    except TaskLibraryError as exc:
        raise TaskLibraryError(f"{where}: {exc}") from exc


def load_task_library(path: str | Path | None = None) -> TaskLibrary:
    """Read a task library YAML file (default: the one shipped in ``legion_language/data``).

    Raises:
        TaskLibraryError: the file is missing, is not YAML, or is malformed.
    """
    path = Path(path) if path else DEFAULT_LIBRARY_PATH
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise TaskLibraryError(f"cannot read task library {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise TaskLibraryError(f"task library {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TaskLibraryError(f"task library {path} must be a mapping with a 'subtasks' key")
    return library_from_dict(data, path)
