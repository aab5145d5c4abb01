"""Settings of the lifelong trainer (``legion train``, :func:`legion_policy.trainer.train`): the stream, the method,
the replay, the sample-efficiency options and the run's housekeeping, validated with errors that name the setting."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from legion_policy.agent import AgentConfig
from legion_policy.replay import REGIMES
from legion_language.tasks import FEW_SHOT_STREAM, PAPER_STREAM
from legion_sim.metaworld_env import EPISODE_STEPS
from legion_sim.table_scene import TASKS_BY_ID as _TABLE_TASKS
from sim2real.observation import OBS_LAYOUTS

ORDERS = ("paper", "given", "reverse", "random")
#: method -> (agent kind, default replay regime)
METHODS = {"legion": ("legion", "unbounded"), "finetune": ("sac", "fifo"), "perfect-memory": ("sac", "unbounded"),
           "reservoir": ("sac", "reservoir"), "agem": ("agem", "fifo"), "ewc": ("ewc", "fifo"),
           "packnet": ("packnet", "fifo"), "multitask": ("sac", "unbounded")}
STATE = "state.pt"
_DEMOS_200 = str(Path(__file__).resolve().parents[1] / "models" / "demos-200")
#: ``legion train --recipe`` / ``legion sweep --recipe`` (option names of ``legion train``): "paper" is pure RL on
#: Meta-World's Sawyer as the paper (and the defaults of :class:`TrainConfig`); "efficient", the commands' default, is
#: the combination the sample-efficiency study chose (docs/sample-efficiency.md) on the deployed KUKA's joint chain.
RECIPES = {
    "paper": {"robot": "sawyer", "control": "mocap", "utd": 1.0, "critic_layer_norm": False, "bc_weight": 0.0,
              "demos": None, "demo_fraction": 0.0},
    "efficient": {"robot": "kuka", "control": "joint", "utd": 2.0, "critic_layer_norm": True, "bc_weight": 0.4,
                  "demos": _DEMOS_200, "demo_fraction": 0.5},
}
#: Settings that change how fast a run goes or where it is kept, not what it learns: a resume may change them (a run
#: folder copied elsewhere resumes there).
_RUN_ONLY = ("num_envs", "vector_env", "torch_threads", "log_every", "device", "out")


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
        revisits: tasks trained once more after the loops, in this order (each one of ``tasks``), e.g. the one a
            stream left below target. A finished run resumed with more revisits goes on with them: its visits so far
            stay as they were (``legion train --resume --revisit pick-place-v3``).
        method: ``legion``, ``finetune``, ``perfect-memory``, ``reservoir``, ``agem``, ``ewc``, ``packnet``, ``multitask``.
        replay: ``unbounded``, ``fifo`` or ``reservoir``; None: the method's default.
        fifo_visits: visits kept by a FIFO replay (fine-tuning: 1; few-shot protocol: 3).
        reservoir_capacity: transitions kept by a reservoir replay (None: one visit's steps).
        placement: ``"random"`` (every episode) or ``"fixed"`` (one per task, the paper's code).
        robot: ``"sawyer"`` (Meta-World's) or ``"kuka"`` (iiwa 14 + 2F-85, :mod:`legion_sim.kuka_metaworld`).
        control: KUKA control mode: ``"mocap"`` (Meta-World's weld, training speed) or ``"joint"`` (Sim2Real + IK).
        layout: where the objects and the hand start stand: ``"metaworld"`` (Meta-World's placements) or ``"table"``
            (KUKA, the long-horizon table's tasks: where the table puts them, :class:`legion_sim.metaworld_env.MetaWorldTaskEnv`).
        observation_layout: the policy's observation, a key of :data:`sim2real.observation.OBS_LAYOUTS`: ``"paper"``
            (the paper's 12-d vector) or ``"gripper"`` (the same with the gripper's opening in slot 6; beyond the
            paper: without it a grasp that closed on nothing looks like one about to close, docs/lifelong.md).
            Recorded in the checkpoint; deployment builds the same; demonstrations must have been recorded with it.
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
        demo_fraction: share of every SAC batch drawn from the demonstrations in the replay, the rest from online
            transitions (RLPD's symmetric sampling, Ball et al. 2023: 0.5). None: uniform over all stored
            transitions, demonstrations included. Needs ``demos``.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when present, else the CPU) for the networks and their
            updates; environments, replay and knowledge space stay on the CPU. A resume may change it.
        agent: :class:`AgentConfig`.
    """

    tasks: list[str] = field(default_factory=lambda: list(PAPER_STREAM))
    order: str = "given"
    loops: int = 1
    revisits: list[str] = field(default_factory=list)
    method: str = "legion"
    replay: str | None = None
    fifo_visits: int = 1
    reservoir_capacity: int | None = None
    placement: str = "random"
    robot: str = "sawyer"
    control: str = "mocap"
    layout: str = "metaworld"
    observation_layout: str = "paper"
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
    demo_fraction: float | None = None
    device: str = "cpu"
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
        if self.demo_fraction is not None and not (self.demos and 0.0 < self.demo_fraction < 1.0):
            raise TrainConfigError(f"demo_fraction must be in (0, 1) and needs demos (a folder of `legion demos` "
                                   f"files), got {self.demo_fraction!r} with demos={self.demos!r}")
        if self.agent.bc_weight > 0 and not self.demos:
            raise TrainConfigError(f"agent.bc_weight={self.agent.bc_weight} clones demonstrations, and none are given: "
                                   "set demos (--demos models/demos) or bc_weight 0")
        if self.agent.actor_average > 0 and self.method != "legion":
            raise TrainConfigError(f"agent.actor_average (the actor's weight average) is a LEGION option; method "
                                   f"{self.method!r} evaluates its trained actor: set actor_average 0")
        if self.device not in ("cpu", "cuda", "auto"):
            raise TrainConfigError(f"device must be 'cpu', 'cuda' or 'auto', got {self.device!r}")
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
        if self.layout == "table" and (self.robot != "kuka" or not set(self.tasks) <= set(_TABLE_TASKS)):
            raise TrainConfigError(f"layout 'table' needs robot 'kuka' and tasks of the table ({', '.join(_TABLE_TASKS)}); "
                                   f"got robot {self.robot!r}, tasks {sorted(set(self.tasks) - set(_TABLE_TASKS)) or self.tasks}")
        choices = {"order": ORDERS, "method": tuple(METHODS), "placement": ("random", "fixed"),
                   "robot": ("sawyer", "kuka"), "control": ("mocap", "joint"), "layout": ("metaworld", "table"),
                   "observation_layout": tuple(OBS_LAYOUTS), "replay": (None, *REGIMES)}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise TrainConfigError(f"{name} must be one of {[a for a in allowed if a]}, got {getattr(self, name)!r}")
        if self.method == "packnet" and (self.loops != 1 or self.revisits):
            raise TrainConfigError("packnet packs each task once: use loops 1 and no revisits")
        if not set(self.revisits) <= set(self.tasks):
            raise TrainConfigError(f"revisits {sorted(set(self.revisits) - set(self.tasks))} are not tasks of the stream "
                                   f"{self.tasks}: revisit tasks it trained")
        if self.method == "multitask" and self.revisits:
            raise TrainConfigError("multitask trains every task in one visit: it has no revisits")
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
        """Every visit of the run: the ordered tasks, ``loops`` times, then the ``revisits``."""
        return self.stream() * self.loops + list(self.revisits)


def few_shot_protocol(**overrides) -> TrainConfig:
    """The paper's few-shot recall protocol: :data:`FEW_SHOT_STREAM` in 3 loops, a FIFO replay of 3 visits."""
    return TrainConfig(**{"tasks": list(FEW_SHOT_STREAM), "loops": 3, "replay": "fifo", "fifo_visits": 3,
                          **overrides})


def with_recipe(cfg: "TrainConfig", recipe: str) -> "TrainConfig":
    """``cfg`` with the settings of :data:`RECIPES` ``[recipe]`` (robot, control, update-to-data ratio, demonstrations,
    demonstration share, LayerNorm critics, cloning weight).

    Raises:
        TrainConfigError: unknown recipe.
    """
    from dataclasses import replace

    if recipe not in RECIPES:
        raise TrainConfigError(f"recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    r = RECIPES[recipe]
    agent = replace(cfg.agent, critic_layer_norm=r["critic_layer_norm"], bc_weight=r["bc_weight"])
    return replace(cfg, robot=r["robot"], control=r["control"], updates_per_step=r["utd"], demos=r["demos"],
                   demo_fraction=r["demo_fraction"] or None, agent=agent)
