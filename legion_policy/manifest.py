"""The checkpoint manifest (``manifest.json``): its format versions, migrations and interface check, read without
loading any weights.

This is the light half of :mod:`legion_policy.checkpoint` (no torch): the CLI lists a checkpoint's commands and
plans a command from its recorded task library in a fraction of a second, before the weights are loaded. See
:mod:`legion_policy.checkpoint` for the folder layout and the format versions.
"""
from __future__ import annotations

import json
from pathlib import Path

from sim2real.observation import ACTION_DIM, ACTION_SCALE_M, OBS_DIM, OBS_LAYOUTS, layout_name

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
KNOWLEDGE_SPACE = "knowledge_space.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing, incomplete, corrupt, tampered with, or of an unknown format."""


class EmbeddingMismatchError(ValueError):
    """The language embedder in use is not the one the checkpoint was trained with."""


def resolve_checkpoint_dir(path: str | Path) -> Path:
    """The checkpoint folder for ``path``: the folder itself, or its ``checkpoint/`` child (a training run folder)."""
    path = Path(path)
    if not (path / MANIFEST).exists() and (path / "checkpoint" / MANIFEST).exists():
        return path / "checkpoint"
    return path


def _check_interface(mpath: Path, manifest: dict) -> None:
    """Refuse a policy whose observation or action interface differs from what this code builds and sends.

    Compares the observation size, the layout (its fields' slices must be those of one of
    :data:`sim2real.observation.OBS_LAYOUTS`, and of the one its ``name`` says where it names one), the action size
    and metres per action unit; descriptive text is not compared.

    Raises:
        CheckpointError: naming the field, the checkpoint's value and this code's value.
    """
    obs, act = manifest["observation"], manifest["action"]
    expected = {"observation dim": OBS_DIM, "action dim": ACTION_DIM, "action scale_m_per_unit": ACTION_SCALE_M}
    found = {"observation dim": obs.get("dim"), "action dim": act.get("dim"),
             "action scale_m_per_unit": act.get("scale_m_per_unit")}
    retrain = ("the policy was trained for a different interface: retrain it, or use the software version it was "
               "trained with (manifest 'provenance.git_commit')")
    for key, want in expected.items():
        if found[key] != want:
            raise CheckpointError(f"{mpath}: {key} is {found[key]!r} in the checkpoint but {want!r} in this code; {retrain}")
    layout = obs.get("layout") or {}
    name = layout_name(layout)
    if name is None:
        fields = {k: (v or {}).get("slice") for k, v in layout.items()}
        raise CheckpointError(f"{mpath}: observation layout {fields} is none of this code's "
                              f"({', '.join(OBS_LAYOUTS)}); {retrain}")
    if obs.get("name", name) != name:
        raise CheckpointError(f"{mpath}: observation name {obs.get('name')!r} disagrees with its layout, which is "
                              f"{name!r}; the manifest was edited: restore it from the training run")


def observation_layout(manifest: dict) -> str:
    """The observation layout a checkpoint's policy expects: a key of :data:`sim2real.observation.OBS_LAYOUTS`
    (``"paper"`` for every checkpoint written before layouts had names). ``manifest``: as :func:`read_manifest` gives it.
    """
    return layout_name(manifest["observation"].get("layout") or {})


def _migrate_v1(manifest: dict) -> dict:
    """Format 1 -> 2: hashes become {sha256, bytes}; the knowledge-space summary gains the new keys."""
    manifest = dict(manifest)
    manifest["files"] = {name: {"sha256": digest, "bytes": None} for name, digest in manifest["files"].items()}
    ks = dict(manifest["knowledge_space"])
    ks.setdefault("deletes", False)
    manifest["knowledge_space"] = ks
    manifest.setdefault("software", {})
    manifest["format_version"] = 2
    return manifest


#: format_version -> function that turns a manifest of that version into the next version's.
MIGRATIONS = {1: _migrate_v1}
_REQUIRED = ("observation", "action", "embedding", "agent_config", "knowledge_space", "task_library",
             "provenance", "files")


def upgrade_manifest(manifest: dict, where: str | Path = "manifest") -> dict:
    """Bring a manifest of any known format version up to :data:`FORMAT_VERSION` (a new dict).

    Raises:
        CheckpointError: the version is missing, newer than this code, or unknown; or a required
            key of that version is missing.
    """
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{where}: format_version must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{where}: checkpoint format_version {version} was written by a newer version of "
                              f"this software (this code reads up to {FORMAT_VERSION}); update the software")
    if version != FORMAT_VERSION and version not in MIGRATIONS:
        raise CheckpointError(f"{where}: unknown checkpoint format_version {version!r}; this code reads "
                              f"versions {sorted(MIGRATIONS)} and {FORMAT_VERSION}")
    for key in _REQUIRED:
        if key not in manifest:
            raise CheckpointError(f"{where}: required key {key!r} is missing")
    while manifest["format_version"] != FORMAT_VERSION:
        try:
            manifest = MIGRATIONS[manifest["format_version"]](manifest)
        except (KeyError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"{where}: cannot upgrade format_version {manifest['format_version']} "
                                  f"({exc!r}); the manifest is malformed") from exc
    return manifest


def read_manifest(path: str | Path) -> dict:
    """The manifest of a checkpoint folder (or of a training run folder holding ``checkpoint/``), upgraded to
    :data:`FORMAT_VERSION` and checked against this code's observation and action interface; no file hashes are
    checked and no weights are read (:func:`legion_policy.checkpoint.load_checkpoint` does both).

    Raises:
        CheckpointError: no folder, no manifest, invalid JSON, an unknown or newer format, a missing key, or a
            different observation / action interface.
    """
    path = resolve_checkpoint_dir(path)
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint folder at {path}; train one with `legion train --out {path}`")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise CheckpointError(f"{path} is not a LEGION checkpoint: {MANIFEST} is missing")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{mpath} is not valid JSON ({exc}); the checkpoint is corrupt") from exc
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{mpath} must hold a JSON object")
    manifest = upgrade_manifest(manifest, mpath)
    _check_interface(mpath, manifest)
    return manifest
