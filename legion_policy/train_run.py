"""One training run's state and its phases: set up, collect, update, refit the knowledge space, evaluate, log,
checkpoint and save or restore the resumable state. :func:`legion_policy.trainer.train` runs them in a flat loop.

A :class:`TrainingRun` owns everything a run changes (agent, replay, generators, curve, counters, logs), so each
phase is a short method and the whole run's state is what :meth:`TrainingRun.save_state` writes.
"""
from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console

from legion_policy import metrics as lm
from legion_policy.agent import LegionAgent
from legion_policy.checkpoint import save_checkpoint
from legion_policy.demonstrations import Demonstrations, path_for, read_demonstrations
from legion_policy.replay import ReplayBuffer
from legion_language.tasks import load_task_library
from legion_policy.train_config import _RUN_ONLY, METHODS, TrainConfig, TrainConfigError
from legion_sim.metaworld_env import MetaWorldTaskEnv, TaskCycleEnv

console = Console(soft_wrap=True)  # messages stay on one line (greppable)

#: The resumable state in the run folder (outside the repository for long runs: ``--out``).
STATE = "state.pt"


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available) as a torch device.

    Raises:
        TrainConfigError: ``"cuda"`` asked for and no CUDA device is present.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainConfigError("device 'cuda' asked for but torch sees no CUDA device; use --device auto or cpu")
    return torch.device(name)


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


def check_demonstrations(demos: dict[int, Demonstrations], tasks: list[str], cfg: TrainConfig) -> None:
    """Refuse demonstrations recorded on another robot, at another layout, with another observation layout or with
    another reward than the run trains the task on.

    Raises:
        TrainConfigError: naming the task, what the file holds and what the run trains.
    """
    for k, demo in demos.items():
        if ("Kuka" in demo.meta.get("scene", "")) != (cfg.robot == "kuka"):
            raise TrainConfigError(f"the demonstrations of {tasks[k]} were recorded on {demo.meta.get('scene')!r}, and "
                                   f"this run trains robot {cfg.robot!r}: train with --robot kuka --control joint or "
                                   "record demonstrations on it")
        layout = demo.meta.get("layout", "metaworld")  # files from before layouts were Meta-World's
        if layout != cfg.layout:
            raise TrainConfigError(f"the demonstrations of {tasks[k]} were recorded at layout {layout!r}, and this run "
                                   f"trains at layout {cfg.layout!r}: record them with `legion demos --layout "
                                   f"{cfg.layout}` (objects and hand start stand elsewhere)")
        observed = demo.meta.get("observation_layout", "paper")  # files from before layouts had names
        if observed != cfg.observation_layout:
            raise TrainConfigError(f"the demonstrations of {tasks[k]} hold observations of layout {observed!r}, and "
                                   f"this run trains on {cfg.observation_layout!r}: record them with `legion demos "
                                   f"--observation-layout {cfg.observation_layout}`")
        version = "v1" if tasks[k] in cfg.reward_v1_tasks else "v2"
        if demo.meta.get("reward_version", "v2") != version:
            raise TrainConfigError(f"the demonstrations of {tasks[k]} carry {demo.meta.get('reward_version')} rewards, "
                                   f"and this run trains it on {version}: drop it from --reward-v1 or record "
                                   "demonstrations with that reward")


def add_demonstrations(replay: ReplayBuffer, demo: Demonstrations, task: int, phrases: list[int],
                       rng: np.random.Generator) -> None:
    """Add every transition of ``demo`` to ``replay`` as stream task ``task``, marked as demonstrations, each with a
    phrasing drawn from ``phrases`` (rows of the replay's embedding table), as the online transitions get theirs."""
    for i in range(len(demo)):
        replay.add(demo.obs[i], demo.action[i], demo.reward[i], demo.next_obs[i], float(demo.terminated[i]),
                   int(rng.choice(phrases)), task, demo=True)


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


def task_cycle_env(specs: list[tuple[str, int, str]], episode_steps: int, placement: str, start: int,
                   robot: str = "sawyer", control: str = "mocap", layout: str = "metaworld",
                   observation_layout: str = "paper") -> TaskCycleEnv:
    """A :class:`TaskCycleEnv` over (env_id, seed, reward_version) specs (module level: picklable for workers)."""
    return TaskCycleEnv([MetaWorldTaskEnv(t, seed=seed, max_episode_steps=episode_steps, reward_version=version,
                                          placement=placement, robot=robot, control=control, layout=layout,
                                          observation_layout=observation_layout)
                         for t, seed, version in specs], start=start)


class TrainingRun:
    """Everything one run of :func:`legion_policy.trainer.train` holds, and its phases as methods.

    Built from the settings (:meth:`__init__`: language table, agent, replay, evaluation environments, logs);
    ``visit``, ``local`` (step within the visit) and ``total`` count where the run stands.

    Raises:
        TrainConfigError: invalid settings or a task the task library does not know.
    """

    def __init__(self, cfg: TrainConfig):
        from legion_language.embedding import TextEmbedder

        cfg.validate()
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.library = load_task_library()
        self.tasks = cfg.stream()  # distinct tasks; their stream index is the agent's task index
        self.visits = ["multitask"] if cfg.method == "multitask" else cfg.visits()
        try:
            subtasks = [self.library.by_env_id(t) for t in self.tasks]
        except KeyError as exc:
            raise TrainConfigError(str(exc.args[0])) from exc
        self.legion = METHODS[cfg.method][0] == "legion"

        # The language side: every phrasing of every task embedded once, (P, L); transitions refer to rows
        self.embedder = TextEmbedder(cfg.embedding_model)
        cfg.agent.embed_dim = self.embedder.dim
        self.phrase_rows: list[list[int]] = []  # task index -> rows of the table
        texts: list[str] = []
        for st in subtasks:
            self.phrase_rows.append(list(range(len(texts), len(texts) + len(st.phrasings))))
            texts.extend(st.phrasings)
        self.table = self.embedder.embed(texts)
        canonical = np.array([rows[0] for rows in self.phrase_rows for _ in rows])  # phrasings[0]: the description

        self.agent = make_agent(cfg).to(self.device)
        self.demos = load_stream_demonstrations(cfg.demos, self.tasks) if cfg.demos else {}
        check_demonstrations(self.demos, self.tasks, cfg)
        self.steps_per_visit = cfg.steps_per_task * (len(self.tasks) if cfg.method == "multitask" else 1)
        regime = cfg.replay or METHODS[cfg.method][1]
        visit_demos = [sum(len(self.demos[k]) for k in self.visit_tasks(v) if k in self.demos)
                       for v in range(len(self.visits))]
        capacity = {"unbounded": self.steps_per_visit * len(self.visits) + sum(visit_demos),
                    "fifo": (self.steps_per_visit + max(visit_demos, default=0)) * cfg.fifo_visits,
                    "reservoir": cfg.reservoir_capacity or self.steps_per_visit}[regime]
        self.replay = ReplayBuffer(capacity, self.agent.config.obs_dim, self.agent.config.action_dim, self.table,
                                   canonical, regime=regime, fifo_visits=cfg.fifo_visits, seed=cfg.seed,
                                   device=self.device)
        self.eval_envs = [self.make_env(t, 500, eval_env=True) for t in self.tasks]
        self.saved_cfg = json.loads(json.dumps(plain(asdict(cfg))))
        self.curve: list[dict] = []
        self.visit, self.local, self.total, self.wall_before = 0, 0, 0, 0.0
        self.losses: dict[str, float] = {}
        self.metrics: dict = {}
        self.log = self.tb = None
        self.run_start = time.time()

    # ------------------------------------------------------------------------------------------------- set-up
    def visit_tasks(self, v: int) -> list[int]:
        """Stream indices of the tasks of visit ``v`` (multitask: all)."""
        return list(range(len(self.tasks))) if self.visits[v] == "multitask" else [self.tasks.index(self.visits[v])]

    def make_env(self, t: str, offset: int, eval_env: bool = False) -> MetaWorldTaskEnv:
        """One environment of task ``t`` (evaluation environments always use the v2 reward)."""
        cfg = self.cfg
        version = "v1" if (t in cfg.reward_v1_tasks and not eval_env) else "v2"
        return MetaWorldTaskEnv(t, seed=cfg.seed + 1000 * self.tasks.index(t) + offset,
                                max_episode_steps=cfg.episode_steps, reward_version=version,
                                placement=cfg.placement, robot=cfg.robot, control=cfg.control, layout=cfg.layout,
                                observation_layout=cfg.observation_layout)

    def make_vector_env(self, visit_tasks: list[int], offset: int) -> gym.vector.VectorEnv:
        """``num_envs`` copies of the visit's task(s) (multitask: each cycles through all, starting apart)."""
        cfg, fns = self.cfg, []
        for i in range(cfg.num_envs):
            specs = [(self.tasks[k], cfg.seed + 1000 * k + offset + 7919 * i,
                      "v1" if self.tasks[k] in cfg.reward_v1_tasks else "v2") for k in visit_tasks]
            fns.append(partial(task_cycle_env, specs, cfg.episode_steps, cfg.placement, start=i,
                               robot=cfg.robot, control=cfg.control, layout=cfg.layout,
                               observation_layout=cfg.observation_layout))
        mode = gym.vector.AutoresetMode.SAME_STEP
        if cfg.vector_env == "async":
            return gym.vector.AsyncVectorEnv(fns, context="forkserver", autoreset_mode=mode)
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)

    def open_logs(self) -> None:
        """Append to ``train_log.jsonl``; TensorBoard scalars in ``tb/`` where tensorboard is installed."""
        self.log = open(self.out / "train_log.jsonl", "a")
        self.tb = _tensorboard(self.out / "tb")
        self.run_start = time.time() - self.wall_before

    def close(self) -> None:
        """Close the logs."""
        if self.log is not None:
            self.log.close()
        if self.tb is not None:
            self.tb.close()

    def event(self, kind: str, **fields) -> None:
        """One line of ``train_log.jsonl``."""
        self.log.write(json.dumps({"event": kind, **fields}) + "\n")
        self.log.flush()

    # ---------------------------------------------------------------------------------------------- a visit
    def start_visit(self, v: int) -> tuple[gym.vector.VectorEnv, np.ndarray, dict]:
        """Begin (or, after a resume, re-enter) visit ``v``: at its first step fresh optimisers, the replay's
        visit mark and the visit's demonstrations; then its vector environment, reset.

        Returns:
            (vector env, observations (N, S), reset info).

        Raises:
            TrainConfigError: a resume at a local step that ``num_envs`` does not divide.
        """
        self.visit = v
        if self.local == 0:
            self.agent.reset_optimizers()
            self.replay.start_visit(v)
            for k in self.visit_tasks(v):  # the visit's demonstrations, before its first step
                if k in self.demos:
                    add_demonstrations(self.replay, self.demos[k], k, self.phrase_rows[k], self.rng)
                    self.event("demonstrations", step=self.total, task=self.tasks[k],
                               transitions=len(self.demos[k]), episodes=self.demos[k].episodes,
                               success_rate=self.demos[k].success_rate)
        if self.local % self.cfg.num_envs:
            raise TrainConfigError(f"cannot resume at local step {self.local} with num_envs={self.cfg.num_envs}: "
                                   "use a num_envs that divides it")
        self._tasks_now = self.visit_tasks(v)  # once per visit: collect() runs every env step
        venv = self.make_vector_env(self._tasks_now, 10_000 * v + self.local)
        venv.action_space.seed(self.cfg.seed + 10_000 * v + self.local)  # the random-action phase
        obs, info = venv.reset()
        self._task_of = np.asarray([self._tasks_now[i] for i in info["task_index"]])  # each env's episode task
        self._phrase = np.array([self.rng.choice(self.phrase_rows[k]) for k in self._task_of])
        return venv, obs, info

    def collect(self, venv: gym.vector.VectorEnv, obs: np.ndarray) -> np.ndarray:
        """One vector step: random actions for the visit's first ``random_steps``, else the agent's; every
        transition into the replay. Returns the next observations (N, S)."""
        if self.local < self.cfg.random_steps:
            action = venv.action_space.sample()
        else:
            action = self.agent.act(obs, self.table[self._phrase], task=self._task_of)
        next_obs, reward, terminated, truncated, info = venv.step(action)
        final = next_obs.copy()  # s_{t+1}: for an episode that ended, its last observation
        if "_final_obs" in info:
            for i in np.flatnonzero(info["_final_obs"]):
                final[i] = info["final_obs"][i]
        for i in range(self.cfg.num_envs):
            self.replay.add(obs[i], action[i], reward[i], final[i], float(terminated[i]), self._phrase[i],
                            self._task_of[i])
        for i in np.flatnonzero(terminated | truncated):  # autoreset: a new episode, maybe of another task
            self._task_of[i] = self._tasks_now[info["task_index"][i]]
            self._phrase[i] = self.rng.choice(self.phrase_rows[self._task_of[i]])
        self.local += self.cfg.num_envs
        self.total += self.cfg.num_envs
        return next_obs

    def learning(self) -> bool:
        """Whether updates run now: after the random-action phase of the first visit (later visits at once)."""
        return self.local > self.cfg.random_steps or self.visit > 0

    def update(self, credit: float, encoder_updates: int) -> float:
        """SAC updates while ``credit`` (the update-to-data ratio's owed updates) lasts, then ``encoder_updates``
        upstream updates. Returns the credit left."""
        agent, batch_size = self.agent, self.agent.config.batch_size
        while credit >= 1.0:
            batch = self.replay.sample(batch_size, self.rng, demo_fraction=self.cfg.demo_fraction)
            self.losses = agent.update_sac(batch)
            credit -= 1.0
        for _ in range(encoder_updates):
            self.losses.update(agent.update_encoder(self.replay.sample(batch_size, self.rng)))
        return credit

    def refit_knowledge_space(self) -> None:
        """LEGION: refit the DPMM on encoder means of ``dpmm_samples`` replay states (baselines: nothing)."""
        if not self.legion:
            return
        cfg, replay = self.cfg, self.replay
        idx = self.rng.integers(0, replay.size, min(cfg.dpmm_samples, replay.size))
        report = self.agent.fit_knowledge_space(replay.obs[idx], self.table[replay.phrase[idx]])
        self.event("dpmm_fit", step=self.total, K=int(self.agent.knowledge_space.K), report=plain(report))
        if self.tb is not None:
            self.tb.add_scalar("knowledge_space/K", self.agent.knowledge_space.K, self.total)
            self.tb.add_scalar("knowledge_space/elbo", report.elbo, self.total)

    def log_losses(self, rate: float) -> None:
        """The latest losses and the env-step rate (``rate``, env steps/s since the visit (re)started)."""
        self.event("train", step=self.total, task=self.visits[self.visit], steps_per_s=round(rate, 1),
                   **{k: round(float(v), 5) for k, v in self.losses.items()})
        if self.tb is not None:
            for k, v in self.losses.items():
                self.tb.add_scalar(k, v, self.total)
            self.tb.add_scalar("perf/env_steps_per_s", rate, self.total)

    def evaluate(self) -> None:
        """Every task of the stream, ``eval_episodes`` deterministic episodes: a row of the success curve."""
        cfg = self.cfg
        rates = {t: evaluate(self.agent, self.eval_envs[j], self.table[self.phrase_rows[j]], cfg.eval_episodes, task=j)
                 for j, t in enumerate(self.tasks)}
        row = {"step": self.total, "visit": self.visit, "task": self.visits[self.visit],
               "elapsed_s": round(time.time() - self.run_start, 1), "success": rates,
               "average_success": float(np.mean(list(rates.values())))}
        self.curve.append(row)
        self.event("eval", **row)
        if self.tb is not None:
            self.tb.add_scalar("success/average", row["average_success"], self.total)
            for t, r in rates.items():
                self.tb.add_scalar(f"success/{t}", r, self.total)
        console.log(f"step {self.total:>7d}  " + "  ".join(f"{t}: {r:.2f}" for t, r in rates.items()))

    def end_visit(self, venv: gym.vector.VectorEnv) -> None:
        """Close the visit: refit the knowledge space, dump latents (LEGION), the baselines' task-end hooks,
        evaluate, write the metrics and the deployable checkpoint, and save the state at the next visit's start."""
        v = self.visit
        venv.close()
        self.refit_knowledge_space()
        if self.legion:
            _dump_latents(self.out / "latents" / f"visit_{v:02d}.npz", self.agent, self.replay, self.table, self.rng)
        for k in self.visit_tasks(v):
            self.agent.on_task_end(k, self.replay, self.rng)
        self.evaluate()
        self.write_metrics()
        if self.legion:
            self.write_checkpoint()
        self.local = 0
        self.save_state(v + 1, 0)  # a resume starts at the next visit
        console.log(f"finished visit {v + 1}/{len(self.visits)} ({self.visits[v]}) at step {self.total}")

    # -------------------------------------------------------------------------------------------- outputs
    def write_metrics(self) -> None:
        """``metrics.json`` and ``metrics.csv``: run facts, the curve and the paper's metrics."""
        self.metrics = _metrics(self.cfg, self.tasks, self.visits, self.steps_per_visit, self.curve,
                                time.time() - self.run_start)
        if self.demos:
            self.metrics["demonstrations"] = {self.tasks[k]: len(d) for k, d in self.demos.items()}
        _write_metrics(self.out, self.metrics)

    def write_checkpoint(self) -> None:
        """The deployable checkpoint of the tasks trained so far (``checkpoint/``)."""
        cfg, v = self.cfg, self.visit
        lib = self.library.restricted_to(dict.fromkeys(self.visits[:v + 1]))
        provenance = {"method": cfg.method, "tasks": self.tasks, "visits": self.visits,
                      "tasks_trained": list(dict.fromkeys(self.visits[:v + 1])),
                      "steps_per_task": cfg.steps_per_task, "total_steps": self.total, "seed": cfg.seed,
                      "train_config": self.saved_cfg, "metaworld_success": self.curve[-1]["success"],
                      "eval_episodes": cfg.eval_episodes, "success_matrix": self.metrics.get("success_matrix"),
                      "wall_time_s": round(time.time() - self.run_start, 1)}
        save_checkpoint(self.out / "checkpoint", self.agent, embedding_model=self.embedder.name,
                        embedding_dim=self.embedder.dim, task_library=lib.to_dict(), provenance=provenance,
                        observation_layout=cfg.observation_layout)

    # ------------------------------------------------------------------------------------ resumable state
    _OPTIMIZERS = ("upstream_optimizer", "actor_optimizer", "critic_optimizer", "alpha_optimizer")
    _BASELINE_STATE = ("memory", "fisher", "anchor", "projections", "owner", "current")

    def save_state(self, visit: int, local: int) -> None:
        """Everything needed to continue the run at step ``local`` of visit ``visit``, written atomically to
        ``out/state.pt``."""
        agent, ks = self.agent, self.agent.knowledge_space
        _atomic_torch_save({
            "config": self.saved_cfg, "agent": agent.state_dict(),
            "optimizers": {n: getattr(agent, n).state_dict() for n in self._OPTIMIZERS},
            "knowledge_space": ks.state_dict() if ks is not None else None,
            "baseline": {k: getattr(agent, k) for k in self._BASELINE_STATE if hasattr(agent, k)},
            "replay": self.replay.state_dict(), "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(), "curve": self.curve,
            "progress": {"visit": visit, "local": local, "total": self.total,
                         "wall_before": time.time() - self.run_start},
        }, self.out / STATE)

    def restore(self) -> bool:
        """Continue from ``out/state.pt`` when it exists. Returns whether it did.

        Raises:
            TrainConfigError: the saved run's settings differ from these (other than run-only ones such as
                ``num_envs`` or ``device``).
        """
        path = self.out / STATE
        if not path.exists():
            return False
        state = torch.load(path, weights_only=False, map_location=self.device)
        defaults = json.loads(json.dumps(plain(asdict(TrainConfig()))))
        saved = {**defaults, **state["config"]}  # settings newer than the run take their defaults
        diff = sorted(k for k in self.saved_cfg if k not in _RUN_ONLY and saved.get(k) != self.saved_cfg[k])
        revisits = saved.get("revisits") or []
        if "revisits" in diff and self.saved_cfg["revisits"][:len(revisits)] == revisits:
            diff.remove("revisits")  # more revisits extend the run; the visits it made stay as they were
        if diff:
            raise TrainConfigError(f"cannot resume {self.out}: settings {diff} differ from the saved run's; use the "
                                   "same options or a new --out")
        agent = self.agent
        agent.load_state_dict(state["agent"])
        for name, sd in state["optimizers"].items():
            getattr(agent, name).load_state_dict(sd)
        if state["knowledge_space"] is not None:
            from legion_policy.knowledge_space import KnowledgeSpace
            agent.knowledge_space = KnowledgeSpace.from_state_dict(state["knowledge_space"])
        for key, value in state.get("baseline", {}).items():
            setattr(agent, key, value)
        self.replay.load_state_dict(state["replay"])
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"].cpu())
        self.curve, progress = state["curve"], state["progress"]
        self.visit, self.local, self.total = progress["visit"], progress["local"], progress["total"]
        self.wall_before = progress["wall_before"]
        console.log(f"resumed {self.out} at visit {self.visit + 1}/{len(self.visits)}, local step {self.local}")
        return True

    def finished_metrics(self) -> dict:
        """The metrics of this run (a resumed run that had already finished: those on disk)."""
        if not self.metrics and (self.out / "metrics.json").exists():
            return json.loads((self.out / "metrics.json").read_text())
        return self.metrics


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _dump_latents(path: Path, agent: LegionAgent, replay: ReplayBuffer, table: np.ndarray,
                  rng: np.random.Generator, n: int = 1000) -> None:
    """Encoder means z (n, Z) of replay samples with their task and DPMM component (for t-SNE figures)."""
    idx = rng.integers(0, replay.size, min(n, replay.size))
    obs, embed = (torch.as_tensor(x, device=agent.device) for x in (replay.obs[idx], table[replay.phrase[idx]]))
    z = agent.latent(obs, embed).double().cpu().numpy()
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


def plain(x):
    """JSON-safe copy of dataclasses/numpy values."""
    if hasattr(x, "__dataclass_fields__"):
        x = asdict(x)
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
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
