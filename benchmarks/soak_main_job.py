"""Soak run: the main job's control loop paced at 20 Hz by the wall clock, for minutes, with safety checks.

Runs randomised episodes of the shipped policy (reach-v3, drawer-close-v3 alternately, 150 steps at most) one
after another, each cycle paced to a 50 ms wall-clock deadline, and reports:

* cycle time (the work of one cycle) and period: median, p99, p99.9, max, ms;
* deadline misses (a cycle that ends after its deadline) and misses beyond one cycle (> 50 ms late);
* safety interventions by reason, holds, and limit violations: every cycle the measured joints are checked
  against the iiwa 14 position limits and the TCP against the workspace box (+ 1 cm for servo overshoot);
* episodes, success rate and resident memory at the start and the end (a leak shows as growth).

``--perception simulator`` (default) runs the control loop as the robot's control path does (the camera
is a separate node there); ``--perception camera`` adds the virtual RealSense render and tag detection to
every cycle. Prints a summary and writes it as JSON (``--out``).

    taskset -c 0 .venv/bin/python benchmarks/soak_main_job.py --minutes 30 --out benchmarks/results/soak.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from legion_language.embedding import TextEmbedder  # noqa: E402
from legion_runtime.main_job import load_policy, make_chain  # noqa: E402
from legion_runtime.runner import ControlLoop  # noqa: E402
from legion_sim.plant import KukaPlant  # noqa: E402
from sim2real.kinematics import JOINT_LIMITS_RAD  # noqa: E402

PERIOD_S = 0.05
TASKS = (("reach-v3", "reach the goal"), ("drawer-close-v3", "close the drawer"))


def stats_ms(x) -> dict:
    a = np.asarray(x) * 1e3
    return {k: round(float(v), 3) for k, v in
            (("median", np.median(a)), ("p99", np.percentile(a, 99)), ("p99.9", np.percentile(a, 99.9)), ("max", a.max()))}


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--checkpoint", default="models/legion-reach-drawer")
    ap.add_argument("--perception", choices=("simulator", "camera"), default="simulator")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)

    policy = load_policy(args.checkpoint)
    embedder = TextEmbedder()
    embeddings = {task: embedder.embed(text) for task, text in TASKS}
    real2sim, sim2real, safety = make_chain(observation_layout=policy.observation_layout)
    loop = ControlLoop(policy, real2sim, sim2real, safety)
    plants = {task: KukaPlant(task, seed=0) for task, _ in TASKS}
    camera = None
    if args.perception == "camera":
        from legion_runtime.sim_perception import CameraPerception

        camera = CameraPerception()
    lo, hi = safety.limits.workspace_min - 0.01, safety.limits.workspace_max + 0.01

    work, periods, late = [], [], []
    violations = {"joint_limit": 0, "workspace": 0}
    holds, episodes, successes, cycle = 0, 0, 0, 0
    interventions: dict[str, int] = {}
    rss_start = rss_mib()
    n_cycles = int(args.minutes * 60 / PERIOD_S)
    start = time.perf_counter()
    t_prev = [start]

    while cycle < n_cycles:
        task, _ = TASKS[episodes % len(TASKS)]
        plant = plants[task]
        plant.reset(episodes)
        objects = None
        if camera is not None:
            objects = camera.for_subtask(plant, task)
            objects.start(cycle * PERIOD_S)
        t_prev[0] = time.perf_counter()

        def paced(_step: int, plant=plant) -> None:
            nonlocal cycle
            q = plant.joint_state()[0]
            if np.any(np.abs(q) > JOINT_LIMITS_RAD):
                violations["joint_limit"] += 1
            tcp = real2sim.frame.to_base(plant.tcp_position())
            if np.any(tcp < lo) or np.any(tcp > hi):
                violations["workspace"] += 1
            cycle += 1
            now = time.perf_counter()
            work.append(now - t_prev[0])
            deadline = start + cycle * PERIOD_S
            if now > deadline:
                late.append(now - deadline)
            else:
                time.sleep(deadline - now)
            t_now = time.perf_counter()
            periods.append(t_now - t_prev[0])
            t_prev[0] = t_now

        outcome = loop.run_subtask(plant, task, embeddings[task], max_steps=min(150, n_cycles - cycle),
                                   t0_ns=int(cycle * PERIOD_S * 1e9), on_step=paced, objects=objects)
        episodes += 1
        successes += outcome.success
        holds += outcome.holds
        for k, v in outcome.interventions.items():
            interventions[k] = interventions.get(k, 0) + v
        if episodes % 50 == 0:
            print(f"{(time.perf_counter() - start) / 60:.1f} min: {episodes} episodes, {cycle} cycles, "
                  f"{len(late)} deadline misses, violations {violations}", flush=True)

    wall = time.perf_counter() - start
    late_arr = np.asarray(late)
    summary = {
        "minutes": round(wall / 60, 2), "perception": args.perception, "cycles": cycle,
        "rate_hz": round(cycle / wall, 3), "cycle_work_ms": stats_ms(work), "period_ms": stats_ms(periods),
        "deadline_misses": int(len(late)), "misses_beyond_one_cycle": int(np.sum(late_arr > PERIOD_S)),
        "worst_late_ms": round(float(late_arr.max() * 1e3), 2) if len(late) else 0.0,
        "limit_violations": violations, "holds": holds, "interventions": interventions,
        "episodes": episodes, "success_rate": round(successes / episodes, 3),
        "rss_mib_start": round(rss_start, 1), "rss_mib_end": round(rss_mib(), 1),
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    for plant in plants.values():
        plant.close()


if __name__ == "__main__":
    main()
