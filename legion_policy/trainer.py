"""Lifelong training on a stream of Meta-World v3 tasks (``legion train``): LEGION and its baselines.

Protocol (../shared/docs/method.md sections 1 and 4; issue 4):

* a stream of visits: the tasks in the paper's easy-to-hard order (default), reversed, shuffled by a
  seed, or as given, repeated ``loops`` times (the few-shot recall protocol uses 3 loops);
* ``steps_per_task`` environment steps per visit, 150-step episodes, placements randomised every
  episode (``placement="fixed"``: one placement per task, as the paper's code);
* one replay buffer across visits: unbounded (the paper's code), FIFO over the last N visits, or a
  reservoir (:mod:`legion_policy.replay`); optimiser state is reset at each visit;
* every ``eval_every`` steps and at the end of each visit every task of the stream is evaluated with
  deterministic actions (``eval_episodes`` episodes, success if any step succeeds);
* methods on the same SAC backbone: ``legion``; ``finetune`` (SAC, FIFO-1 replay), ``perfect-memory``
  (SAC, unbounded), ``reservoir`` (SAC, reservoir), ``agem``, ``ewc``, ``packnet`` (:mod:`legion_policy.baselines`);
  ``multitask`` trains SAC on all tasks at once (episodes cycle through the tasks) as the upper reference.

LEGION's language input is the embedding of one phrasing of the task per episode, drawn from the task
library; the language decoder reconstructs the canonical description (phrasings[0]).

Outputs in ``out``: ``checkpoint/`` (LEGION: the deployable checkpoint after each visit),
``state.pt`` (everything needed to resume, rewritten atomically at every evaluation), ``metrics.json``
and ``metrics.csv`` (curve, success matrix and the paper's metrics, :mod:`legion_policy.metrics`),
``train_log.jsonl``, TensorBoard scalars in ``tb/`` and, for LEGION, encoder means after each visit
in ``latents/`` (t-SNE figures of ``legion report``). A killed run restarts from ``state.pt`` with
``resume=True``, losing at most one evaluation interval.
"""
from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from legion_policy import metrics as lm
from legion_policy.agent import AgentConfig, LegionAgent
from legion_policy.checkpoint import save_checkpoint
from legion_policy.demonstrations import Demonstrations, path_for, read_demonstrations
from legion_policy.progress import ProgressMeter
from legion_policy.replay import REGIMES, ReplayBuffer
from legion_policy.tasks import FEW_SHOT_STREAM, PAPER_STREAM, load_task_library  # noqa: F401 - streams re-exported
from legion_sim.metaworld_env import EPISODE_STEPS, MetaWorldTaskEnv, TaskCycleEnv

console = Console(soft_wrap=True)  # messages stay on one line (greppable)

ORDERS = ("paper", "given", "reverse", "random")
#: method -> (agent kind, default replay regime)
METHODS = {"legion": ("legion", "unbounded"), "finetune": ("sac", "fifo"), "perfect-memory": ("sac", "unbounded"),
           "reservoir": ("sac", "reservoir"), "agem": ("agem", "fifo"), "ewc": ("ewc", "fifo"),
           "packnet": ("packnet", "fifo"), "multitask": ("sac", "unbounded")}
STATE = "state.pt"
#: Settings that change how fast a run goes, not what it learns: a resume may change them.
_RUN_ONLY = ("num_envs", "vector_env", "torch_threads", "log_every")


class TrainConfigError(ValueError):
    """Invalid trainer settings (the message names the setting and how to fix it)."""


@dataclass
class TrainConfig:
    """Trainer settings.

    Attributes:
        tasks: Meta-World v3 names; each must be an ``env_id`` of the task library.
        order: ``"paper"`` (sort ``tasks`` by the paper's stream), ``"given"``, ``"reverse"`` or
            ``"random"`` (shuffled with ``seed``).
        loops: passes over the ordered tasks (few-shot protocol: 3).
        method: ``legion``, ``finetune``, ``perfect-memory``, ``reservoir``, ``agem``, ``ewc``, ``packnet``, ``multitask``.
        replay: ``unbounded``, ``fifo`` or ``reservoir``; None: the method's default.
        fifo_visits: visits kept by a FIFO replay (fine-tuning: 1; few-shot protocol: 3).
        reservoir_capacity: transitions kept by a reservoir replay (None: one visit's steps).
        placement: ``"random"`` (every episode) or ``"fixed"`` (one per task, the paper's code).
        robot: ``"sawyer"`` (Meta-World's) or ``"kuka"`` (iiwa 14 + 2F-85, :mod:`legion_sim.kuka_metaworld`).
        control: KUKA control mode: ``"mocap"`` (Meta-World's weld, training speed) or ``"joint"`` (Sim2Real + IK).
        steps_per_task: environment steps per visit (paper: 1M). For multitask: per task, in total.
        eval_every: evaluate all tasks every this many steps (paper: 10k).
        eval_episodes: episodes per task and evaluation (paper: 10).
        seed: seeds torch, numpy, environments and the knowledge space.
        out: run folder.
        embedding_model: local transformers folder of the language model (None: all-MiniLM-L6-v2).
        random_steps: uniform-random actions at the start of every visit (official code: 1500).
        updates_per_step: SAC updates per env step (official: 1; fractions update every 1/ratio steps).
        encoder_every: one upstream (encoder + decoders) update every this many env steps (official: 50).
        dpmm_first, dpmm_every, dpmm_samples: refit the knowledge space at local step ``dpmm_first`` of
            each visit and every ``dpmm_every`` steps after, on encoder means of ``dpmm_samples`` replay
            states (official: 10k, 100k, 3000); also at the end of every visit.
        episode_steps: episode length (150).
        reward_v1_tasks: tasks trained on Meta-World's v1 (dense) reward instead of v2.
        agem_memory_per_task, ewc_lambda: baseline settings (Continual World: 10,000, 1e4).
        packnet_retrain_steps: PackNet's SAC updates on the kept weights after each pruning (None: a
            tenth of ``steps_per_task``, Continual World's 100k per 1M).
        log_every: write training losses every this many steps.
        num_envs: environments stepped side by side (a Gymnasium vector environment, one batched actor
            pass for all); the update-to-data ratio is kept: each vector step of N transitions is
            followed by N x ``updates_per_step`` updates. ``steps_per_task`` and ``eval_every`` must be
            multiples of it.
        vector_env: ``"sync"`` (Gymnasium ``SyncVectorEnv``, one process) or ``"async"``
            (``AsyncVectorEnv``: one worker process per environment, stepping while the learner updates).
        torch_threads: PyTorch intra-op threads (1 keeps parallel sweep runs off each other's cores;
            0: PyTorch's default, all cores).
        demos: folder of demonstration files (``legion demos``; :mod:`legion_policy.demonstrations`); at the start
            of each visit the file of each of its tasks is added to the replay (tasks without one get none); the
            count is ``metrics["demonstrations"]``. None: pure RL, as the paper.
        agent: :class:`AgentConfig`.
    """

    tasks: list[str] = field(default_factory=lambda: list(PAPER_STREAM))
    order: str = "given"
    loops: int = 1
    method: str = "legion"
    replay: str | None = None
    fifo_visits: int = 1
    reservoir_capacity: int | None = None
    placement: str = "random"
    robot: str = "sawyer"
    control: str = "mocap"
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
    agem_memory_per_task: int = 10_000
    ewc_lambda: float = 1e4
    packnet_retrain_steps: int | None = None
    log_every: int = 1000
    num_envs: int = 1
    vector_env: str = "sync"
    torch_threads: int = 1
    demos: str | None = None
    agent: AgentConfig = field(default_factory=AgentConfig)

    def validate(self) -> None:
        """Raise :class:`TrainConfigError` naming the offending setting if a value is out of range."""
        if not self.tasks:
            raise TrainConfigError("tasks is empty; give e.g. --tasks reach-v3,drawer-close-v3")
        for name in ("steps_per_task", "eval_every", "eval_episodes", "encoder_every", "dpmm_every",
                     "dpmm_samples", "episode_steps", "log_every", "loops", "fifo_visits"):
            if getattr(self, name) <= 0:
                raise TrainConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.num_envs < 1 or self.steps_per_task % self.num_envs or self.eval_every % self.num_envs:
            raise TrainConfigError(f"num_envs must be >= 1 and divide steps_per_task ({self.steps_per_task}) and "
                                   f"eval_every ({self.eval_every}), got {self.num_envs}")
        if self.vector_env not in ("sync", "async"):
            raise TrainConfigError(f"vector_env must be 'sync' or 'async', got {self.vector_env!r}")
        if self.torch_threads < 0:
            raise TrainConfigError(f"torch_threads must be >= 0 (0: all cores), got {self.torch_threads}")
        if self.packnet_retrain_steps is not None and self.packnet_retrain_steps < 0:
            raise TrainConfigError(f"packnet_retrain_steps must be >= 0 (None: a tenth of steps_per_task), got "
                                   f"{self.packnet_retrain_steps}")
        if self.random_steps < 0 or self.updates_per_step < 0:
            raise TrainConfigError("random_steps and updates_per_step must be >= 0")
        if len(self.tasks) > self.agent.max_tasks:
            raise TrainConfigError(f"{len(self.tasks)} tasks exceed agent.max_tasks={self.agent.max_tasks}")
        if not set(self.reward_v1_tasks) <= set(self.tasks):
            raise TrainConfigError(f"reward_v1_tasks {self.reward_v1_tasks} must be tasks of the stream {self.tasks}")
        if len(set(self.tasks)) != len(self.tasks):
            raise TrainConfigError(f"tasks must be distinct (use loops to revisit them), got {self.tasks}")
        if self.robot == "sawyer" and self.control != "mocap":
            raise TrainConfigError("control 'joint' needs robot 'kuka' (the Sawyer is driven by Meta-World's mocap only)")
        choices = {"order": ORDERS, "method": tuple(METHODS), "placement": ("random", "fixed"),
                   "robot": ("sawyer", "kuka"), "control": ("mocap", "joint"),
                   "replay": (None, *REGIMES)}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise TrainConfigError(f"{name} must be one of {[a for a in allowed if a]}, got {getattr(self, name)!r}")
        if self.method == "packnet" and self.loops != 1:
            raise TrainConfigError("packnet packs each task once: use loops 1")
        if self.order == "paper" and not set(self.tasks) <= set(PAPER_STREAM):
            raise TrainConfigError(f"order 'paper' sorts the paper's ten tasks; {sorted(set(self.tasks) - set(PAPER_STREAM))} "
                                   "are not among them (use order 'given')")
        try:
            self.agent.validate()
        except ValueError as exc:
            raise TrainConfigError(str(exc)) from exc

    def stream(self) -> list[str]:
        """The ordered tasks of one loop (see ``order``)."""
        if self.order == "paper":
            return sorted(self.tasks, key=PAPER_STREAM.index)
        if self.order == "reverse":
            return list(reversed(self.tasks))
        if self.order == "random":
            return [self.tasks[i] for i in np.random.default_rng(self.seed).permutation(len(self.tasks))]
        return list(self.tasks)

    def visits(self) -> list[str]:
        """Every visit of the run: the ordered tasks, ``loops`` times (multitask: one joint visit)."""
        return self.stream() * self.loops


def few_shot_protocol(**overrides) -> TrainConfig:
    """The paper's few-shot recall protocol: :data:`FEW_SHOT_STREAM` in 3 loops, a FIFO replay of 3 visits."""
    return TrainConfig(**{"tasks": list(FEW_SHOT_STREAM), "loops": 3, "replay": "fifo", "fifo_visits": 3,
                          **overrides})


def evaluate(agent: LegionAgent, env: MetaWorldTaskEnv, embeddings: np.ndarray, episodes: int,
             task: int | None = None) -> float:
    """Success rate of the deterministic policy: fraction of ``episodes`` in which any step succeeds.

    Episode i uses phrasing ``i % len(embeddings)`` of the task (embeddings (P, L)); ``task`` is the
    stream index, used only by baselines conditioned on it.
    """
    wins = 0
    for i in range(episodes):
        obs, _ = env.reset()
        emb = embeddings[i % len(embeddings)]
        for _ in range(env.max_episode_steps):
            obs, _, terminated, truncated, info = env.step(agent.act(obs, emb, deterministic=True, task=task))
            if info["success"]:
                wins += 1
                break
            if terminated or truncated:
                break
    return wins / episodes


def load_stream_demonstrations(folder: str | Path, tasks: list[str]) -> dict[int, Demonstrations]:
    """The demonstration files of the stream's ``tasks`` in ``folder``, by stream task index (tasks without one
    are left out).

    Raises:
        TrainConfigError: no folder, no file for any of the tasks, or a file of another task or format.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TrainConfigError(f"demos: no folder {folder}; write demonstrations with `legion demos --out {folder}`")
    found = {}
    for k, task in enumerate(tasks):
        path = path_for(folder, task)
        if path.is_file():
            try:
                demo = read_demonstrations(path)
            except ValueError as exc:
                raise TrainConfigError(f"demos: {exc}") from exc
            if demo.task != task:
                raise TrainConfigError(f"demos: {path} holds demonstrations of {demo.task!r}, not {task!r}")
            found[k] = demo
    if not found:
        raise TrainConfigError(f"demos: {folder} has no demonstration file of {tasks} (<task>.npz); write them with "
                               f"`legion demos --tasks {','.join(tasks)} --out {folder}`")
    return found


def add_demonstrations(replay: ReplayBuffer, demo: Demonstrations, task: int, phrases: list[int],
                       rng: np.random.Generator) -> None:
    """Add every transition of ``demo`` to ``replay`` as stream task ``task``, each with a phrasing drawn from
    ``phrases`` (rows of the replay's embedding table), as the online transitions get theirs."""
    for i in range(len(demo)):
        replay.add(demo.obs[i], demo.action[i], demo.reward[i], demo.next_obs[i], float(demo.terminated[i]),
                   int(rng.choice(phrases)), task)


def make_agent(cfg: TrainConfig) -> LegionAgent:
    """The agent of ``cfg.method`` (LEGION or a baseline on the same backbone)."""
    from legion_policy import baselines

    kind = METHODS[cfg.method][0]
    if kind == "legion":
        return LegionAgent(cfg.agent, seed=cfg.seed)
    if kind == "agem":
        return baselines.AGEMAgent(cfg.agent, seed=cfg.seed, memory_per_task=cfg.agem_memory_per_task)
    if kind == "ewc":
        return baselines.EWCAgent(cfg.agent, seed=cfg.seed, ewc_lambda=cfg.ewc_lambda)
    if kind == "packnet":
        retrain = cfg.steps_per_task // 10 if cfg.packnet_retrain_steps is None else cfg.packnet_retrain_steps
        return baselines.PackNetAgent(cfg.agent, seed=cfg.seed, n_tasks=len(cfg.tasks), retrain_steps=retrain)
    return baselines.SACAgent(cfg.agent, seed=cfg.seed)


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    """Run the lifelong training described in the module docstring.

    Args:
        cfg: settings.
        resume: continue from ``out/state.pt`` if it exists (the settings must match the saved ones).

    Returns:
        The metrics dict also written to ``out/metrics.json``.

    Raises:
        TrainConfigError: invalid settings, a task the task library does not know, or a resume whose
            settings differ from the saved run's.
    """
    from legion_policy.embedding import TextEmbedder

    cfg.validate()
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    library = load_task_library()
    tasks = cfg.stream()  # distinct tasks; their stream index is the agent's task index
    visits = ["multitask"] if cfg.method == "multitask" else cfg.visits()
    try:
        subtasks = [library.by_env_id(t) for t in tasks]
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
    canonical = np.array([rows[0] for rows in phrase_rows for _ in rows])  # phrasings[0] = the description

    agent = make_agent(cfg)
    demos = load_stream_demonstrations(cfg.demos, tasks) if cfg.demos else {}
    steps_per_visit = cfg.steps_per_task * (len(tasks) if cfg.method == "multitask" else 1)
    regime = cfg.replay or METHODS[cfg.method][1]
    visit_demos = [sum(len(demos[k]) for k in (range(len(tasks)) if name == "multitask" else [tasks.index(name)])
                       if k in demos) for name in visits]
    capacity = {"unbounded": steps_per_visit * len(visits) + sum(visit_demos),
                "fifo": (steps_per_visit + max(visit_demos, default=0)) * cfg.fifo_visits,
                "reservoir": cfg.reservoir_capacity or steps_per_visit}[regime]
    replay = ReplayBuffer(capacity, agent.config.obs_dim, agent.config.action_dim, table, canonical,
                          regime=regime, fifo_visits=cfg.fifo_visits, seed=cfg.seed)

    def make_env(t: str, offset: int, eval_env: bool = False) -> MetaWorldTaskEnv:
        version = "v1" if (t in cfg.reward_v1_tasks and not eval_env) else "v2"
        return MetaWorldTaskEnv(t, seed=cfg.seed + 1000 * tasks.index(t) + offset, max_episode_steps=cfg.episode_steps,
                                reward_version=version, placement=cfg.placement, robot=cfg.robot, control=cfg.control)

    eval_envs = [make_env(t, 500, eval_env=True) for t in tasks]
    n_envs = cfg.num_envs

    def make_vector_env(visit_tasks: list[int], offset: int) -> gym.vector.VectorEnv:
        """``num_envs`` copies of the visit's task(s) (multitask: each cycles through all, starting apart)."""
        fns = []
        for i in range(n_envs):
            specs = [(tasks[k], cfg.seed + 1000 * k + offset + 7919 * i,
                      "v1" if tasks[k] in cfg.reward_v1_tasks else "v2") for k in visit_tasks]
            fns.append(partial(_task_cycle_env, specs, cfg.episode_steps, cfg.placement, start=i,
                               robot=cfg.robot, control=cfg.control))
        mode = gym.vector.AutoresetMode.SAME_STEP
        if cfg.vector_env == "async":
            return gym.vector.AsyncVectorEnv(fns, context="forkserver", autoreset_mode=mode)
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)
    curve: list[dict] = []
    progress_state = {"visit": 0, "local": 0, "total": 0, "wall_before": 0.0}
    saved_cfg = json.loads(json.dumps(_plain(asdict(cfg))))
    if resume and (out / STATE).exists():
        state = torch.load(out / STATE, weights_only=False)
        defaults = json.loads(json.dumps(_plain(asdict(TrainConfig()))))
        saved = {**{k: defaults[k] for k in _RUN_ONLY}, **state["config"]}  # settings newer than the run
        diff = sorted(k for k in saved_cfg if k not in _RUN_ONLY and saved.get(k) != saved_cfg[k])
        if diff:
            raise TrainConfigError(f"cannot resume {out}: settings {diff} differ from the saved run's; use the same "
                                   "options or a new --out")
        agent.load_state_dict(state["agent"])
        for name, sd in state["optimizers"].items():
            getattr(agent, name).load_state_dict(sd)
        if state["knowledge_space"] is not None:
            from legion_policy.knowledge_space import KnowledgeSpace
            agent.knowledge_space = KnowledgeSpace.from_state_dict(state["knowledge_space"])
        for key, value in state.get("baseline", {}).items():
            setattr(agent, key, value)
        replay.load_state_dict(state["replay"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        curve, progress_state = state["curve"], state["progress"]
        console.log(f"resumed {out} at visit {progress_state['visit'] + 1}/{len(visits)}, "
                    f"local step {progress_state['local']}")

    log = open(out / "train_log.jsonl", "a")
    tb = _tensorboard(out / "tb")
    run_start = time.time() - progress_state["wall_before"]
    total = progress_state["total"]

    def run_eval(visit: int) -> None:
        rates = {t: evaluate(agent, eval_envs[j], table[phrase_rows[j]], cfg.eval_episodes, task=j)
                 for j, t in enumerate(tasks)}
        row = {"step": total, "visit": visit, "task": visits[visit], "elapsed_s": round(time.time() - run_start, 1),
               "success": rates, "average_success": float(np.mean(list(rates.values())))}
        curve.append(row)
        log.write(json.dumps({"event": "eval", **row}) + "\n")
        log.flush()
        if tb is not None:
            tb.add_scalar("success/average", row["average_success"], total)
            for t, r in rates.items():
                tb.add_scalar(f"success/{t}", r, total)
        console.log(f"step {total:>7d}  " + "  ".join(f"{t}: {r:.2f}" for t, r in rates.items()))

    def save_state(visit: int, local: int) -> None:
        ks = agent.knowledge_space
        baseline = {k: getattr(agent, k) for k in ("memory", "fisher", "anchor", "projections", "owner", "current")
                    if hasattr(agent, k)}
        _atomic_torch_save({
            "config": saved_cfg, "agent": agent.state_dict(),
            "optimizers": {n: getattr(agent, n).state_dict() for n in
                           ("upstream_optimizer", "actor_optimizer", "critic_optimizer", "alpha_optimizer")},
            "knowledge_space": ks.state_dict() if ks is not None else None, "baseline": baseline,
            "replay": replay.state_dict(), "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "curve": curve, "progress": {"visit": visit, "local": local, "total": total,
                                         "wall_before": time.time() - run_start},
        }, out / STATE)

    def fit_dpmm() -> None:
        if METHODS[cfg.method][0] != "legion":
            return
        idx = rng.integers(0, replay.size, min(cfg.dpmm_samples, replay.size))
        report = agent.fit_knowledge_space(replay.obs[idx], table[replay.phrase[idx]])
        log.write(json.dumps({"event": "dpmm_fit", "step": total, "K": int(agent.knowledge_space.K),
                              "report": _plain(report)}) + "\n")
        if tb is not None:
            tb.add_scalar("knowledge_space/K", agent.knowledge_space.K, total)
            tb.add_scalar("knowledge_space/elbo", report.elbo, total)

    # Progress: a live bar on a terminal, else (output to a file) a plain line every minute or 5 % of the run.
    meter = ProgressMeter(steps_per_visit * len(visits), done=total)
    live = console.is_interactive
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[speed]}"), console=console, disable=not live)
    metrics: dict = {}
    with progress:
        bar = progress.add_task("training", total=meter.total, completed=total, speed=meter.speed())

        def show_progress(what: str) -> None:
            progress.update(bar, completed=meter.done, description=what, speed=meter.speed())
            if not live and meter.line_due():  # one unwrapped, greppable line
                console.print(f"[{time.strftime('%H:%M:%S')}] {meter.line(what)}", markup=False, highlight=False)

        for v in range(progress_state["visit"], len(visits)):
            name = visits[v]
            visit_tasks = list(range(len(tasks))) if name == "multitask" else [tasks.index(name)]
            what = f"visit {v + 1}/{len(visits)} {name}"
            show_progress(what)
            start_local = progress_state["local"] if v == progress_state["visit"] else 0
            if start_local == 0:
                agent.reset_optimizers()
                replay.start_visit(v)
                for k in visit_tasks:  # the visit's demonstrations, before its first step
                    if k in demos:
                        add_demonstrations(replay, demos[k], k, phrase_rows[k], rng)
                        log.write(json.dumps({"event": "demonstrations", "step": total, "task": tasks[k],
                                              "transitions": len(demos[k]), "episodes": demos[k].episodes,
                                              "success_rate": demos[k].success_rate}) + "\n")
            if start_local % n_envs:
                raise TrainConfigError(f"cannot resume at local step {start_local} with num_envs={n_envs}: use a "
                                       "num_envs that divides it")
            with meter.paused():  # not training time: the rate leaves it out
                venv = make_vector_env(visit_tasks, 10_000 * v + start_local)
                venv.action_space.seed(cfg.seed + 10_000 * v + start_local)  # the random-action phase
                obs, info = venv.reset()
            task_of = np.asarray([visit_tasks[i] for i in info["task_index"]])  # stream task of each env's episode
            phrase = np.array([rng.choice(phrase_rows[k]) for k in task_of])
            t0, losses, credit = time.time(), {}, 0.0
            local = start_local
            while local < steps_per_visit:
                if local < cfg.random_steps:
                    action = venv.action_space.sample()
                else:
                    action = agent.act(obs, table[phrase], task=task_of)
                next_obs, reward, terminated, truncated, info = venv.step(action)
                final = next_obs.copy()  # s_{t+1}: for an episode that ended, its last observation
                if "_final_obs" in info:
                    for i in np.flatnonzero(info["_final_obs"]):
                        final[i] = info["final_obs"][i]
                for i in range(n_envs):
                    replay.add(obs[i], action[i], reward[i], final[i], float(terminated[i]), phrase[i], task_of[i])
                for i in np.flatnonzero(terminated | truncated):  # autoreset: a new episode, maybe of another task
                    task_of[i] = visit_tasks[info["task_index"][i]]
                    phrase[i] = rng.choice(phrase_rows[task_of[i]])
                obs = next_obs
                prev, local, total = local, local + n_envs, total + n_envs
                if local > cfg.random_steps or v > 0:
                    credit += cfg.updates_per_step * n_envs  # the update-to-data ratio of one env
                    while credit >= 1.0:
                        losses = agent.update_sac(replay.sample(agent.config.batch_size, rng))
                        credit -= 1.0
                    for _ in range(_crossings(prev, local, cfg.encoder_every)):
                        losses.update(agent.update_encoder(replay.sample(agent.config.batch_size, rng)))
                    meter.update(total)
                else:  # random actions without SAC updates: far faster than what follows, so not its rate
                    meter.restart(total)
                if _crossings(prev, local, cfg.dpmm_every, first=cfg.dpmm_first):
                    with meter.paused():
                        fit_dpmm()
                if _crossings(prev, local, cfg.log_every):
                    rate = (local - start_local) / (time.time() - t0)  # since the visit (re)started
                    log.write(json.dumps({"event": "train", "step": total, "task": name, "steps_per_s": round(rate, 1),
                                          **{kk: round(float(val), 5) for kk, val in losses.items()}}) + "\n")
                    log.flush()
                    if tb is not None:
                        for kk, val in losses.items():
                            tb.add_scalar(kk, val, total)
                        tb.add_scalar("perf/env_steps_per_s", rate, total)
                if _crossings(total - n_envs, total, cfg.eval_every) and local != steps_per_visit:
                    with meter.paused():
                        run_eval(v)
                        save_state(v, local)
                show_progress(what)
            with meter.paused():
                venv.close()
                fit_dpmm()
                if METHODS[cfg.method][0] == "legion":
                    _dump_latents(out / "latents" / f"visit_{v:02d}.npz", agent, replay, table, rng)
                for task_index in visit_tasks:
                    agent.on_task_end(task_index, replay, rng)
                run_eval(v)
                metrics = _metrics(cfg, tasks, visits, steps_per_visit, curve, time.time() - run_start)
                if demos:
                    metrics["demonstrations"] = {tasks[k]: len(d) for k, d in demos.items()}
                _write_metrics(out, metrics)
                if METHODS[cfg.method][0] == "legion":
                    lib = library.restricted_to(dict.fromkeys(visits[:v + 1]))
                    provenance = {"method": cfg.method, "tasks": tasks, "visits": visits,
                                  "tasks_trained": list(dict.fromkeys(visits[:v + 1])),
                                  "steps_per_task": cfg.steps_per_task, "total_steps": total, "seed": cfg.seed,
                                  "train_config": saved_cfg, "metaworld_success": curve[-1]["success"],
                                  "eval_episodes": cfg.eval_episodes, "success_matrix": metrics.get("success_matrix"),
                                  "wall_time_s": round(time.time() - run_start, 1)}
                    save_checkpoint(out / "checkpoint", agent, embedding_model=embedder.name,
                                    embedding_dim=embedder.dim, task_library=lib.to_dict(), provenance=provenance)
                save_state(v + 1, 0)
            console.log(f"finished visit {v + 1}/{len(visits)} ({name}) at step {total}")
    log.close()
    if tb is not None:
        tb.close()
    if not metrics and (out / "metrics.json").exists():  # resumed a run that had already finished
        metrics = json.loads((out / "metrics.json").read_text())
    return metrics


def _task_cycle_env(specs: list[tuple[str, int, str]], episode_steps: int, placement: str, start: int,
                    robot: str = "sawyer", control: str = "mocap") -> TaskCycleEnv:
    """A :class:`TaskCycleEnv` over (env_id, seed, reward_version) specs (module level: picklable for workers)."""
    return TaskCycleEnv([MetaWorldTaskEnv(t, seed=seed, max_episode_steps=episode_steps, reward_version=version,
                                          placement=placement, robot=robot, control=control)
                         for t, seed, version in specs], start=start)


def _crossings(before: int, after: int, every: int, first: int | None = None) -> int:
    """How many of the steps ``first, first + every, ...`` (default ``every, 2 every, ...``) lie in (before, after]."""
    first = every if first is None else first
    count = lambda x: 0 if x < first else (x - first) // every + 1  # noqa: E731
    return count(after) - count(before)


def _dump_latents(path: Path, agent: LegionAgent, replay: ReplayBuffer, table: np.ndarray,
                  rng: np.random.Generator, n: int = 1000) -> None:
    """Encoder means z (n, Z) of replay samples with their task and DPMM component (for t-SNE figures)."""
    idx = rng.integers(0, replay.size, min(n, replay.size))
    z = agent.latent(torch.as_tensor(replay.obs[idx]), torch.as_tensor(table[replay.phrase[idx]])).double().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, z=z.astype(np.float32), task=replay.task[idx],
                        component=agent.knowledge_space.predict(z))


def _tensorboard(path: Path):
    """A TensorBoard SummaryWriter at ``path`` (None if tensorboard is not installed)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))


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


def _metrics(cfg: TrainConfig, tasks: list[str], visits: list[str], steps_per_visit: int, curve: list[dict],
             wall: float) -> dict:
    """Run facts, the curve, and the paper's metrics (:func:`legion_policy.metrics.summarise`)."""
    head = {"method": cfg.method, "tasks": tasks, "visits": visits, "steps_per_task": cfg.steps_per_task,
            "eval_episodes": cfg.eval_episodes, "seed": cfg.seed, "placement": cfg.placement,
            "replay": cfg.replay or METHODS[cfg.method][1], "wall_time_s": round(wall, 1),
            "env_steps": curve[-1]["step"] if curve else 0}
    if cfg.method == "multitask":
        final = curve[-1]["success"]
        summary = {"final_success": final, "average_success_final": float(np.mean(list(final.values())))}
    else:
        summary = lm.summarise(curve, tasks, visits, steps_per_visit)
    summary["average_success_curve"] = lm.average_success(curve, tasks)
    return {**head, **summary, "curve": curve}


def _write_metrics(out: Path, metrics: dict) -> None:
    _atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    tasks = metrics["tasks"]
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "visit", "training_task", "elapsed_s", *tasks, "average_success"])
        for row in metrics["curve"]:
            w.writerow([row["step"], row["visit"], row["task"], row["elapsed_s"], *[row["success"][t] for t in tasks],
                        row["average_success"]])
