"""Print the figures docs/reference-controllers.md and docs/lifelong.md quote for the DART stream.

1. The lowest hand point above the puck's centre per episode (obs[2] - obs[5], m) in the clean and the DART
   demonstrations of push and pick-place, and the steps below 4 cm.
2. The training losses of the run with --actor-average (legion/) against the same command without it, stopped at
   40k steps (legion-no-average-40k/): the average does not change training.

usage (repository root): .venv/bin/python models/stream-gripper-dart/check_figures.py
"""
import json
from pathlib import Path

import numpy as np

from legion_policy.demonstrations import path_for, read_demonstrations

HERE = Path(__file__).parent
for folder in ("models/demos-200-gripper", "models/demos-200-gripper-dart"):
    for task in ("pick-place-v3", "push-v3"):
        d = read_demonstrations(path_for(folder, task))
        dz = d.obs[:, 2] - d.obs[:, 5]
        low = np.array([dz[d.episode == e].min() for e in range(d.episodes)])
        print(f"{folder} {task}: lowest hand-puck z per episode {low.min():.4f}..{low.max():.4f} m "
              f"(median {np.median(low):.4f}), steps below 0.04 m: {int((dz < 0.04).sum())} of {len(d)}")


def losses(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "steps_per_s"} for r in rows if r["event"] == "train"]


with_average, without = losses(HERE / "legion"), losses(HERE / "legion-no-average-40k")
same = sum(a == b for a, b in zip(with_average, without))
print(f"training-loss rows identical with and without the average: {same} of {len(without)} "
      f"(up to step {without[-1]['step']})")
