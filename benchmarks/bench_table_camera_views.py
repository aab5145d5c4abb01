"""Where to put the table's RealSense(s): tag visibility by ray casting along recorded reference runs.

Issue 17 item 4 needs tags on every object set of the "clean the table" scene and a camera that sees the tag of the
object being worked on at every control step of its subtask (the loop holds on a stale object, so a tag the arm hides
stalls the subtask) and every tag and goal marker when the command is given. This benchmark measures that for
candidate camera poses before any tag is glued on:

1. Record: the reference controllers run "clean the table" and "make the coffee" (random orders, seeds 100+i) through
   the deployed chain on :class:`legion_sim.table_scene.TablePlant`, perception from the simulator; the joint state
   and the active subtask are kept at every step.
2. Replay each recorded state kinematically and test every candidate tag mount of the active subtask's object
   (:data:`MOUNTS`: flat tag36h11 plates on the faces the set offers) from each camera: all four corners in the image,
   the tag's normal within :data:`MAX_VIEW_ANGLE_DEG` of the line of sight, every tag edge at least ``--min-px``
   pixels (pupil-apriltags' pose error on rendered 3 cm tags grows from 1-4 mm at 20 px to 14-25 mm at 14-17 px,
   measured once with legion_sim.camera's tags, not by this benchmark), and no rendered geom (groups 0-2) on the rays to the tag's centre and
   inset corners (``mujoco.mj_ray``).
3. A set counts as seen at a step when any of its mounts is seen by any camera of the configuration.

The candidate mounts are not in the scene (the rays would hit them); the tags the scene carries are the chosen ones
(``legion_sim.camera.TAG_MOUNTS["clean-the-table"]``). Prints, per configuration, the fraction of its subtask's steps each set is seen, and what is seen at the command.

    MUJOCO_GL=egl .venv/bin/python benchmarks/bench_table_camera_views.py [--trials 2] [--stride 4] [--min-px 18]
        [--json benchmarks/results/table_camera_views.json]
"""
from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from legion_language.tasks import load_task_library
from legion_runtime.long_horizon import run_trial
from legion_runtime.main_job import make_chain
from legion_runtime.runner import ControlLoop
from legion_sim.camera import CAMERA_LOOK_AT_SIM, CAMERA_POS_SIM, D435_COLOR_640x480, D435_COLOR_1280x720
from legion_sim.reference import ReferenceController
from legion_sim.table_scene import TABLE_REALSENSES, TablePlant
from sim2real.perception import Intrinsics
#: A tag seen more obliquely than this (normal vs line of sight) is not counted, deg.
MAX_VIEW_ANGLE_DEG = 65.0
#: Rendered geom groups (MuJoCo's default ``MjvOption.geomgroup``): collision-only geoms (3-5) do not hide a tag.
_RENDERED = np.array([1, 1, 1, 0, 0, 0], np.uint8)
_X, _Y, _Z = np.eye(3)


@dataclass(frozen=True)
class Mount:
    """A candidate tag: the body that carries it, its centre and outward normal in the body frame, edge (m)."""

    name: str
    body: str
    pos: tuple[float, float, float]
    normal: np.ndarray
    size_m: float


def _puck(prefix: str) -> list[Mount]:
    # Meta-World's puck: a cylinder of radius 2 cm, 4 cm tall; the 2F-85 closes on it along the world y axis
    body = prefix + "obj"
    return [Mount("top", body, (0.0, 0.0, 0.0205), _Z, 0.03)] + [
        Mount(f"side {n}", body, tuple(0.0205 * v), v, 0.03) for n, v in (("+x", _X), ("-x", -_X), ("+y", _Y), ("-y", -_Y))]


#: Candidate tags per subtask, on the faces each object set offers (geometry from the Meta-World XMLs).
MOUNTS: dict[str, list[Mount]] = {
    "push-v3": _puck("push/"),
    "pick-place-v3": _puck("pick-place/"),
    # drawer_link: outer side walls at local x +-0.1 (10 cm tall), near the front and in the middle
    "drawer-close-v3": [Mount(f"wall {n} y{y:+.2f}", "drawer-close/drawer_link", (s * 0.101, y, 0.01), s * _X, 0.05)
                        for n, s in (("+x", 1), ("-x", -1)) for y in (-0.05, 0.0)],
    # the button's cap (8.4 cm across; the button body's local -y is world up), off its centre where the fingertips
    # press, in eight directions
    "button-press-topdown-v3": [Mount(f"cap {a}", "button-press-topdown/button",
                                      (0.018 * np.cos(np.radians(a)), -0.2015, 0.018 * np.sin(np.radians(a))), -_Y, 0.03)
                                for a in range(0, 360, 45)],
    # the plug: an 8 cm cylinder (x -0.01..0.06 of its body) ending in an 8 cm ball (tip at x 0.10)
    "peg-unplug-side-v3": [Mount("ball tip +x", "peg-unplug-side/plug", (0.1005, 0.0, 0.0), _X, 0.03),
                           Mount("top", "peg-unplug-side/plug", (0.045, 0.0, 0.0405), _Z, 0.03),
                           Mount("side +y", "peg-unplug-side/plug", (0.045, 0.0405, 0.0), _Y, 0.03),
                           Mount("side -y", "peg-unplug-side/plug", (0.045, -0.0405, 0.0), -_Y, 0.03)],
    # the sliding sash: its glass (15 x 26 cm) facing the robot (-y) or away (+y)
    "window-close-v3": [Mount("glass -y", "window-close/windowb_a", (-0.104, -0.0265, 0.05), -_Y, 0.06),
                        Mount("glass +y", "window-close/windowb_a", (-0.104, 0.0015, 0.05), _Y, 0.06)],
    # the faucet lever (along its body's -y) and its hub
    "faucet-open-v3": [Mount("lever top", "faucet-open/faucet_link2", (0.0, -0.10, 0.0185), _Z, 0.03),
                       Mount("hub top", "faucet-open/faucet_link2", (0.0, 0.0, 0.033), _Z, 0.03)],
}
#: Goal markers (mocap bodies; their tag can face the camera, so only the line of sight to the centre counts).
MARKERS = ("push_goal", "place_goal")


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at ``pos`` (sim frame, m) looking at ``look_at``, image x level."""

    pos: tuple[float, float, float]
    look_at: tuple[float, float, float]
    intrinsics: Intrinsics = D435_COLOR_640x480

    def optical_axes(self) -> np.ndarray:
        """(3, 3) columns: the optical frame's x (right), y (down), z (forward) in the sim frame."""
        forward = np.subtract(self.look_at, self.pos) / np.linalg.norm(np.subtract(self.look_at, self.pos))
        right = np.cross(forward, _Z)
        right /= np.linalg.norm(right)
        return np.c_[right, np.cross(forward, right), forward]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """((N, 2) pixels, (N,) depths, m) of (N, 3) sim-frame points."""
        k, pc = self.intrinsics, (points - np.asarray(self.pos)) @ self.optical_axes()
        return np.c_[k.fx * pc[:, 0] / pc[:, 2] + k.cx, k.fy * pc[:, 1] / pc[:, 2] + k.cy], pc[:, 2]


#: Configurations measured: the reach/drawer scenes' camera, the best single poses of a search over 359 poses
#: (azimuth every 30 deg, elevation 30-75 deg, 0.5-0.9 m from the table's centre or the centre of either half), and
#: the best pair of that search (the table scene's two cameras, TABLE_REALSENSES), at the D435's 640 x 480 and
#: 1280 x 720 colour streams.
_RIGHT_FAR, _LEFT_NEAR = TABLE_REALSENSES["table_camera_right"], TABLE_REALSENSES["table_camera_left"]
CONFIGURATIONS: dict[str, tuple[Camera, ...]] = {
    "reach/drawer camera, 640x480": (Camera(CAMERA_POS_SIM, CAMERA_LOOK_AT_SIM),),
    "right-far, 640x480": (Camera(*_RIGHT_FAR),),
    "right-far, 1280x720": (Camera(*_RIGHT_FAR, D435_COLOR_1280x720),),
    "right-far + left-near, 640x480": (Camera(*_RIGHT_FAR), Camera(*_LEFT_NEAR)),
    "right-far + left-near, 1280x720": (Camera(*_RIGHT_FAR, D435_COLOR_1280x720),
                                        Camera(*_LEFT_NEAR, D435_COLOR_1280x720)),
}


def _occluded(model, data, origin: np.ndarray, point: np.ndarray) -> bool:
    ray = point - origin
    dist = np.linalg.norm(ray)
    hit = mujoco.mj_ray(model, data, origin, ray / dist, _RENDERED, 1, -1, np.zeros(1, np.int32))
    return 0.0 <= hit < dist - 0.003


def tag_seen(model, data, camera: Camera, mount: Mount, min_px: float) -> bool:
    """True when ``camera`` sees the whole tag of ``mount`` in the current state (see the module docstring)."""
    body = model.body(mount.body).id
    rot = data.xmat[body].reshape(3, 3)
    centre, normal = data.xpos[body] + rot @ np.asarray(mount.pos), rot @ mount.normal
    to_camera = np.asarray(camera.pos) - centre
    if normal @ to_camera < np.cos(np.radians(MAX_VIEW_ANGLE_DEG)) * np.linalg.norm(to_camera):
        return False
    a = np.cross(normal, _Z if abs(normal[2]) < 0.9 else _X)
    a /= np.linalg.norm(a)
    b, h = np.cross(normal, a), mount.size_m / 2
    corners = np.array([centre + h * (sa * a + sb * b) for sa, sb in ((1, 1), (1, -1), (-1, -1), (-1, 1))])
    uv, depth = camera.project(np.r_[corners, centre[None]])
    k = camera.intrinsics
    if np.any(depth <= 0) or np.any(uv < 5) or np.any(uv[:, 0] > k.width - 5) or np.any(uv[:, 1] > k.height - 5):
        return False
    if np.linalg.norm(uv[:4] - np.roll(uv[:4], 1, axis=0), axis=1).min() < min_px:
        return False
    origin = np.asarray(camera.pos, dtype=np.float64)
    return not any(_occluded(model, data, origin, p + 0.0015 * normal)
                   for p in np.r_[0.85 * corners + 0.15 * centre, centre[None]])


def marker_seen(model, data, camera: Camera, name: str) -> bool:
    """True when the centre of goal marker ``name`` is in the image (20 px margin) and in sight of ``camera``."""
    centre = data.mocap_pos[model.body_mocapid[model.body(name).id]]
    uv, depth = camera.project(centre[None])
    k = camera.intrinsics
    return bool(depth[0] > 0 and 20 < uv[0, 0] < k.width - 20 and 20 < uv[0, 1] < k.height - 20
                and not _occluded(model, data, np.asarray(camera.pos, dtype=np.float64), centre))


def record(plant: TablePlant, trials: int) -> list[dict]:
    """Reference runs of both commands: [{command, seed, steps: [(active subtask env id, qpos copy)]}]."""
    agent, library, runs = ReferenceController(), load_task_library(), []
    for command in ("clean the table", "make the coffee"):
        for seed in range(100, 100 + trials):
            plant.reset(seed)
            loop = ControlLoop(agent, *make_chain())
            steps: list = []
            on_step = lambda _k: steps.append((plant.task, plant.data.qpos.copy())) if loop.policy is agent else None
            result = run_trial(command, plant=plant, loop=loop, library=library, controller=agent,
                               embed=lambda _t: np.zeros(1, np.float32), order="random", rng=random.Random(seed),
                               on_step=on_step, workspace_offsets=plant.workspace_offsets())
            print(f"recorded {command!r} seed {seed}: {'success' if result.report['success'] else 'failed'}, "
                  f"{len(steps)} subtask steps")
            runs.append({"command": command, "seed": seed, "steps": steps})
    return runs


def evaluate(plant: TablePlant, runs: list[dict], cameras: tuple[Camera, ...], stride: int, min_px: float) -> dict:
    """{"during": {env id: fraction of its subtask's steps its object is seen}, "at_command": {set or marker:
    fraction of runs it is seen when the command is given}}."""
    m, d = plant.model, plant.data
    seen_steps = {t: [0, 0] for t in MOUNTS}
    at_command = {k: 0 for k in [*MOUNTS, *MARKERS]}
    for run in runs:
        plant.reset(run["seed"])
        for t, mounts in MOUNTS.items():
            at_command[t] += any(tag_seen(m, d, c, mt, min_px) for c in cameras for mt in mounts)
        for k in MARKERS:
            at_command[k] += any(marker_seen(m, d, c, k) for c in cameras)
        for task, qpos in run["steps"][::stride]:
            d.qpos[:] = qpos
            mujoco.mj_kinematics(m, d)
            seen_steps[task][1] += 1
            seen_steps[task][0] += any(tag_seen(m, d, c, mt, min_px) for c in cameras for mt in MOUNTS[task])
    return {"during": {t: round(s / max(n, 1), 3) for t, (s, n) in seen_steps.items()},
            "at_command": {k: round(v / len(runs), 3) for k, v in at_command.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2, help="recorded runs per command")
    parser.add_argument("--stride", type=int, default=4, help="test every n-th recorded step")
    parser.add_argument("--min-px", type=float, default=18.0, help="shortest tag edge a detection needs, px")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    t0 = time.perf_counter()
    plant = TablePlant(seed=0)
    runs = record(plant, args.trials)
    results = {}
    names = [t.removesuffix("-v3")[:12] for t in MOUNTS]
    print(f"\nfraction of the subtask's steps its object's tag is seen (min edge {args.min_px:g} px); 'cmd': all "
          "seven sets and both markers seen when the command is given (fraction of runs)")
    print(f"{'configuration':34s}" + "".join(f"{n:>13s}" for n in names) + f"{'min':>7s}{'cmd':>6s}")
    for name, cameras in CONFIGURATIONS.items():
        r = evaluate(plant, runs, cameras, args.stride, args.min_px)
        r["min_during"], r["all_at_command"] = min(r["during"].values()), min(r["at_command"].values())
        r["cameras"] = [{"pos_sim": c.pos, "look_at_sim": c.look_at, "width": c.intrinsics.width,
                         "height": c.intrinsics.height, "fx": c.intrinsics.fx} for c in cameras]
        results[name] = r
        print(f"{name:34s}" + "".join(f"{r['during'][t]:13.2f}" for t in MOUNTS)
              + f"{r['min_during']:7.2f}{r['all_at_command']:6.2f}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"trials_per_command": args.trials, "stride": args.stride,
                                         "min_px": args.min_px, "max_view_angle_deg": MAX_VIEW_ANGLE_DEG,
                                         "configurations": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
