"""Which knowledge-space component each phrasing of each task selects: the check that the language side information
l, not its exact wording, picks the task's region of the DPMM (paper: "the knowledge space clusters the tasks").

For every task a checkpoint was trained on, ``states`` start states are drawn from its environment (randomised
placements, the run's robot), each phrasing of the task in the checkpoint's task library is embedded with the
checkpoint's language model, and z = mu(s, l) is assigned to its most responsible DPMM component. A task's *own*
component is the one its canonical description (phrasings[0]) selects most often; a phrasing *maps to its own
component* when its most frequent component is that one.

    legion knowledge-table models/stream10/legion [--states 20] [--json table.json]
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class PhrasingRow:
    """One (task, phrasing): its most frequent component and the share of states assigned to it;
    ``as_description``: the same component as the task's description selects; ``own``: that, and no other task's
    description selects it; ``shared_with``: the tasks whose description selects this component."""

    task: str
    phrasing: str
    component: int
    share: float
    as_description: bool
    own: bool
    shared_with: list[str]


def start_states(env_id: str, n: int, seed: int, robot: str = "sawyer", control: str = "mocap") -> np.ndarray:
    """(n, 12) float32 sim-frame observations, m: the first observation of ``n`` randomised episodes of ``env_id``
    (Meta-World v3 through :class:`legion_sim.metaworld_env.MetaWorldTaskEnv`)."""
    from legion_sim.metaworld_env import MetaWorldTaskEnv

    env = MetaWorldTaskEnv(env_id, seed=seed, robot=robot, control=control)
    try:
        return np.stack([env.reset()[0] for _ in range(n)]).astype(np.float32)
    finally:
        env.close()


def phrasing_table(checkpoint: str | Path, states: int = 20, seed: int = 9000,
                   embedding_model: str | Path | None = None, refit_sF: float | None = None) -> list[PhrasingRow]:
    """The table for every trained task of ``checkpoint`` (a checkpoint or run folder) that its library names.

    Args:
        checkpoint: checkpoint or run folder. states: start states per task. seed: placement seed of the first
            task (task k: ``seed + 100 k``). embedding_model: the language model folder the checkpoint was trained
            with (None: the packaged all-MiniLM-L6-v2). refit_sF: None (the checkpoint's knowledge space), or refit
            the DPMM with this prior variance on the run's last recorded latents (``<run>/latents/visit_*.npz``) and
            use that one: an analysis of the trained encoder, not the deployed model.

    Raises:
        legion_policy.checkpoint.CheckpointError: the checkpoint does not load.
        legion_policy.checkpoint.EmbeddingMismatchError: the language model is not the checkpoint's.
        ValueError: ``states`` < 1, or none of the trained tasks is in the recorded task library.
    """
    from legion_policy.checkpoint import LegionPolicy, load_agent
    from legion_language.embedding import TextEmbedder
    from legion_language.tasks import library_from_dict

    if states < 1:
        raise ValueError(f"states must be >= 1, got {states}")
    agent, manifest = load_agent(checkpoint)
    if refit_sF is not None:
        agent.knowledge_space = refit_on_latents(checkpoint, agent, refit_sF)
    library = library_from_dict(manifest["task_library"])
    prov = manifest["provenance"]
    config = prov.get("train_config", {})
    robot, control = config.get("robot") or "sawyer", config.get("control") or "mocap"
    by_env = {st.env_id: st for st in library.subtasks.values()}
    tasks = [t for t in prov.get("tasks_trained", prov.get("tasks", [])) if t in by_env]
    if not tasks:
        raise ValueError(f"none of the trained tasks {prov.get('tasks_trained')} is in the checkpoint's task library")
    embedder = TextEmbedder(embedding_model)
    LegionPolicy(agent, manifest).check_embedder(embedder.name, embedder.dim)
    found: dict[str, list[tuple[str, int, float]]] = {}
    for k, task in enumerate(tasks):
        obs = torch.from_numpy(start_states(task, states, seed + 100 * k, robot, control))
        phrasings = by_env[task].phrasings
        embeds = embedder.embed(list(phrasings))
        found[task] = []
        for phrasing, e in zip(phrasings, embeds):
            z = agent.latent(obs, torch.as_tensor(e, dtype=torch.float32).expand(states, -1))
            (component, count), = Counter(agent.knowledge_space.predict(z.double().numpy()).tolist()).most_common(1)
            found[task].append((phrasing, int(component), count / states))
    own = {task: rows[0][1] for task, rows in found.items()}  # the canonical description's component
    return [PhrasingRow(task, phrasing, c, share, as_description=c == own[task],
                        own=c == own[task] and [t for t in own if own[t] == c] == [task],
                        shared_with=sorted(t for t in own if own[t] == c and t != task))
            for task, rows in found.items() for phrasing, c, share in rows]


def refit_on_latents(checkpoint: str | Path, agent, sF: float):
    """A fresh knowledge space (the agent's settings, prior variance ``sF``) fitted on the encoder means of the run's
    last ``latents/visit_*.npz``.

    Raises:
        ValueError: the run folder holds no latents.
    """
    from legion_policy.knowledge_space import KnowledgeSpace

    run = Path(checkpoint)
    run = run.parent if run.name == "checkpoint" else run
    files = sorted((run / "latents").glob("visit_*.npz"))
    if not files:
        raise ValueError(f"no latents/visit_*.npz in {run}: refitting needs a run folder written by `legion train`")
    c = agent.config
    ks = KnowledgeSpace(c.latent_dim, gamma0=c.dpmm_gamma0, sF=sF, n_batches=c.dpmm_n_batches, n_laps=c.dpmm_n_laps)
    ks.fit(np.load(files[-1])["z"].astype(np.float64))
    return ks


def summary(rows: list[PhrasingRow]) -> dict:
    """Counts: phrasings, those on their description's component, those on their task's own (unshared) component,
    tasks whose every phrasing is, and the number of distinct components the descriptions select."""
    tasks = list(dict.fromkeys(r.task for r in rows))
    return {"tasks": len(tasks), "phrasings": len(rows),
            "phrasings_as_description": sum(r.as_description for r in rows),
            "phrasings_on_own_component": sum(r.own for r in rows),
            "tasks_all_phrasings_own": sum(all(r.own for r in rows if r.task == t) for t in tasks),
            "distinct_task_components": len({next(r.component for r in rows if r.task == t) for t in tasks})}


def rows_as_dicts(rows: list[PhrasingRow]) -> list[dict]:
    """JSON-ready rows."""
    return [asdict(r) for r in rows]
