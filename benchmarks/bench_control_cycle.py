"""Policy step latency and the whole 20 Hz control cycle of the main job.

Prints:
  * policy step (encoder + DPMM component + actor, one observation): median and p99, ms;
  * one whole control cycle (Real2Sim FK, policy, Sim2Real, safety, IK, safety, 50 ms of MuJoCo physics):
    median and p99, ms, in lockstep (as fast as possible);
  * the same cycle paced at 20 Hz by the wall clock: achieved rate, period jitter and deadline misses;
  * one full garbage collection with the policy loaded, before and after ``gc.freeze()`` (what the ROS nodes do
    once they are built, legion_nodes/_ros.py): ms.

Usage: .venv/bin/python benchmarks/bench_control_cycle.py [--checkpoint models/legion-reach-drawer] [--seconds 15]
"""
from __future__ import annotations

import argparse
import gc
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from legion_language.embedding import TextEmbedder
from legion_runtime.main_job import load_policy, make_chain
from legion_runtime.runner import ControlLoop
from legion_sim.plant import KukaPlant


def pct(x, q):
    return float(np.percentile(np.asarray(x) * 1e3, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="models/legion-reach-drawer")
    ap.add_argument("--seconds", type=float, default=15.0, help="duration of the wall-clock 20 Hz run")
    args = ap.parse_args()

    policy = load_policy(args.checkpoint)
    embedding = TextEmbedder().embed("reach the goal")
    plant = KukaPlant("reach-v3", seed=0)
    plant.reset(0)

    # Policy alone.
    q, _ = plant.joint_state()
    real2sim, sim2real, safety = make_chain(observation_layout=policy.observation_layout)
    obs = real2sim.observation(q, plant.object_position(), plant.goal_position(), knuckle_rad=plant.gripper_position())
    for _ in range(50):
        policy.act(obs, embedding)
    t = []
    for _ in range(2000):
        t0 = time.perf_counter()
        policy.act(obs, embedding)
        t.append(time.perf_counter() - t0)
    print(f"policy step: median {pct(t, 50):.3f} ms, p99 {pct(t, 99):.3f} ms (n={len(t)})")
    collections = []
    for freeze in (False, True):
        if freeze:
            gc.freeze()
        t0 = time.perf_counter()
        gc.collect()
        collections.append((time.perf_counter() - t0) * 1e3)
    gc.unfreeze()
    print(f"full garbage collection with the policy loaded ({len(gc.get_objects())} objects): {collections[0]:.1f} ms; "
          f"after gc.freeze(): {collections[1]:.2f} ms")

    # Whole cycle in lockstep: time each cycle through the loop's on_step hook.
    loop = ControlLoop(policy, real2sim, sim2real, safety)
    cycles: list[float] = []
    last = [time.perf_counter()]

    def tick(_step: int) -> None:
        now = time.perf_counter()
        cycles.append(now - last[0])
        last[0] = now

    for ep in range(20):
        plant.reset(ep)
        last[0] = time.perf_counter()
        loop.run_subtask(plant, "reach", embedding, max_steps=150, on_step=tick)
    print(f"control cycle (lockstep): median {pct(cycles, 50):.2f} ms, p99 {pct(cycles, 99):.2f} ms "
          f"(n={len(cycles)}; budget 50 ms at 20 Hz)")

    # Paced at 20 Hz wall clock: sleep until each deadline; a miss is a cycle that ends after its deadline.
    period = 0.05
    n = int(args.seconds / period)
    starts, misses, late = [], 0, []
    plant.reset(123)
    start = time.perf_counter()
    steps_done = 0

    def paced(step: int) -> None:
        nonlocal misses, steps_done
        steps_done += 1
        deadline = start + steps_done * period
        now = time.perf_counter()
        if now > deadline:
            misses += 1
            late.append(now - deadline)
        else:
            time.sleep(deadline - now)
        starts.append(time.perf_counter())

    while steps_done < n:
        plant.reset(steps_done)
        loop.run_subtask(plant, "reach", embedding, max_steps=min(150, n - steps_done), on_step=paced)
    periods = np.diff(starts)
    print(f"control cycle at 20 Hz wall clock for {args.seconds:.0f} s: {len(starts) / (starts[-1] - start):.2f} Hz "
          f"achieved, period median {pct(periods, 50):.2f} ms, p99 {pct(periods, 99):.2f} ms, "
          f"deadline misses {misses}/{len(starts)}" + (f" (worst {max(late) * 1e3:.1f} ms late)" if late else ""))


if __name__ == "__main__":
    main()
