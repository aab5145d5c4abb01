"""Meta-World v3 tasks as Gymnasium environments with the project's 12-d observation.

:class:`MetaWorldTaskEnv` wraps one Meta-World v3 environment (e.g. ``reach-v3``) so that

* observations are the 12-d sim-frame vector of :mod:`sim2real.observation` (float32, metres);
* actions are Meta-World's 4-d Box(-1, 1): end-effector displacement (1 unit = 1 cm per step) and
  gripper command;
* an episode is truncated after ``max_episode_steps`` (150, the paper's episode length);
* the object/goal placement is re-drawn at every reset from the task's random-reset space;
* ``info["success"]`` is a bool.

Meta-World's task API is used as documented: the environment is configured with a task from the
MT1 benchmark (``set_task``), which switches the goal to visible and rebuilds the cached
observation space; setting ``_partially_observable`` by hand would leave a cached space that clips
the goal to zero (see ../shared/docs/environment.md). After ``set_task`` the random vector is unfrozen and
drawn from the environment's seeded generator, so placements differ every episode but are
reproducible from ``seed``.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from sim2real.observation import ACTION_DIM, OBS_DIM, check_layout, from_metaworld

#: The paper's episode length (steps of 12.5 ms simulated time each).
EPISODE_STEPS = 150
#: Meta-World's v1 rewards peak near 2,300 per step (reach); this brings them to v2's 0..10 range for SAC.
V1_REWARD_SCALE = 0.01


def metaworld_env_ids() -> list[str]:
    """All Meta-World v3 environment names (e.g. ``"reach-v3"``)."""
    import metaworld

    return sorted(metaworld.MT1.ENV_NAMES)


class MetaWorldTaskEnv(gym.Env):
    """One Meta-World v3 task with randomised placements, 12-d observations and 150-step episodes.

    Args:
        env_id: Meta-World v3 name, e.g. ``"reach-v3"`` or ``"drawer-close-v3"``.
        seed: seeds the placement generator (and the action space); same seed -> same placements.
        max_episode_steps: truncation horizon (default 150, the paper's).
        render_mode: passed to Meta-World (``"rgb_array"`` needs ``MUJOCO_GL=egl`` headless).
        reward_version: Meta-World's ``reward_function_version``: ``"v2"`` (default, the benchmark's) or
            ``"v1"`` (the original dense rewards, times :data:`V1_REWARD_SCALE`). Reach-v3's v2 reward is
            flat inside the 5 cm success radius, so policies trained on it stop at its edge; v1's keeps
            rising to the goal. Success tests are the same for both.
        placement: ``"random"`` (default): a new object/goal placement every episode; ``"fixed"``: the
            one placement of the MT1 task drawn from ``seed`` in every episode (the paper's official code).
        robot: ``"sawyer"`` (Meta-World's own) or ``"kuka"``: the iiwa 14 + 2F-85 in the same task code
            (:mod:`legion_sim.kuka_metaworld`).
        control: KUKA only: ``"mocap"`` (Meta-World's mocap weld, 12.5 ms steps) or ``"joint"`` (Sim2Real + IK
            to joint position servos, 50 ms steps, as deployed).
        kuka_options: KUKA only: more keyword arguments of :func:`legion_sim.kuka_metaworld.kuka_env_class`'s
            classes (``scene_config``, ``control_dt``, ``perception_rig``).
        layout: ``"metaworld"`` (default): Meta-World's placements and hand start; ``"table"`` (KUKA, the seven
            tasks of the long-horizon table): the object set where the table scene puts it (its anchor +-2.5 cm,
            :func:`legion_sim.table_scene.layout_spaces`) and the hand where the table starts the subtask
            (:func:`legion_sim.table_scene.layout_start`), so a skill learns where it is used.
        observation_layout: a key of :data:`sim2real.observation.OBS_LAYOUTS`: ``"paper"`` (default) or
            ``"gripper"`` (Meta-World's gripper opening, obs[3], in slot 6).

    Observation: Box(-inf, inf, (12,), float32), laid out as ``observation_layout`` says
    (:data:`sim2real.observation.OBS_LAYOUTS`).
    Action: Box(-1, 1, (4,), float32).

    Raises:
        ValueError: ``env_id`` is not a Meta-World v3 environment (the message lists them), or an option is not one
            of its values (the message says which are).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(self, env_id: str, seed: int = 0, max_episode_steps: int = EPISODE_STEPS,
                 render_mode: str | None = None, reward_version: str = "v2", placement: str = "random",
                 robot: str = "sawyer", control: str = "mocap", kuka_options: dict[str, Any] | None = None,
                 layout: str = "metaworld", observation_layout: str = "paper"):
        import metaworld

        from legion_sim.table_scene import LAYOUTS, TASKS_BY_ID

        if env_id not in metaworld.MT1.ENV_NAMES:
            raise ValueError(f"unknown Meta-World task {env_id!r}; use a v3 name such as 'reach-v3'. "
                             f"Known: {', '.join(sorted(metaworld.MT1.ENV_NAMES))}")
        if max_episode_steps <= 0:
            raise ValueError(f"max_episode_steps must be positive, got {max_episode_steps}")
        if placement not in ("random", "fixed"):
            raise ValueError(f"placement must be 'random' or 'fixed', got {placement!r}")
        if reward_version not in ("v1", "v2"):
            raise ValueError(f"reward_version must be 'v1' or 'v2', got {reward_version!r}")
        if robot not in ("sawyer", "kuka"):
            raise ValueError(f"robot must be 'sawyer' or 'kuka', got {robot!r}")
        if robot == "sawyer" and (control != "mocap" or kuka_options):
            raise ValueError("the Sawyer is driven by Meta-World's mocap only; control='joint' needs robot='kuka' "
                             "(as do kuka_options)")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if layout == "table" and (robot != "kuka" or env_id not in TASKS_BY_ID):
            raise ValueError(f"layout 'table' needs robot 'kuka' and a task of the table ({', '.join(TASKS_BY_ID)}); "
                             f"got robot {robot!r}, task {env_id!r}")
        self.env_id = env_id
        self.robot, self.control, self.layout = robot, control, layout
        self.observation_layout = check_layout(observation_layout)
        self._with_gripper = observation_layout == "gripper"
        self.reward_version = reward_version
        self._reward_scale = V1_REWARD_SCALE if reward_version == "v1" else 1.0
        self.max_episode_steps = int(max_episode_steps)
        benchmark = metaworld.MT1(env_id, seed=seed)
        env_class = benchmark.train_classes[env_id]
        extra = {}
        if robot == "kuka":
            from legion_sim.kuka_metaworld import kuka_env_class

            env_class, extra = kuka_env_class(env_class), {"control": control, **(kuka_options or {})}
        self._env = env_class(render_mode=render_mode, reward_function_version=reward_version, **extra)
        # MT1 tasks carry partially_observable=False: set_task makes the goal visible properly.
        self._env.set_task(benchmark.train_tasks[0])
        if layout == "table":
            from legion_sim.table_scene import layout_spaces, layout_start

            reset, goal = self._env._random_reset_space, self._env.goal_space
            low, high, goal_low, goal_high = layout_spaces(env_id, reset.low, reset.high, goal.low, goal.high)
            self._env._random_reset_space = gym.spaces.Box(low, high, dtype=np.float64)
            # the goal box bounds the observed goal (Meta-World clips the observation to it, and rewards the clipped one)
            self._env.goal_space = gym.spaces.Box(goal_low, goal_high, dtype=np.float64)
            self._env.__dict__.pop("sawyer_observation_space", None)  # a cached_property: recomputed from goal_space
            self._env._last_rand_vec = np.random.default_rng(seed).uniform(low, high)  # "fixed": one of the table's
            self._env.hand_init_pos = layout_start(env_id)
        self.placement = placement
        # Then draw a fresh placement at every reset from the env's own seeded generator, or keep the
        # task's one placement (the paper code's setting) with the random vector frozen.
        self._env._freeze_rand_vec = placement == "fixed"
        self._env.seeded_rand_vec = True
        self._env.seed(seed)
        # Meta-World raises if stepped past max_path_length; make it our horizon.
        self._env.max_path_length = self.max_episode_steps
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.action_space.seed(seed)
        self._steps = 0

    @property
    def unwrapped_metaworld(self):
        """The underlying Meta-World ``SawyerXYZEnv`` (for scripted expert policies and tests)."""
        return self._env

    @property
    def last_obs39(self) -> np.ndarray:
        """Meta-World's full 39-d observation from the last reset/step (float64)."""
        return self._obs39

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode with a new random object/goal placement.

        Args:
            seed: if given, reseeds the placement generator first (Gymnasium convention).

        Returns:
            (obs (12,) float32, info dict with ``"obs39"``).
        """
        super().reset(seed=seed)
        if seed is not None:
            self._env.seed(seed)
            self.action_space.seed(seed)
        obs39, _ = self._env.reset()
        self._obs39 = obs39
        self._steps = 0
        return from_metaworld(obs39, self._with_gripper), {"obs39": obs39}

    def step(self, action: np.ndarray):
        """Apply one 4-d action (clipped to [-1, 1]) for one Meta-World step.

        Returns:
            (obs (12,) float32, reward float (Meta-World's v2 reward, 0..10, or scaled v1), terminated False,
            truncated (True at ``max_episode_steps``), info with ``"success"`` bool and Meta-World's
            reward terms).

        Raises:
            ValueError: the action is not 4 finite numbers.
            RuntimeError: stepped after truncation without reset.
        """
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if action.shape != (ACTION_DIM,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be {ACTION_DIM} finite numbers in [-1, 1], got {action!r}")
        if self._steps >= self.max_episode_steps:
            raise RuntimeError("episode is over (truncated); call reset() before step()")
        obs39, reward, _, truncated, info = self._env.step(np.clip(action, -1.0, 1.0))
        self._obs39 = obs39
        self._steps += 1
        info = dict(info)
        info["success"] = bool(info.get("success", 0.0))
        truncated = bool(truncated) or self._steps >= self.max_episode_steps
        return from_metaworld(obs39, self._with_gripper), float(reward) * self._reward_scale, False, truncated, info

    def render(self):
        """RGB frame from Meta-World (upside down under EGL: flip with ``np.flipud``)."""
        return self._env.render()

    def close(self):
        self._env.close()


class TaskCycleEnv(gym.Env):
    """Several :class:`MetaWorldTaskEnv` behind one Gymnasium interface, switching task at every reset.

    Each reset moves on to the next task, round robin from ``start`` (one task: a plain wrapper). The
    multi-task trainer uses it so that a Gymnasium vector environment can step episodes of different
    tasks side by side; ``info["task_index"]`` (int, index into ``envs``) says which task an episode is.

    Args:
        envs: the task environments (same observation and action spaces).
        start: index of the task of the first episode.

    Raises:
        ValueError: ``envs`` is empty.
    """

    def __init__(self, envs: list[MetaWorldTaskEnv], start: int = 0):
        if not envs:
            raise ValueError("TaskCycleEnv needs at least one task environment")
        self.envs = list(envs)
        self.observation_space, self.action_space = envs[0].observation_space, envs[0].action_space
        self.max_episode_steps = envs[0].max_episode_steps
        self._next = int(start) % len(self.envs)
        self.current = self._next

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the next task's environment. Returns (obs (12,) float32, info with ``"task_index"``)."""
        super().reset(seed=seed)
        self.current, self._next = self._next, (self._next + 1) % len(self.envs)
        obs, info = self.envs[self.current].reset(seed=seed, options=options)
        return obs, {**info, "task_index": self.current}

    def step(self, action: np.ndarray):
        """Step the current task's environment (see :meth:`MetaWorldTaskEnv.step`); adds ``"task_index"``."""
        obs, reward, terminated, truncated, info = self.envs[self.current].step(action)
        return obs, reward, terminated, truncated, {**info, "task_index": self.current}

    def close(self):
        for env in self.envs:
            env.close()


#: The paper's ten tasks (easy to hard), the KUKA Meta-World's registered set.
PAPER_TASKS = ("reach-v3", "push-v3", "pick-place-v3", "door-open-v3", "faucet-open-v3", "drawer-close-v3",
               "button-press-topdown-v3", "peg-unplug-side-v3", "window-open-v3", "window-close-v3")


def register_envs() -> list[str]:
    """Register ``legion/sawyer-<task>`` and ``legion/kuka-<task>`` Gymnasium ids for the paper's ten tasks.

    ``gymnasium.make("legion/kuka-drawer-close-v3", control="joint")`` builds a :class:`MetaWorldTaskEnv` with
    the iiwa 14 + 2F-85 (``control`` "mocap" by default); other keyword arguments go to the constructor.
    Importing :mod:`legion_sim` calls this. Returns the registered ids.
    """
    ids = []
    for robot in ("sawyer", "kuka"):
        for task in PAPER_TASKS:
            env_id = f"legion/{robot}-{task}"
            if env_id not in gym.registry:
                gym.register(env_id, entry_point="legion_sim.metaworld_env:MetaWorldTaskEnv",
                             kwargs={"env_id": task, "robot": robot}, disable_env_checker=True)
            ids.append(env_id)
    return ids
