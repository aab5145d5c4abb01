"""How well the table's two cameras keep each subtask's object while the arm works on it: real rendering and detection.

Where ``bench_table_camera_views.py`` ray-casts candidate tags, this renders the scene with the tags it carries
(``legion_sim.camera.TAG_MOUNTS["clean-the-table"]``) and runs the deployed detector and tracker on both cameras:

1. Record: the reference controllers run "clean the table" and "make the coffee" (random orders, seeds 100+i) through
   the deployed chain, objects read from the simulator; the joint state and the active subtask are kept each step.
2. Replay every ``--stride``-th step of each subtask: render both 1280 x 720 cameras at their true poses, detect
   (``sim2real.perception.TagDetector``) and fuse (``ObjectTracker``, no smoothing). The object counts as located at a
   step when the tracker measured it in that step's frames within 1 cm of the simulator's point.
3. Print per subtask: the fraction of steps located, the longest run of steps not located (what
   ``legion_runtime.sim_perception.TABLE_MAX_PREDICT_S`` must bridge), and the runs where it is located at the last
   step (where success is judged).

    MUJOCO_GL=egl .venv/bin/python benchmarks/bench_table_tag_tracking.py [--trials 8] [--stride 3]
        [--json benchmarks/results/table_tag_tracking.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import mujoco
import numpy as np
from bench_table_camera_views import record

from legion_language.tasks import load_task_library
from legion_sim.camera import sim_tag_map_path
from legion_sim.table_scene import TablePlant
from sim2real.perception import ObjectTracker, TagDetector, load_tag_map

#: A located object is within this of the simulator's point, m.
TOLERANCE_M = 0.01


def replay(plant: TablePlant, runs: list[dict], stride: int) -> dict:
    """{env id: {"steps", "located", "longest_gap_steps", "final_located", "runs"}} over the recorded ``runs``."""
    tags = load_tag_map(sim_tag_map_path())
    detector, cameras = TagDetector(tags), plant.table_cameras()
    extrinsics = {name: camera.pose_sim() for name, camera in cameras.items()}  # true poses: the tags, not calibration
    objects = {s.env_id: s.object for s in load_task_library().subtasks.values()}
    m, d = plant.model, plant.data
    stats: dict[str, dict] = {}
    for run in runs:
        plant.reset(run["seed"])
        for task in dict.fromkeys(t for t, _ in run["steps"]):
            steps = [q for t, q in run["steps"] if t == task]
            picked = sorted({*range(0, len(steps), stride), len(steps) - 1})
            tracker = ObjectTracker(tags, extrinsics, smoothing=1.0)
            row = stats.setdefault(task, {"steps": 0, "located": 0, "longest_gap_steps": 0, "final_located": 0,
                                          "runs": 0})
            gap = 0
            for i in picked:
                d.qpos[:] = steps[i]
                mujoco.mj_forward(m, d)
                stamp = i * plant.dt
                tracker.update_views({name: detector.detect(cv2.cvtColor(camera.grab(), cv2.COLOR_RGB2GRAY),
                                                            camera.intrinsics)
                                      for name, camera in cameras.items()}, stamp)
                fresh, _ = tracker.poses(stamp)
                name = objects[task]
                ok = bool(name in fresh and fresh[name][1] == stamp
                          and np.linalg.norm(fresh[name][0] - plant.objects()[name]) < TOLERANCE_M)
                row["steps"] += 1
                row["located"] += ok
                gap = 0 if ok else gap + 1
                row["longest_gap_steps"] = max(row["longest_gap_steps"], gap * stride)
            row["final_located"] += ok
            row["runs"] += 1
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="recorded runs per command")
    parser.add_argument("--stride", type=int, default=3, help="replay every n-th recorded step")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    t0 = time.perf_counter()
    plant = TablePlant(seed=0)
    stats = replay(plant, record(plant, args.trials), args.stride)
    print(f"\nobject located by the two table cameras (within {TOLERANCE_M * 100:g} cm), reference runs, one step "
          f"in {args.stride}")
    print(f"{'subtask':26s}{'located':>9s}{'longest gap':>13s}{'at the end':>12s}")
    for task, row in stats.items():
        print(f"{task:26s}{row['located'] / row['steps']:9.2f}{row['longest_gap_steps']:>8d} steps"
              f"{row['final_located']:>8d}/{row['runs']}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"trials_per_command": args.trials, "stride": args.stride,
                                         "tolerance_m": TOLERANCE_M, "subtasks": stats}, indent=1) + "\n")


if __name__ == "__main__":
    main()
