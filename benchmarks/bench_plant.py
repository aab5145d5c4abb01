"""Cost of the simulated KUKA plant: one 20 Hz control step (Sim2Real + IK + 50 ms of physics) and a render.

Drives Meta-World's scripted expert through Sim2Real -> IK -> ``KukaPlant.step`` and prints the
median / p95 wall time of each part, plus construction, reset and 320x240 render times.

    MUJOCO_GL=egl .venv/bin/python benchmarks/bench_plant.py [--task reach-v3] [--episodes 5]
"""
from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from legion_sim.plant import KukaPlant  # noqa: E402
from sim2real.transforms import Real2Sim, Sim2Real  # noqa: E402


def _ms(samples: list[float]) -> str:
    a = np.array(samples) * 1e3
    return f"median {np.median(a):7.3f} ms   p95 {np.percentile(a, 95):7.3f} ms   (n={a.size})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="reach-v3", choices=["reach-v3", "drawer-close-v3"])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100, help="control steps per episode")
    parser.add_argument("--renders", type=int, default=20)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from metaworld.policies import SawyerDrawerCloseV3Policy, SawyerReachV3Policy  # noqa: PLC0415

    policy = {"reach-v3": SawyerReachV3Policy, "drawer-close-v3": SawyerDrawerCloseV3Policy}[args.task]()
    t = time.perf_counter()
    plant = KukaPlant(args.task, seed=0)
    build = time.perf_counter() - t
    s2r, r2s = Sim2Real(plant.frame), Real2Sim(plant.frame)
    t_obs, t_ik, t_phys, t_reset, successes = [], [], [], [], 0
    for ep in range(args.episodes):
        t = time.perf_counter()
        plant.reset(seed=ep)
        t_reset.append(time.perf_counter() - t)
        q_cmd, _ = plant.joint_state()
        s2r.reset(r2s.tcp_position(q_cmd))
        success = False
        for _ in range(args.steps):
            t0 = time.perf_counter()
            q, _ = plant.joint_state()
            s = r2s.observation(q, plant.object_position(), plant.goal_position())
            obs39 = np.zeros(39)
            obs39[0:3], obs39[4:7], obs39[36:39] = s[0:3], s[3:6], s[9:12]
            a = policy.get_action(obs39)
            t1 = time.perf_counter()
            cmd = s2r.command(a)
            q_cmd = s2r.joint_targets(cmd, q_cmd).q
            t2 = time.perf_counter()
            plant.step(q_cmd, cmd.gripper)
            t3 = time.perf_counter()
            t_obs.append(t1 - t0)
            t_ik.append(t2 - t1)
            t_phys.append(t3 - t2)
            success = success or plant.success()
        successes += success
    total = list(np.array(t_ik) + np.array(t_phys))
    t_render = []
    plant.render(320, 240)  # first call creates the GL context
    for _ in range(args.renders):
        t = time.perf_counter()
        plant.render(320, 240)
        t_render.append(time.perf_counter() - t)
    plant.close()

    print(f"task {args.task}: {args.episodes} episodes x {args.steps} steps, expert success {successes}/{args.episodes}")
    print(f"plant construction        {build * 1e3:8.1f} ms")
    print(f"reset (placement + IK)    {_ms(t_reset)}")
    print(f"Real2Sim obs + policy     {_ms(t_obs)}")
    print(f"Sim2Real + IK             {_ms(t_ik)}")
    print(f"physics (20 x 2.5 ms)     {_ms(t_phys)}")
    print(f"control step IK + physics {_ms(total)}   -> {1.0 / np.median(total):.0f} steps/s, "
          f"{0.05 / np.median(total):.0f}x real time")
    print(f"render 320x240 (MUJOCO_GL={os.environ.get('MUJOCO_GL')}) {_ms(t_render)}")


if __name__ == "__main__":
    main()
