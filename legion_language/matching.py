"""A command in the user's own words → the task library's meaning, through the language model's embeddings.

The library accepts its own phrasings exactly (:meth:`legion_language.tasks.TaskLibrary.plan`). Anything else is
matched per clause by its nearest *exemplars* in the embedding space of the model the checkpoint records (cosine
similarity of L2-normalised sentence embeddings, :class:`legion_language.embedding.TextEmbedder`):

* the library's phrasings, each with its subtask or long-horizon task;
* the labelled command set's ``tune`` split (``data/command_set.yaml``): paraphrases with their meaning, and
  near-misses that must be refused ("close the door", "turn off the tap") with none;
* the *opposites* of the library's phrasings and of the tune paraphrases (open ↔ close, on ↔ off, ... by
  :data:`OPPOSITES`), with none, where the library has no skill for the opposite (it has "open the door" and no door-close: "close the door" is refused;
  it has both window skills: nothing is added). A sentence embedding barely tells an action from its opposite
  ("turn off the tap" lies at cosine 0.91 from "turn on the tap"); an exemplar of the opposite does.

A clause is understood as the meaning of its best exemplar when that similarity is at least ``threshold`` and
exceeds the best of every other meaning (refusal included) by at least ``margin``; otherwise it is refused and
nothing moves. The two numbers are chosen on the tune split for precision >= 0.99 (:func:`choose_thresholds`,
leave-one-out: a tune command is never its own exemplar) and reported on the test split.

Compound commands: the text is split at "then" / "and then" (always a new subtask); a clause is understood whole,
else split at "and" ("pick up the puck and place it" is one subtask, "open the door and press the button" two).
Every clause must be understood, and a long-horizon task cannot be part of a compound command.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import yaml

from legion_language.tasks import JOINERS, Plan, TaskLibrary, UnknownCommandError, normalise

DEFAULT_COMMAND_SET = Path(str(resources.files("legion_language") / "data" / "command_set.yaml"))
#: Chosen by :func:`choose_thresholds` on the tune split of ``data/command_set.yaml`` with all-MiniLM-L6-v2
#: (``benchmarks/bench_matching.py`` prints the choice and the test split's precision and recall).
DEFAULT_THRESHOLD = 0.82
DEFAULT_MARGIN = 0.05
#: Word swaps that turn a phrasing into its opposite action (both directions are listed).
OPPOSITES = {"open": "close", "close": "open", "closed": "open", "shut": "open", "on": "off", "off": "on",
             "unplug": "plug in", "out": "in", "press": "release", "down": "up", "push": "pull", "pull": "push"}
#: Meaning of an exemplar that must be refused.
REFUSE = None


class NotUnderstoodError(UnknownCommandError):
    """A command that is no library phrasing and that the matcher does not understand: nothing moves.

    Attributes (besides :class:`UnknownCommandError`'s): understanding: the refused clause's
    :class:`Understanding` (its closest known commands).
    """

    def __init__(self, text: str, known: list[str], understanding: "Understanding", part: str | None = None):
        super().__init__(text, known, part)
        self.understanding = understanding
        self.args = (f"{understanding.describe()}; nothing moves.\n{self.args[0]}",)


class CommandSetError(ValueError):
    """The labelled command set is malformed (a command without text, meaning or a tune / test split)."""


@dataclass(frozen=True)
class Understanding:
    """How one clause was matched.

    Attributes:
        text: the clause, normalised.
        meaning: the subtask or long-horizon task name understood, or None (refused).
        score: cosine similarity to the best exemplar of the best meaning (refusal included), in [-1, 1].
        margin: that score minus the best score of any other meaning (refusal included).
        best: the best meaning before the thresholds (None: a refusal exemplar was nearest).
        exemplar: the nearest exemplar of ``best``.
        closest: up to three (library phrasing, cosine) of the nearest library phrasings, best first.
        why: why an understood meaning was refused anyway, or "".
    """

    text: str
    meaning: str | None
    score: float
    margin: float
    best: str | None
    exemplar: str
    closest: tuple[tuple[str, float], ...]
    why: str = ""

    @property
    def accepted(self) -> bool:
        return self.meaning is not None

    def _replace_refused(self, why: str) -> "Understanding":
        return replace(self, meaning=None, why=why)

    def describe(self) -> str:
        """One line for the user: ``understood 'go to the target' as reach (0.86)`` or why it was refused."""
        if self.accepted:
            return f"understood {self.text!r} as {self.meaning} ({self.score:.2f})"
        if self.why:
            return f"not understood {self.text!r} ({self.best}, {self.score:.2f}): {self.why}"
        near = ", ".join(f"{p!r} ({s:.2f})" for p, s in self.closest)
        return f"not understood {self.text!r}: closest known commands {near}"


def opposite(phrase: str) -> str:
    """``phrase`` with every word of :data:`OPPOSITES` swapped: ``"turn on the tap"`` → ``"turn off the tap"``."""
    return " ".join(OPPOSITES.get(w, w) for w in normalise(phrase).split())


def load_command_set(path: str | Path | None = None) -> list[dict]:
    """The labelled commands: ``[{"text", "meaning": [names], "split": "tune" | "test"}]`` (texts normalised).

    Raises:
        CommandSetError: missing fields or a split other than tune / test.
    """
    path = Path(path) if path else DEFAULT_COMMAND_SET
    data = yaml.safe_load(path.read_text())
    out = []
    for i, c in enumerate(data.get("commands", [])):
        if not isinstance(c, dict) or not {"text", "meaning", "split"} <= set(c) or c["split"] not in ("tune", "test"):
            raise CommandSetError(f"{path}: command {i} must have text, meaning (a list) and split tune|test, got {c!r}")
        out.append({"text": normalise(str(c["text"])), "meaning": list(c["meaning"] or []), "split": c["split"]})
    return out


class CommandMatcher:
    """Matches commands in one's own words to a task library (module docstring).

    Args:
        library: the task library (the checkpoint's, or the shipped one).
        embed: texts (list of str) → (N, D) float32 L2-normalised embeddings; the model the checkpoint records.
        threshold, margin: acceptance rule, cosine units.
        command_set: labelled commands (:func:`load_command_set`); their tune split becomes exemplars. Meanings the
            library lacks are left out (a checkpoint's smaller library). None: the shipped set.

    Raises:
        CommandSetError: the shipped command set is malformed (:func:`load_command_set`).
    """

    def __init__(self, library: TaskLibrary, embed: Callable[[list[str]], np.ndarray], *,
                 threshold: float = DEFAULT_THRESHOLD, margin: float = DEFAULT_MARGIN,
                 command_set: list[dict] | None = None):
        self.library, self.threshold, self.margin = library, threshold, margin
        self._embed = embed
        names = set(library.subtasks) | set(library.long_horizon)
        phrasings = [(normalise(p), s.name) for s in library.subtasks.values() for p in s.phrasings]
        phrasings += [(normalise(p), t.name) for t in library.long_horizon.values() for p in t.phrasings]
        self._library_count = len(phrasings)
        exemplars = list(phrasings)
        self._tune: set[int] = set()  # indices of exemplars from the labelled set (left out of their own match)
        for c in command_set if command_set is not None else load_command_set():
            if c["split"] != "tune" or len(c["meaning"]) > 1 or "then" in c["text"].split():  # clauses only
                continue
            meaning = c["meaning"][0] if c["meaning"] else REFUSE
            if meaning is REFUSE or meaning in names:
                self._tune.add(len(exemplars))
                exemplars.append((c["text"], meaning))
        vectors = self._vectors([p for p, _ in exemplars])
        known = {p for p, meaning in exemplars if meaning is not REFUSE}
        sources = [(i, p, meaning) for i, (p, meaning) in enumerate(exemplars) if meaning is not REFUSE]
        candidates = [(i, opposite(p), meaning) for i, p, meaning in sources]
        candidates = [(i, q, meaning) for i, q, meaning in candidates if q not in known and q != exemplars[i][0]]
        library = vectors[:len(phrasings)]
        opposites, self._left_with = [], {}  # opposite's index -> the labelled exemplar it was made from
        for (i, q, meaning), u in zip(candidates, self._vectors([q for _, q, _ in candidates])):
            # the opposite is a skill of its own (window open / close): its nearest library phrasing means another
            # task than its source's, so it is no refusal
            if phrasings[int(np.argmax(library @ u))][1] != meaning:
                continue
            if i in self._tune:
                self._left_with[len(exemplars) + len(opposites)] = i
            opposites.append((q, REFUSE, u))
        self.exemplars = exemplars + [(q, m) for q, m, _ in opposites]
        self._vectors_all = np.concatenate([vectors, np.stack([u for *_, u in opposites])]) if opposites else vectors

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 1), np.float32)
        v = np.asarray(self._embed(list(texts)), dtype=np.float32).reshape(len(texts), -1)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def understand(self, text: str, *, leave_out: str | None = None, vector: np.ndarray | None = None) -> Understanding:
        """Match one clause (no joiners are split here).

        Args:
            vector: the clause's (D,) embedding when already computed (a compound's clauses are embedded in one batch).
            leave_out: a labelled-set exemplar not to use (leave-one-out when tuning on the tune split, whose
                commands are exemplars); the library's phrasings and their opposites always count.
        """
        key = normalise(text)
        sims = self._vectors_all @ (self._vectors([key])[0] if vector is None else vector)
        best: dict[str | None, tuple[float, str]] = {}
        for i, ((p, meaning), s) in enumerate(zip(self.exemplars, sims)):
            source = self._left_with.get(i, i)
            if source in self._tune and self.exemplars[source][0] == leave_out:
                continue
            if meaning not in best or s > best[meaning][0]:
                best[meaning] = (float(s), p)
        ranked = sorted(best.items(), key=lambda kv: -kv[1][0])
        (top, (score, exemplar)), runner = ranked[0], (ranked[1][1][0] if len(ranked) > 1 else -1.0)
        lib = sorted(((self.exemplars[i][0], float(sims[i])) for i in range(self._library_count)),
                     key=lambda ps: -ps[1])[:3]
        ok = top is not REFUSE and score >= self.threshold and score - runner >= self.margin
        return Understanding(key, top if ok else None, score, score - runner, top, exemplar, tuple(lib))

    def plan(self, text: str) -> tuple[Plan, list[Understanding]]:
        """The plan of a command: a library phrasing or compound of them exactly, else matched clause by clause.

        Returns:
            (the plan, how each matched clause was understood; empty for an exact library command).

        Raises:
            UnknownCommandError: some clause is not understood; its ``part`` names it and the message gives the
                closest known commands.
        """
        try:
            return self.library.plan(text), []
        except UnknownCommandError:
            pass
        key = normalise(text)
        understood = []
        clauses = _clauses(key.split(), THEN)  # "then" always separates subtasks
        # every clause and its parts at "and" in one batch: a compound costs about what one clause does
        texts = list(dict.fromkeys(clauses + [p for c in clauses for p in _clauses(c.split(), AND)]))
        vectors = dict(zip(texts, self._vectors(texts)))
        for clause in clauses:
            parts = self._clause(clause, vectors)
            if isinstance(parts, Understanding):  # refused
                raise NotUnderstoodError(text, self.library.phrasings(), parts,
                                         part=None if parts.text == key else parts.text)
            understood += parts
        if len(understood) > 1 and not all(u.meaning in self.library.subtasks for u in understood):
            long = next(u for u in understood if u.meaning not in self.library.subtasks)
            raise NotUnderstoodError(text, self.library.phrasings(), long._replace_refused(
                "a long-horizon task cannot be part of a compound command"), part=long.text)
        return replace(self.library.plan(self.library_text(understood)), text=key), understood

    def _clause(self, clause: str, vectors: dict[str, np.ndarray]) -> "list[Understanding] | Understanding":
        """A clause without "then" (``vectors``: its embedding and its parts'): understood whole, else split at "and"
        (every part understood), else the refusal of the whole."""
        whole = self.understand(clause, vector=vectors[clause])
        if whole.accepted:
            return [whole]
        parts = _clauses(clause.split(), AND)
        if len(parts) == 1:
            return whole
        understood = [self.understand(p, vector=vectors[p]) for p in parts]
        refused = next((u for u in understood if not u.accepted), None)
        return understood if refused is None else whole

    def library_text(self, understood: list[Understanding]) -> str:
        """The library command that means what ``understood`` means: each meaning's first phrasing, joined by
        "then" (what the rest of the stack plans, checks against a checkpoint and embeds)."""
        first = {s.name: s.phrasings[0] for s in self.library.subtasks.values()}
        first |= {t.name: t.phrasings[0] for t in self.library.long_horizon.values()}
        return " then ".join(first[u.meaning] for u in understood)


#: The joiners that always separate subtasks, and the one that may also join words within a subtask ("pick up
#: the puck and place it").
THEN = tuple(j for j in JOINERS if "then" in j)
AND = (("and",),)


def _clauses(words: list[str], joiners=JOINERS) -> list[str]:
    """Split at ``joiners``, longest first: ``go home then press it`` → [``go home``, ``press it``]."""
    out, start, i = [], 0, 0
    while i < len(words):
        joiner = next((j for j in joiners if tuple(words[i:i + len(j)]) == j), None)
        if joiner is not None and i > start:
            out.append(" ".join(words[start:i]))
            i += len(joiner)
            start = i
        else:
            i += 1
    if start < len(words):
        out.append(" ".join(words[start:]))
    return out


def choose_thresholds(matcher: CommandMatcher, commands: list[dict], *, min_precision: float = 0.99,
                      thresholds=np.arange(0.50, 0.96, 0.01), margins=np.arange(0.0, 0.31, 0.01)) -> dict:
    """The (threshold, margin) of highest recall with precision >= ``min_precision`` on ``commands``.

    Each command is matched once, leaving itself out of the exemplars (tune commands are exemplars); the rule is
    then applied to the recorded (score, margin, best meaning) for every pair of values.

    Returns:
        ``{"threshold", "margin", "precision", "recall", "accepted", "wrong"}`` (precision: right meanings among
        the accepted commands; recall: right meanings among the commands that have one).

    Raises:
        ValueError: no pair reaches ``min_precision``.
    """
    rows = [_row(matcher, c) for c in commands]
    best = None
    for t in thresholds:
        for m in margins:
            r = score_rows(rows, float(t), float(m))
            if r["precision"] >= min_precision and (best is None or r["recall"] > best["recall"]):
                best = {"threshold": round(float(t), 2), "margin": round(float(m), 2), **r}
    if best is None:
        raise ValueError(f"no threshold and margin reach precision {min_precision} on {len(commands)} commands")
    return best


def _row(matcher: CommandMatcher, c: dict) -> tuple[tuple[str, ...], tuple[tuple[str | None, float, float], ...]]:
    """(true meanings, per clause (best meaning, score, margin)); a compound is understood clause by clause."""
    out = []
    for clause in _clauses(c["text"].split(), THEN):
        u = matcher.understand(clause, leave_out=clause)
        out.append((u.best, u.score, u.margin))
    return tuple(c["meaning"]), tuple(out)


def score_rows(rows, threshold: float, margin: float) -> dict:
    """Precision and recall of the acceptance rule on :func:`_row` results (see :func:`choose_thresholds`)."""
    accepted = right = positives = 0
    for truth, clauses in rows:
        positives += bool(truth)
        ok = all(b is not None and s >= threshold and m >= margin for b, s, m in clauses)
        if not ok:
            continue
        accepted += 1
        right += bool(truth) and tuple(b for b, _, _ in clauses) == truth
    return {"precision": right / accepted if accepted else 1.0, "recall": right / max(positives, 1),
            "accepted": accepted, "wrong": accepted - right}


def evaluate(matcher: CommandMatcher, commands: list[dict]) -> dict:
    """Precision and recall of ``matcher``'s own threshold and margin on ``commands`` (leave-one-out)."""
    return score_rows([_row(matcher, c) for c in commands], matcher.threshold, matcher.margin)
