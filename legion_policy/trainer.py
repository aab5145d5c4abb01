"""Lifelong training of LEGION on a stream of Meta-World v3 tasks (``legion train``).

Protocol (docs/method.md sections 1 and 4): the tasks are learned one after another, each for a
fixed number of environment steps; the replay buffer keeps every transition of every task
(unbounded, as the paper's code); optimiser state is reset at each new task; every
``eval_every`` steps and at the end of each task every task of the stream is evaluated with
deterministic actions (``eval_episodes`` episodes, success if any step succeeds, placements
randomised). The language input of an episode is the embedding of one phrasing of the task, drawn
from the task library, so any phrasing works at deployment; the language decoder reconstructs the
task's canonical description (its first phrasing), so all phrasings share one task code z.

Outputs in ``out``: ``checkpoint/`` (see :mod:`legion_policy.checkpoint`; rewritten after each task),
``metrics.json`` and ``metrics.csv`` (evaluation curve and success matrix), ``train_log.jsonl``
(losses and evaluations as they happen).
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from legion_policy.agent import AgentConfig, LegionAgent
from legion_policy.checkpoint import save_checkpoint
from legion_policy.tasks import load_task_library
from legion_sim.metaworld_env import EPISODE_STEPS, MetaWorldTaskEnv

console = Console()


class TrainConfigError(ValueError):
    """Invalid trainer settings (the message names the setting and how to fix it)."""


@dataclass
class TrainConfig:
    """Trainer settings.

    Attributes:
        tasks: Meta-World v3 names in stream order; each must be an ``env_id`` of the task library.
        steps_per_task: environment steps per task (paper: 1M).
        eval_every: evaluate all tasks every this many steps (paper: 10k).
        eval_episodes: episodes per task and evaluation (paper: 10).
        seed: seeds torch, numpy, environments and the knowledge space.
        out: run folder.
        embedding_model: local transformers folder of the language model (None: all-MiniLM-L6-v2).
        random_steps: uniform-random actions at the start of every task (official code: 1500).
        updates_per_step: SAC updates per env step (update-to-data ratio) once random_steps are done;
            fractions update every 1/ratio steps (official: 1; 0.5 halves the CPU cost).
        encoder_every: one upstream (encoder + decoders) update every this many env steps (official: 50).
        dpmm_first, dpmm_every, dpmm_samples: refit the knowledge space at local step ``dpmm_first`` of
            each task and every ``dpmm_every`` steps after, on encoder means of ``dpmm_samples`` replay
            states (official: 10k, 100k, 3000); it is also refitted at the end of every task.
        episode_steps: episode length (150).
        reward_v1_tasks: tasks trained on Meta-World's original v1 (dense) reward instead of v2
            (:class:`legion_sim.metaworld_env.MetaWorldTaskEnv`); evaluation is unaffected (same success test).
        log_every: write training losses to the log every this many steps.
        agent: :class:`AgentConfig`.
    """

    tasks: list[str] = field(default_factory=lambda: ["reach-v3", "drawer-close-v3"])
    steps_per_task: int = 60_000
    eval_every: int = 10_000
    eval_episodes: int = 10
    seed: int = 0
    out: str = "models/legion-run"
    embedding_model: str | None = None
    random_steps: int = 1500
    updates_per_step: float = 1.0
    encoder_every: int = 50
    dpmm_first: int = 10_000
    dpmm_every: int = 100_000
    dpmm_samples: int = 3000
    episode_steps: int = EPISODE_STEPS
    reward_v1_tasks: list[str] = field(default_factory=list)
    log_every: int = 1000
    agent: AgentConfig = field(default_factory=AgentConfig)

    def validate(self) -> None:
        """Raise :class:`TrainConfigError` naming the offending setting if a value is out of range."""
        if not self.tasks:
            raise TrainConfigError("tasks is empty; give e.g. --tasks reach-v3,drawer-close-v3")
        for name in ("steps_per_task", "eval_every", "eval_episodes", "encoder_every", "dpmm_every",
                     "dpmm_samples", "episode_steps", "log_every"):
            if getattr(self, name) <= 0:
                raise TrainConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.random_steps < 0 or self.updates_per_step < 0:
            raise TrainConfigError("random_steps and updates_per_step must be >= 0")
        if len(self.tasks) > self.agent.max_tasks:
            raise TrainConfigError(f"{len(self.tasks)} tasks exceed agent.max_tasks={self.agent.max_tasks}")
        if not set(self.reward_v1_tasks) <= set(self.tasks):
            raise TrainConfigError(f"reward_v1_tasks {self.reward_v1_tasks} must be tasks of the stream {self.tasks}")
        if len(set(self.tasks)) != len(self.tasks):
            raise TrainConfigError(f"tasks must be distinct, got {self.tasks}")
        try:
            self.agent.validate()
        except ValueError as exc:
            raise TrainConfigError(str(exc)) from exc


class ReplayBuffer:
    """Unbounded-by-design replay (capacity = total steps of the run) storing phrase indices, not embeddings.

    Args:
        capacity: number of transitions. obs_dim: S. action_dim: A.
        embeddings: (P, L) float32 table of phrase embeddings; transitions refer to rows of it.
        canonical: (P,) row of the canonical description of each phrase's task (the language
            decoder's target); default: each phrase is its own target.
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, embeddings: np.ndarray,
                 canonical: np.ndarray | None = None):
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.phrase = np.zeros(capacity, np.int64)
        self.task = np.zeros(capacity, np.int64)
        self.embeddings = torch.as_tensor(embeddings, dtype=torch.float32)
        self.canonical = torch.as_tensor(np.arange(len(embeddings)) if canonical is None else canonical)
        self.capacity, self.size = capacity, 0

    def add(self, obs, action, reward, next_obs, done, phrase: int, task: int) -> None:
        if self.size >= self.capacity:
            raise RuntimeError(f"replay buffer full ({self.capacity} transitions)")
        i = self.size
        self.obs[i], self.action[i], self.reward[i], self.next_obs[i] = obs, action, reward, next_obs
        self.done[i], self.phrase[i], self.task[i] = done, phrase, task
        self.size += 1

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Uniform sample over every stored transition of every task (the agent's batch format)."""
        idx = rng.integers(0, self.size, batch_size)
        phrase = torch.from_numpy(self.phrase[idx])
        return {
            "obs": torch.from_numpy(self.obs[idx]), "next_obs": torch.from_numpy(self.next_obs[idx]),
            "action": torch.from_numpy(self.action[idx]), "reward": torch.from_numpy(self.reward[idx]),
            "done": torch.from_numpy(self.done[idx]), "task": torch.from_numpy(self.task[idx]),
            "embed": self.embeddings[phrase], "embed_target": self.embeddings[self.canonical[phrase]],
        }


def evaluate(agent: LegionAgent, env: MetaWorldTaskEnv, embeddings: np.ndarray, episodes: int) -> float:
    """Success rate of the deterministic policy: fraction of ``episodes`` in which any step succeeds.

    Episode i uses phrasing ``i % len(embeddings)`` of the task (embeddings (P, L)).
    """
    wins = 0
    for i in range(episodes):
        obs, _ = env.reset()
        emb = embeddings[i % len(embeddings)]
        for _ in range(env.max_episode_steps):
            obs, _, terminated, truncated, info = env.step(agent.act(obs, emb, deterministic=True))
            if info["success"]:
                wins += 1
                break
            if terminated or truncated:
                break
    return wins / episodes


def train(cfg: TrainConfig) -> dict:
    """Run the lifelong training described in the module docstring.

    Returns:
        The metrics dict also written to ``out/metrics.json``.

    Raises:
        TrainConfigError: invalid settings or a task the task library does not know.
    """
    from legion_policy.embedding import TextEmbedder

    cfg.validate()
    torch.set_num_threads(1)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    library = load_task_library()
    subtasks = []
    for env_id in cfg.tasks:
        try:
            subtasks.append(library.by_env_id(env_id))
        except KeyError as exc:
            raise TrainConfigError(str(exc.args[0])) from exc

    embedder = TextEmbedder(cfg.embedding_model)
    cfg.agent.embed_dim = embedder.dim
    phrase_rows: list[list[int]] = []  # task index -> rows of the embedding table
    texts: list[str] = []
    for st in subtasks:
        phrase_rows.append(list(range(len(texts), len(texts) + len(st.phrasings))))
        texts.extend(st.phrasings)
    table = embedder.embed(texts)  # cached once: (P, L)

    agent = LegionAgent(cfg.agent, seed=cfg.seed)
    envs = [MetaWorldTaskEnv(t, seed=cfg.seed + 1000 * i, max_episode_steps=cfg.episode_steps,
                             reward_version="v1" if t in cfg.reward_v1_tasks else "v2")
            for i, t in enumerate(cfg.tasks)]
    eval_envs = [MetaWorldTaskEnv(t, seed=cfg.seed + 1000 * i + 500, max_episode_steps=cfg.episode_steps)
                 for i, t in enumerate(cfg.tasks)]
    canonical = np.array([rows[0] for rows in phrase_rows for _ in rows])  # phrasings[0] = the description
    replay = ReplayBuffer(cfg.steps_per_task * len(cfg.tasks), agent.config.obs_dim, agent.config.action_dim, table,
                          canonical)

    log = open(out / "train_log.jsonl", "a")
    curve: list[dict] = []
    matrix: dict[str, dict[str, float]] = {}  # trained-after task -> evaluated task -> success
    run_start, total = time.time(), 0

    def run_eval(task_idx: int) -> dict[str, float]:
        rates = {t: evaluate(agent, eval_envs[j], table[phrase_rows[j]], cfg.eval_episodes)
                 for j, t in enumerate(cfg.tasks)}
        row = {"step": total, "task": cfg.tasks[task_idx], "elapsed_s": round(time.time() - run_start, 1),
               "success": rates, "average_success": float(np.mean(list(rates.values())))}
        curve.append(row)
        log.write(json.dumps({"event": "eval", **row}) + "\n")
        log.flush()
        console.log(f"step {total:>7d}  " + "  ".join(f"{t}: {r:.2f}" for t, r in rates.items()))
        return rates

    def fit_dpmm() -> None:
        idx = rng.integers(0, replay.size, min(cfg.dpmm_samples, replay.size))
        report = agent.fit_knowledge_space(replay.obs[idx], table[replay.phrase[idx]])
        log.write(json.dumps({"event": "dpmm_fit", "step": total, "K": int(agent.knowledge_space.K),
                              "report": _plain(report)}) + "\n")

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]:.0f} steps/s"), TimeRemainingColumn(), console=console)
    with progress:
        bar = progress.add_task("training", total=cfg.steps_per_task * len(cfg.tasks), rate=0.0)
        for k, (env_id, env) in enumerate(zip(cfg.tasks, envs)):
            progress.update(bar, description=f"task {k + 1}/{len(cfg.tasks)} {env_id}")
            agent.reset_optimizers()
            obs, _ = env.reset()
            phrase = int(rng.choice(phrase_rows[k]))
            t0, losses, credit = time.time(), {}, 0.0
            for local in range(1, cfg.steps_per_task + 1):
                if local <= cfg.random_steps:
                    action = env.action_space.sample()
                else:
                    action = agent.act(obs, table[phrase])
                next_obs, reward, terminated, truncated, _ = env.step(action)
                replay.add(obs, action, reward, next_obs, float(terminated), phrase, k)
                obs = next_obs
                if terminated or truncated:
                    obs, _ = env.reset()
                    phrase = int(rng.choice(phrase_rows[k]))
                total += 1
                if local > cfg.random_steps or k > 0:
                    credit += cfg.updates_per_step
                    while credit >= 1.0:
                        losses = agent.update_sac(replay.sample(agent.config.batch_size, rng))
                        credit -= 1.0
                    if local % cfg.encoder_every == 0:
                        losses.update(agent.update_encoder(replay.sample(agent.config.batch_size, rng)))
                if local == cfg.dpmm_first or (local > cfg.dpmm_first and (local - cfg.dpmm_first) % cfg.dpmm_every == 0):
                    fit_dpmm()
                if local % cfg.log_every == 0:
                    rate = local / (time.time() - t0)
                    progress.update(bar, rate=rate)
                    log.write(json.dumps({"event": "train", "step": total, "task": env_id, "steps_per_s": round(rate, 1),
                                          **{kk: round(v, 5) for kk, v in losses.items()}}) + "\n")
                    log.flush()
                if total % cfg.eval_every == 0 and local != cfg.steps_per_task:
                    run_eval(k)
                progress.advance(bar)
            fit_dpmm()
            matrix[env_id] = run_eval(k)
            metrics = _metrics(cfg, curve, matrix, time.time() - run_start)
            _write_metrics(out, metrics)
            provenance = {"tasks": cfg.tasks, "tasks_trained": cfg.tasks[:k + 1], "steps_per_task": cfg.steps_per_task,
                          "total_steps": total, "seed": cfg.seed, "train_config": _plain(asdict(cfg)),
                          "metaworld_success": matrix[env_id], "eval_episodes": cfg.eval_episodes,
                          "success_matrix": matrix, "wall_time_s": round(time.time() - run_start, 1)}
            save_checkpoint(out / "checkpoint", agent, embedding_model=embedder.name, embedding_dim=embedder.dim,
                            task_library=library.to_dict(), provenance=provenance)
            console.log(f"finished {env_id}: checkpoint written to {out / 'checkpoint'}")
    log.close()
    return metrics


def _plain(x):
    """JSON-safe copy of dataclasses/numpy values."""
    if hasattr(x, "__dataclass_fields__"):
        x = asdict(x)
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    return x


def _metrics(cfg: TrainConfig, curve: list[dict], matrix: dict, wall: float) -> dict:
    """Success matrix plus the paper's average success (eq. 1) and forgetting (eq. 2) over trained tasks."""
    trained = list(matrix)
    final = matrix[trained[-1]]
    forgetting = {t: matrix[t][t] - final[t] for t in trained[:-1]}
    return {
        "tasks": cfg.tasks, "steps_per_task": cfg.steps_per_task, "eval_episodes": cfg.eval_episodes,
        "seed": cfg.seed, "wall_time_s": round(wall, 1),
        "success_matrix": {"rows_evaluated_task": cfg.tasks, "columns_trained_after": trained,
                           "values": [[matrix[c][r] for c in trained] for r in cfg.tasks]},
        "final_success": final,
        "average_success": float(np.mean([final[t] for t in trained])),
        "forgetting": forgetting,
        "mean_forgetting": float(np.mean(list(forgetting.values()))) if forgetting else None,
        "curve": curve,
    }


def _write_metrics(out: Path, metrics: dict) -> None:
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    tasks = metrics["tasks"]
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "training_task", "elapsed_s", *tasks, "average_success"])
        for row in metrics["curve"]:
            w.writerow([row["step"], row["task"], row["elapsed_s"], *[row["success"][t] for t in tasks],
                        row["average_success"]])


def cli_train(
    tasks: Annotated[str, typer.Option(help="Comma-separated Meta-World v3 tasks, trained in this order.")] = "reach-v3,drawer-close-v3",
    steps_per_task: Annotated[int, typer.Option(help="Environment steps per task.")] = 60_000,
    eval_every: Annotated[int, typer.Option(help="Evaluate every task every N steps.")] = 10_000,
    eval_episodes: Annotated[int, typer.Option(help="Deterministic episodes per task and evaluation.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Run folder: checkpoint/, metrics.json, metrics.csv, train_log.jsonl.")] = Path("models/legion-run"),
    embedding_model: Annotated[Path | None, typer.Option(help="Local transformers folder of the language model (default: all-MiniLM-L6-v2).")] = None,
    random_steps: Annotated[int, typer.Option(help="Random-action steps at the start of each task.")] = 1500,
    dpmm_first: Annotated[int, typer.Option(help="Local step of each task at which the knowledge space is first refitted.")] = 10_000,
    dpmm_every: Annotated[int, typer.Option(help="Refit the knowledge space every N steps after that (official code: 100k).")] = 100_000,
    encoder_every: Annotated[int, typer.Option(help="One encoder/decoder update every N env steps.")] = 50,
    agent_preset: Annotated[str, typer.Option(
        help="'default' (2 x --hidden layers, batch --batch-size) or 'paper' (the official code's networks: "
             "encoder 3 x 400, SAC 3 x 300 with LayerNorm + tanh, batch 512; --hidden/--batch-size ignored).")] = "default",
    batch_size: Annotated[int, typer.Option(help="SAC and encoder batch size (paper: 512).")] = 128,
    hidden: Annotated[int, typer.Option(help="Hidden-layer width of every network (paper: 300/400).")] = 256,
    dpmm_deletes: Annotated[bool, typer.Option(help="Enable the knowledge space's delete move (official code: off).")] = False,
    utd: Annotated[float, typer.Option(help="SAC updates per env step (0.5: one update every 2 steps; paper: 1).")] = 1.0,
    reward_v1: Annotated[str, typer.Option(
        help="Comma-separated tasks trained on Meta-World's dense v1 reward (x0.01) instead of v2, e.g. reach-v3.")] = "",
) -> None:
    """Train LEGION on a stream of Meta-World v3 tasks, one after another, and write a checkpoint."""
    if agent_preset == "paper":
        agent = AgentConfig.paper(dpmm_deletes=dpmm_deletes)  # embed_dim is set from the language model
    elif agent_preset == "default":
        agent = AgentConfig(batch_size=batch_size, hidden=hidden, dpmm_deletes=dpmm_deletes)
    else:
        console.print(f"[red]error:[/red] --agent-preset must be 'default' or 'paper', got {agent_preset!r}")
        raise typer.Exit(2)
    cfg = TrainConfig(tasks=[t.strip() for t in tasks.split(",") if t.strip()], steps_per_task=steps_per_task,
                      eval_every=eval_every, eval_episodes=eval_episodes, seed=seed, out=str(out),
                      embedding_model=str(embedding_model) if embedding_model else None, random_steps=random_steps,
                      dpmm_first=dpmm_first, dpmm_every=dpmm_every, encoder_every=encoder_every,
                      updates_per_step=utd, agent=agent,
                      reward_v1_tasks=[t.strip() for t in reward_v1.split(",") if t.strip()])
    try:
        metrics = train(cfg)
    except TrainConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"final success: {metrics['final_success']}  (metrics in {out / 'metrics.json'})")


if __name__ == "__main__":
    typer.run(cli_train)
