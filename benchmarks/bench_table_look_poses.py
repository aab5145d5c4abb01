"""What the table's two calibrated cameras see with the arm at rest at the start pose and at each look pose.

The long-horizon runner (``legion_runtime.long_horizon``) starts a subtask from the start pose, or, when its object is
not seen from there, from the first of ``LOOK_POSES`` that shows it. This resets the table at ``--resets`` seeds, puts
the arm at rest at each pose (ee point top-down, gripper open), and runs what the runner runs at a subtask's start
(``TableCameraPerception.seen``: one whole frame of each camera, the detector, the calibrations, the tag map). An
object counts as seen when located within 1 cm of the simulator's point. Prints, per pose and for the poses together,
how many resets see each object, and the seeds where one is missed.

    MUJOCO_GL=egl .venv/bin/python benchmarks/bench_table_look_poses.py [--seed 100] [--resets 20]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from legion_runtime.long_horizon import LOOK_POSES
from legion_runtime.sim_perception import TableCameraPerception
from legion_sim.table_scene import HAND_INIT_POS, TablePlant

TOLERANCE_M = 0.01


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=100, help="first reset seed")
    parser.add_argument("--resets", type=int, default=20)
    args = parser.parse_args()
    t0 = time.perf_counter()
    plant = TablePlant(seed=args.seed)
    perception = TableCameraPerception(plant)
    poses = {"start": HAND_INIT_POS, **{f"look {i + 1}": np.asarray(p) for i, p in enumerate(LOOK_POSES)}}
    seen = {name: {} for name in poses}  # pose -> {seed: objects seen}
    objects = list(plant.objects())
    for seed in range(args.seed, args.seed + args.resets):
        for name, pose in poses.items():
            plant.reset(seed)
            plant.rest_at(pose)
            truth = plant.objects()
            seen[name][seed] = {o for o, p in perception.seen().items() if np.linalg.norm(p - truth[o]) < TOLERANCE_M}
    either = {seed: set().union(*(seen[name][seed] for name in poses)) for seed in seen["start"]}
    print(f"objects located within {TOLERANCE_M * 100:g} cm, resets {args.seed}-{args.seed + args.resets - 1}")
    for name, by_seed in [*seen.items(), ("any of them", either)]:
        missed = {o: [s for s, got in by_seed.items() if o not in got] for o in objects}
        print(f"{name:12s} " + ", ".join(f"{o} {args.resets - len(m)}/{args.resets}" for o, m in missed.items())
              + "".join(f"\n{'':13s}{o} missed at {m}" for o, m in missed.items() if m))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
