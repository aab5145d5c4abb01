"""Grasp benchmark of the simulated 2F-85: lift the pick-place puck 10 cm and hold it 2 s, through the joint chain.

Per gripper model (``SceneConfig.gripper``): 50 randomised trials (pick-place-v3 placements, seeds 2000+i) of
:func:`legion_sim.reference.grasp_lift_test` run by :class:`legion_runtime.runner.ControlLoop` (Sim2Real, safety
filter, IK, joint targets) on :class:`legion_sim.plant.KukaPlant`. A trial succeeds when, at the end of the hold, the
puck is at least 9 cm above where it lay and within 3 cm of the TCP. Also printed: the free closing time (open to
95 % closed, no object), the grip force on the puck (sum of the pad contacts' normal forces, mean over the hold;
median over all trials) and the puck's slip in the fingers over the hold (median over the trials that held). Datasheet (Robotiq 2F-85): stroke 85 mm, grip force 20-235 N,
closing speed 20-150 mm/s.

    MUJOCO_GL=egl .venv/bin/python benchmarks/bench_grasp.py [--trials 50] [--grippers robosuite,menagerie]
        [--json benchmarks/results/grasp.json]
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import mujoco
import numpy as np

from legion_runtime.main_job import make_chain
from legion_runtime.runner import ControlLoop
from legion_sim.kuka_scene import GRIPPER_CLOSED_RAD, GRIPPER_MODELS, SceneConfig
from legion_sim.plant import KukaPlant
from legion_sim.reference import ReferenceController, grasp_lift_test

HOLD_S = 2.0


def pad_force_n(plant: KukaPlant, body: int) -> float:
    """Sum of the normal forces between the fingertip pads and ``body``, N."""
    total, force = 0.0, np.zeros(6)
    pads = set(plant.gripper_pad_geoms)
    for i in range(plant.data.ncon):
        c = plant.data.contact[i]
        bodies = {plant.model.geom_bodyid[c.geom1], plant.model.geom_bodyid[c.geom2]}
        if body in bodies and (c.geom1 in pads or c.geom2 in pads):
            mujoco.mj_contactForce(plant.model, plant.data, i, force)
            total += abs(force[0])
    return total


def closing_time_s(plant: KukaPlant) -> float:
    """Open to 95 % of the closed knuckle angle with nothing between the fingers, s."""
    plant.reset(0)
    q, _ = plant.joint_state()
    plant.step(q, 1.0)
    for k in range(1, 100):
        if plant.gripper_position() >= 0.95 * GRIPPER_CLOSED_RAD:
            return k * plant.dt
        plant.step(q, 1.0)
    return float("nan")


def measure(gripper: str, trials: int) -> dict:
    plant = KukaPlant("pick-place-v3", seed=0, config=SceneConfig(gripper=gripper))
    closing = closing_time_s(plant)
    loop = ControlLoop(None, *make_chain())
    puck = plant.model.body("obj").id
    rows, t0 = [], time.perf_counter()
    for i in range(trials):
        plant.reset(2000 + i)
        start = plant.object_position()
        controller = ReferenceController("grasp-lift", phases=grasp_lift_test(0.10, HOLD_S))
        loop.policy = controller
        forces, offsets = [], []

        def on_step(_):
            if controller.phase == "lift and hold":
                forces.append(pad_force_n(plant, puck))
                offsets.append(plant.object_position() - plant.tcp_position())

        loop.run_subtask(plant, "grasp-lift", np.zeros(1, np.float32), 300, on_step=on_step,
                         until=lambda tcp, seen: controller.phase == "done")
        hold = int(round(HOLD_S / plant.dt))  # the 2 s at the lift height
        forces, offsets = forces[-hold:], offsets[-hold:]
        end = plant.object_position()
        lifted = end[2] - start[2]
        ok = bool(lifted >= 0.09 and np.linalg.norm(end - plant.tcp_position()) <= 0.03)
        slip = float(np.linalg.norm(offsets[-1] - offsets[0])) if offsets else float("nan")
        rows.append({"seed": 2000 + i, "success": ok, "lifted_m": round(float(lifted), 4),
                     "grip_force_n": round(float(np.mean(forces)), 1) if forces else None, "slip_m": round(slip, 4)})
    plant.close()
    held = [r for r in rows if r["success"]]
    forces_all = [r["grip_force_n"] for r in rows if r["grip_force_n"] is not None]  # held or not
    return {"gripper": gripper, "trials": trials, "success": len(held), "closing_time_s": round(closing, 3),
            "grip_force_n_median": float(np.median(forces_all)) if forces_all else None,
            "slip_mm_median": round(1e3 * float(np.median([r["slip_m"] for r in held])), 2) if held else None,
            "wall_s": round(time.perf_counter() - t0, 1), "trials_detail": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--grippers", default=",".join(GRIPPER_MODELS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Constant")
    results = []
    for gripper in args.grippers.split(","):
        r = measure(gripper, args.trials)
        results.append(r)
        print(f"{gripper:10s} held {r['success']:2d}/{r['trials']}  closing {r['closing_time_s']:.2f} s  "
              f"grip force median {r['grip_force_n_median']} N  slip median {r['slip_mm_median']} mm  "
              f"({r['wall_s']} s)", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
