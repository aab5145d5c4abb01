"""Reference controllers on the KUKA: success per task through the deployed joint chain, and in mocap mode.

``chain``: :class:`legion_sim.plant.KukaPlant` driven by :class:`legion_runtime.runner.ControlLoop` (Real2Sim, the
controller on the 12-d observation, Sim2Real, safety filter, IK, safety filter, joint targets at 20 Hz), 150 steps
(7.5 s) per episode, as a LEGION subtask runs. ``mocap``: the KUKA Meta-World environment in mocap mode
(``MetaWorldTaskEnv(robot="kuka", control="mocap")``, 12.5 ms steps, 600 steps = 7.5 s). Placements are Meta-World's
own, randomised (episode i: seed 1000 + i). Prints one table and writes the JSON.

    MUJOCO_GL=egl .venv/bin/python benchmarks/bench_reference.py [--episodes 50] [--modes chain,mocap]
        [--json benchmarks/results/reference_controllers.json]
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from legion_sim.metaworld_env import PAPER_TASKS
from legion_sim.reference import ReferenceController

CHAIN_STEPS = 150
MOCAP_STEPS = 600


def run_chain(task: str, episodes: int) -> dict:
    from legion_runtime.main_job import make_chain
    from legion_runtime.runner import ControlLoop
    from legion_sim.plant import KukaPlant

    plant, controller = KukaPlant(task, seed=0), ReferenceController(task)
    loop = ControlLoop(controller, *make_chain())
    steps, holds, interventions, ok, t0 = [], 0, {}, 0, time.perf_counter()
    for i in range(episodes):
        plant.reset(1000 + i)
        controller.reset()
        out = loop.run_subtask(plant, task, np.zeros(1, np.float32), CHAIN_STEPS)
        ok += out.success
        steps += [out.steps] if out.success else []
        holds += out.holds
        for k, v in out.interventions.items():
            interventions[k] = interventions.get(k, 0) + v
    plant.close()
    return {"task": task, "mode": "chain", "success": ok, "episodes": episodes,
            "steps_median": float(np.median(steps)) if steps else None, "holds": holds,
            "interventions": interventions, "wall_s": round(time.perf_counter() - t0, 1)}


def run_mocap(task: str, episodes: int) -> dict:
    from legion_sim.kuka_metaworld import METAWORLD_STEP_S
    from legion_sim.metaworld_env import MetaWorldTaskEnv

    env = MetaWorldTaskEnv(task, seed=0, robot="kuka", control="mocap", max_episode_steps=MOCAP_STEPS)
    controller = ReferenceController(task, dt=METAWORLD_STEP_S)
    steps, ok, t0 = [], 0, time.perf_counter()
    for i in range(episodes):
        obs, _ = env.reset(seed=1000 + i)
        controller.reset()
        for t in range(MOCAP_STEPS):
            obs, _, _, truncated, info = env.step(controller.act(obs)[0])
            if info["success"]:
                ok += 1
                steps.append(t + 1)
                break
            if truncated:
                break
    env.close()
    return {"task": task, "mode": "mocap", "success": ok, "episodes": episodes,
            "steps_median": float(np.median(steps)) if steps else None, "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--tasks", default=",".join(PAPER_TASKS))
    parser.add_argument("--modes", default="chain,mocap")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # Meta-World's gymnasium deprecation notes
    rows = []
    print(f"{'task':26s} {'mode':6s} success  median steps to success")
    for task in args.tasks.split(","):
        for mode in args.modes.split(","):
            row = (run_chain if mode == "chain" else run_mocap)(task, args.episodes)
            rows.append(row)
            print(f"{task:26s} {mode:6s} {row['success']:3d}/{row['episodes']}  {row['steps_median']}"
                  + (f"  holds {row['holds']}" if mode == "chain" else ""), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
