"""LEGION checkpoints: a folder of safetensors weights + ``manifest.json``, and the frozen deployment policy.

Layout of a checkpoint folder::

    manifest.json                 format_version, observation layout, action scale, embedding model + dim,
                                  agent config, knowledge-space summary (K, weights, means, variances),
                                  task library, provenance, software versions, sha256 + size of every
                                  other file
    weights.safetensors           every agent tensor (normalizer, encoder, decoders, actor, critics, log_alpha;
                                  ``actor_average.*`` when trained with ``--actor-average``)
    knowledge_space.safetensors   the DPMM state (``KnowledgeSpace.state_dict()``)

:func:`save_checkpoint` writes into a temporary sibling folder and renames it into place, so a reader
never sees a half-written checkpoint. :func:`load_checkpoint` checks every file against its hash and
raises :class:`CheckpointError` with a message that names the problem. :class:`LegionPolicy` is what
the runner deploys: frozen encoder + DPMM + actor (the actor's weight average when the agent kept one,
``LegionAgent.policy_actor``), deterministic action tanh(mean).

Format versions (``format_version`` in the manifest). Old checkpoints stay loadable: on load, a
manifest is brought up to :data:`FORMAT_VERSION` by the chain of functions in :data:`MIGRATIONS`,
and fields added to :class:`AgentConfig` or the knowledge-space state since a checkpoint was written
take defaults that reproduce what it was trained with.

* 1: first release.
* 2: ``files`` entries are ``{"sha256", "bytes"}`` (was a bare sha256); the knowledge-space summary
  adds component means, variances, ``n_fits``, ``deletes``; ``software`` records package versions.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy, save_file as save_numpy
from safetensors.torch import load_file as load_torch, save_file as save_torch

from legion_policy.agent import AgentConfig, LegionAgent
from legion_policy.manifest import (  # noqa: F401 - part of this module's API
    FORMAT_VERSION, KNOWLEDGE_SPACE, MANIFEST, MIGRATIONS, WEIGHTS, CheckpointError, EmbeddingMismatchError,
    observation_layout, read_manifest, resolve_checkpoint_dir, upgrade_manifest,
)
from sim2real.observation import ACTION_DIM, ACTION_SCALE_M, OBS_DIM, OBS_LAYOUTS, check_layout

#: Tensor-name prefixes a deployable checkpoint must contain (and ``actor_average.`` when its config has the average).
DEPLOYMENT_PREFIXES = ("normalizer.", "encoder.", "actor.")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit(repo: Path | None = None) -> str | None:
    """The current git commit of ``repo`` (default: this package's repository), or None outside git."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo or Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def software_versions() -> dict[str, str | None]:
    """Versions of Python and of the packages a checkpoint's numbers depend on (None: not installed)."""
    import platform
    from importlib import metadata

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("legion-stack", "torch", "numpy", "safetensors", "transformers", "metaworld", "mujoco"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def save_checkpoint(path: str | Path, agent: LegionAgent, *, embedding_model: str, embedding_dim: int,
                    task_library: dict, provenance: dict, observation_layout: str = "paper") -> Path:
    """Write ``agent`` as a checkpoint folder at ``path`` (atomically; replaces an existing checkpoint).

    Args:
        path: destination folder.
        agent: the agent; its knowledge space must be fitted (deployment needs the DPMM).
        embedding_model: :attr:`TextEmbedder.name` of the language model used in training.
        embedding_dim: its embedding size L (must equal ``agent.config.embed_dim``).
        task_library: ``TaskLibrary.to_dict()``.
        provenance: training facts (tasks, steps, seeds, per-task success...); date and git commit
            are added here.
        observation_layout: the observation the agent was trained on, a key of
            :data:`sim2real.observation.OBS_LAYOUTS`; recorded with its layout, and deployment builds the same.

    Returns:
        The checkpoint folder.

    Raises:
        ValueError: the knowledge space is not fitted, the embedding size disagrees with the agent, or
            ``task_library`` is not a valid task library, or the observation layout is unknown. Nothing is written then.
    """
    from legion_language.tasks import TaskLibraryError, library_from_dict

    check_layout(observation_layout)
    path = Path(path)
    ks = agent.knowledge_space
    if ks is None or not ks.fitted:
        raise ValueError("fit the knowledge space (agent.fit_knowledge_space) before saving a checkpoint")
    if int(embedding_dim) != agent.config.embed_dim:
        raise ValueError(f"embedding_dim {embedding_dim} != agent's embed_dim {agent.config.embed_dim}")
    try:
        library_from_dict(task_library)
    except TaskLibraryError as exc:
        raise ValueError(f"task_library is not a valid task library ({exc}); pass TaskLibrary.to_dict()") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        save_torch(agent.tensors(), str(tmp / WEIGHTS), metadata={"format": "legion-agent"})
        ks_state = {k: np.array(v, order="C") for k, v in ks.state_dict().items()}  # keeps 0-d arrays 0-d
        save_numpy(ks_state, str(tmp / KNOWLEDGE_SPACE), metadata={"format": "legion-knowledge-space"})
        provenance = dict(provenance)
        provenance.setdefault("date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        provenance.setdefault("git_commit", git_commit())
        manifest = {
            "format_version": FORMAT_VERSION,
            "observation": {"dim": OBS_DIM, "name": observation_layout, "layout": OBS_LAYOUTS[observation_layout],
                            "frame": "sim", "unit": "m", "dtype": "float32"},
            "action": {"dim": ACTION_DIM, "low": -1.0, "high": 1.0, "scale_m_per_unit": ACTION_SCALE_M,
                       "layout": ["dx", "dy", "dz", "gripper"], "deterministic": "tanh(mean)"},
            "embedding": {"model": embedding_model, "dim": int(embedding_dim),
                          "pooling": "attention-masked mean, L2-normalised"},
            "agent_config": agent.config.to_dict(),
            "knowledge_space": {"K": int(ks.K), "latent_dim": ks.dim, "gamma0": ks.gamma0, "sF": ks.sF,
                                "n_batches": ks.n_batches, "n_laps": ks.n_laps, "deletes": ks.deletes,
                                "n_fits": ks.n_fits, "weights": np.asarray(ks.weights).tolist(),
                                "means": ks.means.tolist(), "variances": ks.variances.tolist()},
            "task_library": task_library,
            "provenance": provenance,
            "software": software_versions(),
            "files": {name: {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
                      for name in (WEIGHTS, KNOWLEDGE_SPACE)},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default))
        for f in tmp.iterdir():  # mkdtemp creates 0700; checkpoints are shared artefacts
            f.chmod(0o644)
        tmp.chmod(0o755)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _json_default(o):
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@dataclass
class Checkpoint:
    """A validated checkpoint: ``manifest`` (dict), ``tensors`` (name -> torch.Tensor), ``knowledge_space``
    (name -> np.ndarray), ``path``."""

    path: Path
    manifest: dict
    tensors: dict[str, torch.Tensor]
    knowledge_space: dict[str, np.ndarray]


def _check_contents(path: Path, manifest: dict, tensors: dict, ks_state: dict) -> None:
    """Cross-check the manifest against itself and the files: agent config, embedding size, DPMM, library.

    Raises:
        CheckpointError: naming the field and both values.
    """
    from legion_language.tasks import TaskLibraryError, library_from_dict

    mpath = path / MANIFEST
    try:
        config = AgentConfig(**manifest["agent_config"])
        config.validate()
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{mpath}: agent_config does not match this code ({exc})") from exc
    emb = manifest["embedding"]
    if not isinstance(emb.get("model"), str) or emb.get("dim") != config.embed_dim:
        raise CheckpointError(f"{mpath}: embedding {emb!r} disagrees with agent_config.embed_dim {config.embed_dim}")
    summary = manifest["knowledge_space"]
    stats = ks_state.get("stats")
    dims = {"knowledge_space.latent_dim": summary.get("latent_dim"),
            "knowledge-space state dim": int(ks_state["dim"]) if "dim" in ks_state else None}
    for name, value in dims.items():
        if value != config.latent_dim:
            raise CheckpointError(f"{path}: {name} is {value!r} but agent_config.latent_dim is {config.latent_dim}")
    if stats is None or stats.ndim != 2 or summary.get("K") != stats.shape[0]:
        raise CheckpointError(f"{path}: the manifest says K = {summary.get('K')!r} components but "
                              f"{KNOWLEDGE_SPACE} holds {None if stats is None else stats.shape[0]}")
    if not isinstance(manifest["provenance"], dict):
        raise CheckpointError(f"{mpath}: provenance must be an object")
    try:
        library_from_dict(manifest["task_library"], mpath)
    except TaskLibraryError as exc:
        raise CheckpointError(f"{mpath}: the recorded task library is invalid: {exc}") from exc
    for prefix in DEPLOYMENT_PREFIXES:
        if not any(k.startswith(prefix) for k in tensors):
            raise CheckpointError(f"{path / WEIGHTS} holds no '{prefix}*' tensors; the policy cannot be deployed")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and validate a checkpoint folder (or a training run folder holding ``checkpoint/``).

    The returned manifest is upgraded to :data:`FORMAT_VERSION` (:func:`upgrade_manifest`).

    Raises:
        CheckpointError: the folder or a file is missing, the manifest is not valid JSON or lacks a
            key, the format version is unknown or newer, a file's size or sha256 differs from the
            manifest, a safetensors file is corrupt, deployment tensors are missing, or the manifest
            disagrees with the files (agent config, embedding size, latent size, number of components,
            task library).
    """
    path = resolve_checkpoint_dir(path)
    manifest = read_manifest(path)
    mpath = path / MANIFEST
    files = manifest["files"]
    for name in (WEIGHTS, KNOWLEDGE_SPACE):
        if not isinstance(files.get(name), dict) or "sha256" not in files[name]:
            raise CheckpointError(f"{mpath}: no hash recorded for {name}")
    for name, entry in files.items():
        fpath = path / name
        if not fpath.is_file():
            raise CheckpointError(f"checkpoint file {fpath} is missing")
        size = fpath.stat().st_size
        if entry.get("bytes") is not None and size != entry["bytes"]:
            raise CheckpointError(f"checkpoint file {fpath} has {size} bytes, the manifest says {entry['bytes']}: "
                                  "the file was truncated, extended or replaced")
        actual = sha256_file(fpath)
        if actual != entry["sha256"]:
            raise CheckpointError(f"checkpoint file {fpath} has sha256 {actual[:16]}..., the manifest says "
                                  f"{str(entry['sha256'])[:16]}...: the file was modified or corrupted")
    try:
        tensors = load_torch(str(path / WEIGHTS))
        ks_state = load_numpy(str(path / KNOWLEDGE_SPACE))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the safetensors files in {path}: {exc}") from exc
    _check_contents(path, manifest, tensors, ks_state)
    return Checkpoint(path=path, manifest=manifest, tensors=tensors, knowledge_space=ks_state)


def load_agent(path: str | Path) -> tuple[LegionAgent, dict]:
    """Rebuild the full :class:`LegionAgent` (weights + knowledge space) from a checkpoint.

    Returns:
        (agent, manifest).

    Raises:
        CheckpointError: as :func:`load_checkpoint`, or the tensors do not fit the recorded config.
    """
    from legion_policy.knowledge_space import KnowledgeSpace

    ckpt = load_checkpoint(path)
    agent = LegionAgent(AgentConfig(**ckpt.manifest["agent_config"]))  # validated by load_checkpoint
    try:
        missing = agent.load_tensors(ckpt.tensors, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{ckpt.path / WEIGHTS} does not fit the manifest's agent_config: {exc}") from exc
    required = DEPLOYMENT_PREFIXES + (("actor_average.",) if agent.actor_average is not None else ())
    needed = [k for k in missing if k.startswith(required)]
    if needed:
        raise CheckpointError(f"{ckpt.path / WEIGHTS} lacks tensors the policy needs: {needed[:5]}")
    try:
        agent.knowledge_space = KnowledgeSpace.from_state_dict(ckpt.knowledge_space)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{ckpt.path / KNOWLEDGE_SPACE} is not a valid knowledge-space state: {exc}") from exc
    agent.eval()
    return agent, ckpt.manifest


class LegionPolicy:
    """The frozen deployment policy: encoder q(z|s,l) + knowledge space + actor (``LegionAgent.policy_actor``: the
    weight average when the checkpoint has one), deterministic tanh(mean).

    Attributes:
        manifest: the checkpoint manifest (dict).
        embedding_model: name of the language model the policy was trained with.
        embedding_dim: its embedding size L.
        task_library: ``TaskLibrary.to_dict()`` recorded at training time.
        observation_layout: the observation it takes, a key of :data:`sim2real.observation.OBS_LAYOUTS`
            (``"gripper"``: the 2F-85's opening in slot 6); Real2Sim must build the same
            (:class:`legion_runtime.runner.ControlLoop` refuses otherwise).
    """

    def __init__(self, agent: LegionAgent, manifest: dict):
        self.agent = agent.eval().requires_grad_(False)
        self.manifest = manifest
        self.observation_layout = observation_layout(manifest)
        self.embedding_model = str(manifest["embedding"]["model"])
        self.embedding_dim = int(manifest["embedding"]["dim"])
        self.task_library = manifest["task_library"]

    @property
    def layout(self) -> str:
        """Where the policy's skills were trained: ``"metaworld"`` (Meta-World's placements; checkpoints from before
        layouts) or ``"table"`` (the long-horizon table's, ``legion train --layout table``)."""
        return str(self.manifest["provenance"].get("train_config", {}).get("layout", "metaworld"))

    @classmethod
    def load(cls, path: str | Path) -> "LegionPolicy":
        """Load a checkpoint folder (or a run folder holding ``checkpoint/``). Raises :class:`CheckpointError`."""
        torch.set_num_threads(1)
        agent, manifest = load_agent(path)
        return cls(agent, manifest)

    def check_embedder(self, name: str, dim: int) -> None:
        """Raise :class:`EmbeddingMismatchError` unless (name, dim) is the embedder the policy was trained with."""
        if name != self.embedding_model or int(dim) != self.embedding_dim:
            raise EmbeddingMismatchError(
                f"the policy was trained with language model {self.embedding_model!r} ({self.embedding_dim}-d), "
                f"but the embedder in use is {name!r} ({dim}-d); load the same model (see the checkpoint "
                f"manifest's 'embedding') or retrain with `legion train --embedding-model`")

    def _inputs(self, obs: np.ndarray, embedding: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(obs (1, 12), embedding (1, D)) float32 tensors; ValueError on wrong shapes or non-finite values."""
        obs = np.asarray(obs, dtype=np.float32).reshape(-1)
        embedding = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if obs.shape != (OBS_DIM,):
            raise ValueError(f"obs must have shape ({OBS_DIM},) (layout {list(OBS_LAYOUTS[self.observation_layout])}), got "
                             f"{obs.shape}")
        if embedding.shape != (self.embedding_dim,):
            raise ValueError(f"embedding must have shape ({self.embedding_dim},) from language model "
                             f"{self.embedding_model!r}, got {embedding.shape}")
        if not (np.all(np.isfinite(obs)) and np.all(np.isfinite(embedding))):
            raise ValueError("obs and embedding must be finite (got NaN or inf)")
        return torch.from_numpy(obs)[None], torch.from_numpy(embedding)[None]

    @torch.no_grad()
    def act(self, obs: np.ndarray, embedding: np.ndarray) -> tuple[np.ndarray, int]:
        """Deterministic action and knowledge-space component for one observation.

        Args:
            obs: (12,) float32 sim-frame observation laid out as :attr:`observation_layout` says, m.
            embedding: (embedding_dim,) float32 unit-norm language embedding of the subtask phrase.

        Returns:
            (action (4,) float32 in [-1, 1]: tanh of the actor's mean, index of the DPMM component most responsible
            for z = mu(s, l)).

        Raises:
            ValueError: wrong shapes or non-finite values (the message names the expected model/dim).
        """
        o, e = self._inputs(obs, embedding)
        z = self.agent.latent(o, e)
        action = self.agent.policy_actor.deterministic(self.agent.normalizer.obs(o), z)[0].numpy().astype(np.float32)
        component = int(self.agent.knowledge_space.predict(z.double().numpy())[0])
        return action, component

    @torch.no_grad()
    def sample(self, obs: np.ndarray, embedding: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """An action drawn from the policy, a = tanh(u), u ~ N(mean, std) (SAC's squashed Gaussian pi(a | s, z), the
        distribution it was trained with), and the component, as :meth:`act`. What a retry of a failed subtask runs
        (:class:`legion_runtime.runner.Exploring`): from the same start the mean action repeats the same failure.

        Args:
            obs, embedding: as :meth:`act`.
            rng: the source of the Gaussian draw (a seeded generator repeats the same actions).

        Returns:
            (action (4,) float32 in (-1, 1), component index).

        Raises:
            ValueError: as :meth:`act`.
        """
        o, e = self._inputs(obs, embedding)
        z = self.agent.latent(o, e)
        mean, log_std = self.agent.policy_actor(self.agent.normalizer.obs(o), z)
        eps = rng.standard_normal(mean.shape[-1])
        u = mean[0].double().numpy() + eps * log_std[0].double().exp().numpy()
        component = int(self.agent.knowledge_space.predict(z.double().numpy())[0])
        return np.tanh(u).astype(np.float32), component
