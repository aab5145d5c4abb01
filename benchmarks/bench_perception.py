"""Perception throughput: tag36h11 detection + per-tag pose on 640 x 480 frames, one core.

``--source synthetic``: images of real tag36h11 codes (tests/tag_images.py: OpenCV's AprilTag dictionary warped
through a pinhole camera with the RealSense D435's intrinsics) holding ``--tags`` 6 cm tags at 0.5-1.2 m.
``--source rendered``: frames of the MuJoCo KUKA scene from its virtual RealSense (legion_sim.camera), the puck's
4 cm tag at a random visible pose 0.5-1.2 m away (tests/sim_tag_frames.py); also times the rendering.
``--source scene``: the reach and drawer-close scenes as the perception node sees them while the arm moves, searched
whole every frame and by sim2real.tag_tracking.TrackingTagDetector (windows around the tags of the last frame, the
whole frame every 5th): time per frame and the largest difference between the two poses.
Prints the median and p99 time per frame of ``TagDetector.detect`` and the frame rate (target >= 30 frames/s
on one core), the detection rate and the position error.

    MUJOCO_GL=egl .venv/bin/python benchmarks/bench_perception.py [--source rendered] [--frames 200] [--decimate 1.0]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tag_images import D435, facing_camera, render  # noqa: E402

from sim2real.perception import TagDetector, TagSpec  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--tags", type=int, default=2)
    parser.add_argument("--decimate", type=float, default=1.0, help="pupil-apriltags quad_decimate (the node's default)")
    parser.add_argument("--source", choices=("synthetic", "rendered", "scene"), default="synthetic")
    args = parser.parse_args()
    if args.source == "rendered":
        return rendered(args)
    if args.source == "scene":
        return scene(args)
    rng = np.random.default_rng(0)
    tags = {i: TagSpec(i, f"object{i}", 0.06) for i in range(args.tags)}
    detector = TagDetector(tags, threads=1, quad_decimate=args.decimate)
    frames, truths = [], []
    for f in range(args.frames):
        placed = []
        for i in range(args.tags):
            depth = rng.uniform(0.5, 1.2)
            t = np.array([(-0.2 + 0.4 * i / max(args.tags - 1, 1)) * depth, rng.uniform(-0.1, 0.1) * depth, depth])
            placed.append((i, 0.06, facing_camera(rng.uniform(-3, 3), rng.uniform(-0.5, 0.5)), t))
        frames.append(render(placed, noise=2.0, seed=f))
        truths.append({i: t for i, _, _, t in placed})
    times, errors, seen = [], [], 0
    for frame, truth in zip(frames, truths):
        t0 = time.perf_counter()
        observations = detector.detect(frame, D435)
        times.append(time.perf_counter() - t0)
        seen += len(observations)
        errors += [np.linalg.norm(o.translation - truth[o.tag_id]) for o in observations]
    times = np.array(times) * 1e3
    print(f"{args.frames} frames 640x480, {args.tags} tags of 6 cm at 0.5-1.2 m, 1 thread, quad_decimate {args.decimate}")
    print(f"  detection + pose: median {np.median(times):.2f} ms, p99 {np.percentile(times, 99):.2f} ms "
          f"-> {1e3 / np.median(times):.0f} frames/s (target >= 30)")
    print(f"  detected {seen}/{args.frames * args.tags} tags; position error median {np.median(errors) * 1e3:.1f} mm, "
          f"p95 {np.percentile(errors, 95) * 1e3:.1f} mm")


def rendered(args):
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    import cv2
    from sim_tag_frames import random_visible_tag_frame

    from legion_sim.plant import KukaPlant

    rng = np.random.default_rng(0)
    detector = TagDetector({0: TagSpec(0, "puck", 0.04)}, threads=1, quad_decimate=args.decimate)
    with KukaPlant("reach-v3", seed=0) as plant:
        intrinsics = plant.camera().intrinsics
        frames, truths, render_ms = [], [], []
        for _ in range(args.frames):
            rgb, truth, distance = random_visible_tag_frame(plant, rng)
            t0 = time.perf_counter()
            plant.camera().grab()
            render_ms.append((time.perf_counter() - t0) * 1e3)
            frames.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
            truths.append((truth, distance))
    times, errors, near, far = [], [], [], []
    for frame, (truth, distance) in zip(frames, truths):
        t0 = time.perf_counter()
        seen = detector.detect(frame, intrinsics)
        times.append((time.perf_counter() - t0) * 1e3)
        if seen:
            e = np.linalg.norm(seen[0].translation - truth[:3, 3])
            errors.append(e)
            (near if distance < 0.85 else far).append(e)
    times = np.array(times)
    print(f"{args.frames} rendered frames 640x480 (virtual D435), one 4 cm tag at 0.5-1.2 m, tilted up to 50 deg, "
          f"1 thread, quad_decimate {args.decimate}")
    print(f"  detection + pose: median {np.median(times):.2f} ms, p99 {np.percentile(times, 99):.2f} ms "
          f"-> {1e3 / np.median(times):.0f} frames/s (target >= 30); rendering median {np.median(render_ms):.1f} ms")
    print(f"  detected {len(errors)}/{args.frames} ({len(errors) / args.frames:.1%}); position error median "
          f"{np.median(errors) * 1e3:.2f} mm, p95 {np.percentile(errors, 95) * 1e3:.2f} mm "
          f"(0.5-0.85 m: {np.median(near) * 1e3:.2f} mm, 0.85-1.2 m: {np.median(far) * 1e3:.2f} mm)")


def scene(args):
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    import cv2

    from legion_runtime.sim_perception import CameraPerception
    from legion_sim.plant import KukaPlant
    from sim2real.tag_tracking import TrackingTagDetector

    detector = CameraPerception(quad_decimate=args.decimate).detector
    for task in ("reach-v3", "drawer-close-v3"):
        with KukaPlant(task, seed=1000) as plant:
            plant.reset(1000)
            q0, _ = plant.joint_state()
            frames = []
            for i in range(args.frames):  # the arm sweeps through the view and back
                sweep = 0.4 * np.sin(2 * np.pi * i / args.frames)
                plant.step(q0 + sweep * np.array([1.0, 0.5, 0.0, -0.5, 0.0, 0.3, 0.0]), 0.0)
                frames.append(cv2.cvtColor(plant.camera().grab(), cv2.COLOR_RGB2GRAY))
            intrinsics = plant.camera().intrinsics
        results = {}
        for every in (1, 5):
            tracking, times, poses = TrackingTagDetector(detector, full_frame_every=every), [], []
            for frame in frames:
                t0 = time.perf_counter()
                seen = tracking.detect(frame, intrinsics)
                times.append((time.perf_counter() - t0) * 1e3)
                poses.append({o.tag_id: o.translation for o in seen})
            results[every] = (np.array(times), poses)
        whole, tracked = results[1][1], results[5][1]
        diff = [np.linalg.norm(a[i] - b[i]) for a, b in zip(whole, tracked) for i in a if i in b]
        missing = sum(len(set(a) - set(b)) for a, b in zip(whole, tracked))
        print(f"{task}: {args.frames} frames, {np.mean([len(p) for p in whole]):.1f} tags a frame, 1 thread, "
              f"quad_decimate {args.decimate}")
        for every, (times, _) in results.items():
            name = "whole frame every frame" if every == 1 else f"windows, whole frame every {every}th"
            print(f"  {name}: median {np.median(times):.2f} ms, mean {np.mean(times):.2f} ms, "
                  f"p99 {np.percentile(times, 99):.2f} ms")
        print(f"  windows vs whole frame: largest position difference {max(diff) * 1e3:.2f} mm, "
              f"{missing} detections missing")


if __name__ == "__main__":
    main()
