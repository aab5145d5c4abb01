"""What a checkpoint can be asked to do, read from its manifest alone (no torch, no MuJoCo: the CLI's fast paths).

* :func:`read_task_library`: the task library recorded in a checkpoint;
* :func:`plan_command`: a command planned with it, or an error that says what is unknown or which skills are missing
  and which shipped checkpoint has them (:func:`shipped_checkpoints_with`).
"""
from __future__ import annotations

from pathlib import Path

from legion_language.tasks import Plan, UnknownCommandError, library_from_dict
from legion_runtime.paths import REPO_ROOT, project_path


class BadInput(RuntimeError):
    """An input of the main job is unusable (checkpoint, WAV, speech model, embedding model), or the machine cannot
    render (no OpenGL back-end); the message says why. The CLI exits with status 2."""


#: The shipped checkpoints (``models/*/checkpoint``) of this repository, searched for the skills a command needs.
MODELS_DIR = REPO_ROOT / "models"


def read_task_library(checkpoint: Path):
    """The task library recorded in a checkpoint's manifest, without loading its weights (a fraction of a second).

    Raises:
        BadInput: the checkpoint's manifest is missing, unreadable or of another interface; or its library is invalid.
    """
    from legion_policy.manifest import CheckpointError, read_manifest
    from legion_language.tasks import TaskLibraryError

    try:
        return library_from_dict(read_manifest(project_path(checkpoint))["task_library"])
    except (CheckpointError, TaskLibraryError) as exc:
        raise BadInput(f"cannot use checkpoint {checkpoint}: {exc}") from exc


def _display(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (what a user types), else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def shipped_checkpoints_with(env_ids: set[str], models: Path = MODELS_DIR) -> list[str]:
    """The shipped checkpoints whose recorded task library has a subtask for every environment in ``env_ids``,
    sorted, as paths to type (relative to the working directory where possible)."""
    found = []
    for folder in sorted(models.glob("*/checkpoint")):
        try:
            library = read_task_library(folder)
        except BadInput:
            continue
        if env_ids <= {st.env_id for st in library.subtasks.values()}:
            found.append(_display(folder))
    return found


def plan_command(text: str, library, checkpoint: Path, matcher=None, say=print) -> Plan:
    """Plan ``text`` with the checkpoint's task library.

    Args:
        matcher: builds a :class:`legion_language.matching.CommandMatcher` of the shipped library, called only for a
            command in neither library (the language model loads then): the command the matcher understands is
            planned instead, and ``say`` gets one line per clause (``understood '...' as reach (0.97)``). None: library
            phrasings only.

    Raises:
        legion_language.tasks.MissingSkillsError: the command is in the shipped task library (or understood as one of
            its commands), but the checkpoint lacks some of its skills (the message names them and the shipped
            checkpoints that have them).
        legion_language.tasks.UnknownCommandError: the command is in neither library and not understood
            (:class:`legion_language.matching.NotUnderstoodError` names the closest known commands).
    """
    from legion_language.tasks import MissingSkillsError, load_task_library

    try:
        return library.plan(text)
    except UnknownCommandError as unknown:
        try:
            full = load_task_library().plan(text)
        except UnknownCommandError:
            if matcher is None:
                raise unknown from None
            understanding = matcher()
            _, understood = understanding.plan(text)  # NotUnderstoodError: nothing moves
            for u in understood:
                say(u.describe())
            return plan_command(understanding.library_text(understood), library, checkpoint)
        missing = [st.name for st in full.subtasks if st.env_id not in
                   {s.env_id for s in library.subtasks.values()}]
        if not missing:
            raise
        raise MissingSkillsError(text, library.phrasings(), checkpoint=str(checkpoint), missing=missing,
                                 have=list(library.subtasks),
                                 holders=shipped_checkpoints_with({st.env_id for st in full.subtasks})) from None
