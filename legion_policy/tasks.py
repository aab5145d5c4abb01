"""The task library: which spoken commands map to which learned subtasks.

One YAML file (``legion_policy/data/task_library.yaml`` by default) lists every subtask with the
Meta-World v3 environment it is trained on and its spoken phrasings, plus long-horizon commands
that chain subtasks. Speech grammars, the trainer's language inputs and the runner all read it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

DEFAULT_LIBRARY_PATH = Path(str(resources.files("legion_policy") / "data" / "task_library.yaml"))


class UnknownCommandError(ValueError):
    """A command that matches no subtask or long-horizon task of the library.

    Attributes:
        text: the command as received.
        known: every phrasing the library accepts, sorted.
    """

    def __init__(self, text: str, known: list[str]):
        self.text = text
        self.known = known
        listing = "\n".join(f"  - {k}" for k in known)
        super().__init__(f"unknown command {text!r}. Known commands:\n{listing}")


class TaskLibraryError(ValueError):
    """The task library file is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Subtask:
    """One learned skill.

    Attributes:
        name: library key, e.g. ``"reach"``.
        env_id: Meta-World v3 environment name, e.g. ``"reach-v3"``.
        phrasings: spoken forms, lower case; ``phrasings[0]`` is the canonical description.
    """

    name: str
    env_id: str
    phrasings: tuple[str, ...]

    @property
    def description(self) -> str:
        """Canonical task description (the paper's language side information l)."""
        return self.phrasings[0]


@dataclass(frozen=True)
class Plan:
    """What a recognised command asks for: the text heard and the subtasks to run, in order."""

    text: str
    subtasks: tuple[Subtask, ...]


def normalise(text: str) -> str:
    """Lower-case, strip punctuation and collapse whitespace: ``"Reach  the goal!"`` → ``"reach the goal"``."""
    return " ".join(re.sub(r"[^a-z0-9' -]", " ", text.lower()).split())


class TaskLibrary:
    """Subtasks and long-horizon commands loaded from a task library YAML file.

    Args:
        subtasks: subtasks by name.
        long_horizon: long-horizon command name → (subtask names in order, phrasings).
        path: the file it was read from (for messages and checkpoint provenance).
    """

    def __init__(self, subtasks: dict[str, Subtask],
                 long_horizon: dict[str, tuple[tuple[str, ...], tuple[str, ...]]], path: Path | None = None):
        self.subtasks = subtasks
        self.long_horizon = long_horizon
        self.path = path
        self._index: dict[str, tuple[str, ...]] = {}
        for st in subtasks.values():
            for p in st.phrasings:
                self._add(p, (st.name,))
        for name, (chain, phrasings) in long_horizon.items():
            for s in chain:
                if s not in subtasks:
                    raise TaskLibraryError(f"long-horizon task {name!r} names unknown subtask {s!r}; "
                                           f"known subtasks: {sorted(subtasks)}")
            for p in phrasings:
                self._add(p, chain)

    def _add(self, phrase: str, chain: tuple[str, ...]) -> None:
        key = normalise(phrase)
        if key in self._index and self._index[key] != chain:
            raise TaskLibraryError(f"phrasing {phrase!r} is used twice with different meanings")
        self._index[key] = chain

    def phrasings(self) -> list[str]:
        """Every accepted phrasing (subtasks and long-horizon), normalised and sorted."""
        return sorted(self._index)

    def words(self) -> list[str]:
        """The vocabulary of all phrasings, sorted (for recogniser dictionaries)."""
        return sorted({w for p in self._index for w in p.split()})

    def plan(self, text: str) -> Plan:
        """Map a recognised command to the subtasks to run.

        Raises:
            UnknownCommandError: the text matches no phrasing exactly (after :func:`normalise`).
        """
        chain = self._index.get(normalise(text))
        if chain is None:
            raise UnknownCommandError(text, self.phrasings())
        return Plan(text=normalise(text), subtasks=tuple(self.subtasks[s] for s in chain))

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
                           {n: lh for n, lh in self.long_horizon.items() if set(lh[0]) <= keep}, self.path)

    def to_dict(self) -> dict:
        """Plain-data form (what checkpoints record); :func:`library_from_dict` inverts it."""
        return {
            "format_version": 1,
            "subtasks": {n: {"env_id": s.env_id, "phrasings": list(s.phrasings)} for n, s in self.subtasks.items()},
            "long_horizon": {n: {"subtasks": list(c), "phrasings": list(p)} for n, (c, p) in self.long_horizon.items()},
        }


def library_from_dict(data: dict, path: Path | None = None) -> TaskLibrary:
    """Build a :class:`TaskLibrary` from the YAML's plain data.

    Raises:
        TaskLibraryError: a required key is missing or has the wrong type.
    """
    where = str(path) if path else "task library"
    try:
        subtasks = {
            name: Subtask(name=name, env_id=str(spec["env_id"]),
                          phrasings=tuple(normalise(p) for p in spec["phrasings"]))
            for name, spec in data["subtasks"].items()
        }
        long_horizon = {
            name: (tuple(spec["subtasks"]), tuple(normalise(p) for p in spec.get("phrasings", [name])))
            for name, spec in (data.get("long_horizon") or {}).items()
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise TaskLibraryError(f"{where}: malformed entry ({exc!r}); each subtask needs env_id and phrasings") from exc
    if not subtasks:
        raise TaskLibraryError(f"{where}: no subtasks")
    for st in subtasks.values():
        if not st.phrasings:
            raise TaskLibraryError(f"{where}: subtask {st.name!r} has no phrasings")
    return TaskLibrary(subtasks, long_horizon, path)


def load_task_library(path: str | Path | None = None) -> TaskLibrary:
    """Read a task library YAML file (default: the one shipped in ``legion_policy/data``).

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
