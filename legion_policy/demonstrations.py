"""Demonstrations: transitions of a controller on one task, in the file format the trainer reads.

One ``.npz`` file per task (``<folder>/<env_id>.npz``, written by ``legion demos``), ``N`` transitions in episode
order:

=============  ===============  ===========================================================================
key            shape, dtype     what
=============  ===============  ===========================================================================
``obs``        (N, 12) float32  s_t, the policy's observation (:data:`sim2real.observation.OBS_LAYOUT`, m)
``action``     (N, 4) float32   a_t in [-1, 1] (TCP displacement, 1 unit = 1 cm per step; gripper)
``reward``     (N,) float32     Meta-World's reward of the task after the step (``reward_function_version``)
``next_obs``   (N, 12) float32  s_{t+1}
``terminated`` (N,) bool        the episode ended in a terminal state (Meta-World tasks: never)
``truncated``  (N,) bool        the episode ended at its step limit or at the first success (the last step)
``success``    (N,) bool        the task's success test held after the step
``episode``    (N,) int32       episode index in the file, 0..E-1
``step``       (N,) int32       step index within the episode
``seed``       (E,) int64       each episode's placement seed
``meta``       () str           JSON: ``format``, ``task``, ``scene``, ``controller``, ``control_dt_s``,
                                ``reward_version``, ``episodes``, ``successes``, ``created``
=============  ===============  ===========================================================================

An episode ends at the first success (``truncated`` then marks the success step) or at its step limit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: The format string of this layout, stored in ``meta["format"]``.
FORMAT = "legion-demonstrations/1"
_ARRAYS = {"obs": (np.float32, 12), "action": (np.float32, 4), "reward": (np.float32, None),
           "next_obs": (np.float32, 12), "terminated": (np.bool_, None), "truncated": (np.bool_, None),
           "success": (np.bool_, None), "episode": (np.int32, None), "step": (np.int32, None)}


@dataclass
class Demonstrations:
    """The transitions of one task's demonstration file (module docstring for the fields)."""

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    success: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    seed: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.obs.shape[0])

    @property
    def task(self) -> str:
        return str(self.meta.get("task", ""))

    @property
    def episodes(self) -> int:
        return int(self.seed.shape[0])

    @property
    def success_rate(self) -> float:
        """Share of the episodes that reached the task's success test."""
        if not self.episodes:
            return 0.0
        return float(len(np.unique(self.episode[self.success]))) / self.episodes


def path_for(folder: Path | str, task: str) -> Path:
    """The demonstration file of ``task`` (a Meta-World v3 name) in ``folder``."""
    return Path(folder) / f"{task}.npz"


def write_demonstrations(path: Path | str, demos: Demonstrations) -> Path:
    """Write ``demos`` to ``path`` (``.npz``, atomically); returns the path.

    Raises:
        ValueError: an array has the wrong shape (see :func:`read_demonstrations`).
    """
    _check(demos, str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, **demos.meta}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **{k: getattr(demos, k) for k in _ARRAYS}, seed=demos.seed, meta=np.array(json.dumps(meta)))
    tmp.replace(path)
    return path


def read_demonstrations(path: Path | str) -> Demonstrations:
    """Read a demonstration file.

    Raises:
        FileNotFoundError: no file at ``path`` (write one with ``legion demos --tasks <task> --out <folder>``).
        ValueError: not a file of this format, or arrays of the wrong shape or type (the message names them).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no demonstration file at {path}; write one with "
                                f"`legion demos --tasks {path.stem} --out {path.parent}`")
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in (*_ARRAYS, "seed", "meta") if k not in data]
        if missing:
            raise ValueError(f"{path} is not a LEGION demonstration file: it lacks {missing}")
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} has format {meta.get('format')!r}; this version reads {FORMAT!r}")
        demos = Demonstrations(**{k: data[k] for k in _ARRAYS}, seed=data["seed"], meta=meta)
    _check(demos, str(path))
    return demos


def _check(demos: Demonstrations, where: str) -> None:
    n = len(demos)
    for name, (dtype, width) in _ARRAYS.items():
        value = getattr(demos, name)
        shape = (n,) if width is None else (n, width)
        if value.shape != shape or value.dtype != dtype:
            raise ValueError(f"{where}: {name} must be {shape} {np.dtype(dtype).name}, got {value.shape} {value.dtype}")
    if n and (demos.episode.min() < 0 or demos.episode.max() >= demos.episodes):
        raise ValueError(f"{where}: episode indices must lie in 0..{demos.episodes - 1} (one seed per episode)")
    if not (np.all(np.isfinite(demos.obs)) and np.all(np.isfinite(demos.action)) and np.all(np.isfinite(demos.reward))):
        raise ValueError(f"{where}: observations, actions and rewards must be finite")
