"""KUKA Meta-World check: Meta-World's scripted experts on the paper's ten tasks, Sawyer vs KUKA (mocap, joint).

The experts were written for the Sawyer; their success on the iiwa 14 + 2F-85 measures how much of each task
carries over to the other robot under the same task code, and the steps/s the environments run at.

    MUJOCO_GL=egl .venv/bin/python benchmarks/bench_kuka_metaworld.py --episodes 10 \
        --json benchmarks/results/kuka_metaworld_experts.json
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import metaworld.policies as mw_policies

from legion_sim.metaworld_env import PAPER_TASKS, MetaWorldTaskEnv

#: Step budget per episode: the experts are slower on the KUKA; joint mode steps are 50 ms (4 x Meta-World's).
MAX_STEPS = 500


def expert(task: str):
    return getattr(mw_policies, "Sawyer" + "".join(w.capitalize() for w in task[:-3].split("-")) + "V3Policy")()


def measure(task: str, robot: str, control: str, episodes: int) -> dict:
    env = MetaWorldTaskEnv(task, seed=0, robot=robot, control=control, max_episode_steps=MAX_STEPS)
    policy, successes, steps, t0 = expert(task), 0, 0, time.perf_counter()
    for episode in range(episodes):
        env.reset(seed=episode)
        for _ in range(MAX_STEPS):
            steps += 1
            if env.step(policy.get_action(env.last_obs39))[4]["success"]:
                successes += 1
                break
    env.close()
    return {"task": task, "robot": robot, "control": control, "success": successes, "episodes": episodes,
            "steps_per_s": round(steps / (time.perf_counter() - t0), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--tasks", default=",".join(PAPER_TASKS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Constant")  # the experts' gains warning
    rows = []
    for task in args.tasks.split(","):
        for robot, control in (("sawyer", "mocap"), ("kuka", "mocap"), ("kuka", "joint")):
            row = measure(task, robot, control, args.episodes)
            rows.append(row)
            print(f"{task:26s} {robot:6s} {control:5s} {row['success']:2d}/{row['episodes']}  "
                  f"{row['steps_per_s']:7.1f} steps/s", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
