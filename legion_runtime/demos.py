"""`legion demos`: demonstrations of the reference controllers through the deployed joint chain.

For each task, ``episodes`` randomised episodes (placement seed ``seed + i``) of
:class:`legion_sim.reference.ReferenceController` on :class:`legion_sim.plant.KukaPlant`, run by
:class:`legion_runtime.runner.ControlLoop` (Real2Sim, Sim2Real, safety filter, IK: what a LEGION subtask runs
through), at most ``max_steps`` steps each, ending at the first success. Every cycle in which the controller acted
is a transition (s_t, a_t, r_{t+1}, s_{t+1}); the file format is :mod:`legion_policy.demonstrations`.

With ``action_noise`` sigma > 0 the demonstrations are DART's (Laskey et al. 2017, "DART: Noise Injection for Robust
Imitation Learning"): the TCP displacement the controller asks for gets Gaussian noise N(0, sigma^2) per axis (action
units, 1 unit = 1 cm per step; clipped to [-1, 1]; the gripper command is left as it is) before it is executed, and
the executed action is recorded. The closed-loop controller corrects the drift at the next cycle, so the files hold
states off the nominal path with the corrections that lead back to it; cloning the noisy actions with a squared error
learns their mean, the controller's action. The transition stays exact for the critics (a_t is what was executed).
"""
from __future__ import annotations

import time
import numpy as np

from legion_policy.demonstrations import Demonstrations


class _Recorder:
    """Wraps a controller: keeps each (s_t, a_t) it was asked for (ControlLoop's policy interface); with
    ``action_noise`` > 0 a_t is the controller's TCP displacement plus N(0, sigma^2) per axis, clipped (DART)."""

    def __init__(self, controller, action_noise: float = 0.0, seed: int = 0):
        self.controller = controller
        self.action_noise = float(action_noise)
        self.rng = np.random.default_rng(seed)
        self.pending: tuple[np.ndarray, np.ndarray] | None = None

    def act(self, obs: np.ndarray, embedding: np.ndarray) -> tuple[np.ndarray, int]:
        action, component = self.controller.act(obs, embedding)
        if self.action_noise > 0:
            action = np.asarray(action, np.float64).copy()
            action[:3] = np.clip(action[:3] + self.rng.normal(0.0, self.action_noise, 3), -1.0, 1.0)
        self.pending = (np.asarray(obs, np.float32).copy(), np.asarray(action, np.float32).copy())
        return action, component


def record_task(task: str, episodes: int, seed: int = 0, max_steps: int = 150,
                layout: str = "metaworld", observation_layout: str = "paper",
                action_noise: float = 0.0) -> Demonstrations:
    """Record ``episodes`` demonstrations of ``task``'s reference controller (module docstring) at ``layout``
    (:class:`legion_sim.metaworld_env.MetaWorldTaskEnv`'s: Meta-World's placements or the table's), observations
    built by Real2Sim in ``observation_layout`` (a key of :data:`sim2real.observation.OBS_LAYOUTS`; the controllers
    read the points only); ``action_noise``: DART's sigma in action units (module docstring; 0: none), its noise
    seeded by ``seed``.

    Raises:
        ValueError: a task the plant or the reference controllers do not know, an unknown observation layout, or
            ``action_noise`` not in [0, 1].
    """
    if not 0.0 <= action_noise <= 1.0:
        raise ValueError(f"action_noise is DART's sigma in action units (1 unit = 1 cm per step), in [0, 1]; "
                         f"got {action_noise!r}")
    from legion_runtime.main_job import make_chain
    from legion_runtime.runner import ControlLoop
    from legion_sim.plant import KukaPlant
    from legion_sim.reference import ReferenceController

    plant, controller = KukaPlant(task, seed=seed, layout=layout), ReferenceController(task)
    recorder = _Recorder(controller, action_noise, seed)
    loop = ControlLoop(recorder, *make_chain(observation_layout=observation_layout))
    rows: dict[str, list] = {k: [] for k in ("obs", "action", "reward", "next_obs", "success", "episode", "step")}
    ends: list[int] = []
    seeds = []
    for i in range(episodes):
        plant.reset(seed + i)
        controller.reset()
        seeds.append(seed + i)
        count = [0]

        def on_step(_step: int) -> None:
            if recorder.pending is None:  # the controller did not act this cycle (a hold before acting)
                return
            obs, action = recorder.pending
            recorder.pending = None
            q, _ = plant.joint_state()
            nxt = loop.real2sim.observation(q, plant.object_position(), plant.goal_position(),
                                            knuckle_rad=plant.gripper_position())
            reward, success = plant.evaluate(action)
            for key, value in (("obs", obs), ("action", action), ("reward", reward),
                               ("next_obs", np.asarray(nxt, np.float32)), ("success", success),
                               ("episode", i), ("step", count[0])):
                rows[key].append(value)
            count[0] += 1

        loop.run_subtask(plant, task, np.zeros(1, np.float32), max_steps, on_step=on_step)
        ends.append(len(rows["obs"]) - 1)
    plant.close()
    n = len(rows["obs"])
    truncated = np.zeros(n, bool)
    truncated[[e for e in ends if e >= 0]] = True
    success = np.asarray(rows["success"], bool)
    episode = np.asarray(rows["episode"], np.int32)
    where = "Meta-World v3 placements" if layout == "metaworld" else "the long-horizon table's placements"
    meta = {"task": task, "scene": f"legion_sim.plant.KukaPlant ({where}, KUKA iiwa 14 + 2F-85 "
                                    f"model {plant.config.gripper!r}) through ControlLoop: Real2Sim, Sim2Real, "
                                    "safety filter, IK", "layout": layout,
            "observation_layout": observation_layout,
            "controller": f"legion_sim.reference.ReferenceController({task!r})", "control_dt_s": plant.dt,
            "action_noise": float(action_noise),
            "reward_version": "v2", "episodes": episodes, "max_steps": max_steps,
            "successes": int(len(np.unique(episode[success]))), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return Demonstrations(obs=np.asarray(rows["obs"], np.float32).reshape(n, 12),
                          action=np.asarray(rows["action"], np.float32).reshape(n, 4),
                          reward=np.asarray(rows["reward"], np.float32), next_obs=np.asarray(rows["next_obs"],
                                                                                             np.float32).reshape(n, 12),
                          terminated=np.zeros(n, bool), truncated=truncated, success=success, episode=episode,
                          step=np.asarray(rows["step"], np.int32), seed=np.asarray(seeds, np.int64), meta=meta)

