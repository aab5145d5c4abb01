"""The MuJoCo-in-the-loop graph over real DDS: rate of every control topic and joint state -> joint target latency.

Target (issue 16): /legion/action and the joint targets at 20 Hz +- 5 % with the camera on and off over 60 s of
control, and the joint state -> joint target latency through real2sim, policy, sim2real and safety at p99 <= 15 ms.
The latency is measured from the stamp of a joint state (the plant stamps it as it publishes) to the arrival of the
safety node's joint target at an rclpy monitor node, per target, over every period in which the policy acts.

Builds ros2_ws with colcon into a temporary folder, then for each camera setting runs tests/ros2_real/drive_graph.py
(``ros2 launch legion_bringup mujoco_plant.launch.py``, arm, ``--soak-s`` of reaches from new placements) inside one
``../shared/ros2/loopback.sh`` namespace, and prints one table. Writes the JSON to benchmarks/results/ros2_graph.json.

Usage: .venv/bin/python benchmarks/bench_ros2_graph.py [--soak-s 60] [--prefix /opt/legion/ros2-jazzy]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from ros2_real.loopback import colcon_build, in_namespace  # noqa: E402

TOPICS = ("joint_states", "object_poses", "camera_info", "observation", "action", "cartesian_target",
          "joint_command", "joint_targets")


def ms(value) -> str:
    return "-" if value is None else f"{1e3 * value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soak-s", type=float, default=60.0)
    parser.add_argument("--prefix", default="/opt/legion/ros2-jazzy", help="ROS 2 built by ../shared/ros2/build.sh")
    parser.add_argument("--cameras", default="false,true", help="camera settings to run, comma-separated")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ros2_graph.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="legion-bench-ros2-"))
    build = colcon_build(work, 600, args.prefix)
    if build.returncode != 0:
        sys.exit(f"colcon build failed:\n{build.stdout[-2000:]}{build.stderr[-2000:]}")
    results = {}
    cameras = args.cameras.split(",")
    for camera in cameras:
        out = work / f"camera_{camera}.json"
        run = in_namespace(f"set +u; source {work}/install/setup.bash; set -u; export MUJOCO_GL=egl "
                                        f"LEGION_ROS2_PREFIX={args.prefix}; cd {work} && {sys.executable} "
                                        f"{ROOT / 'tests/ros2_real/drive_graph.py'} --out {out} --camera {camera} "
                                        f"--seed 1 --soak-s {args.soak_s}", 60 + 6 * args.soak_s, args.prefix)
        if not out.is_file():
            sys.exit(f"drive_graph.py wrote nothing:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
        soak = json.loads(out.read_text())["soak"]
        results[f"camera_{camera}"] = {k: soak[k] for k in ("rates", "joint_state_to_command_s", "object_pose_age_s",
                                                            "wall_s", "cpu_percent", "stages_s")}
        results[f"camera_{camera}"]["reaches"] = [c["final"]["success"] if c["final"] else None
                                                  for c in soak["commands"]]
    args.out.write_text(json.dumps(results, indent=1))
    print(f"{'topic':18s}" + "".join(f"{'camera ' + c:>34s}" for c in cameras))
    print(f"{'':18s}" + f"{'Hz':>10s}{'gap p99 ms':>12s}{'max gap ms':>12s}" * len(cameras))
    for topic in TOPICS:
        row = ""
        for camera in cameras:
            rate = results[f"camera_{camera}"]["rates"][topic]
            row += f"{rate['rate_hz']:10.2f}{ms(rate['gap_p99_s']):>12s}{ms(rate['max_gap_s']):>12s}"
        print(f"{topic:18s}{row}")
    for camera in cameras:
        r = results[f"camera_{camera}"]
        lat, age = r["joint_state_to_command_s"], r["object_pose_age_s"]
        print(f"camera {camera}: {r['rates']['control_s']:.1f} s of control in {len(r['reaches'])} reaches "
              f"({sum(bool(x) for x in r['reaches'])} succeeded); joint state -> joint target (n={lat['n']}): "
              f"median {ms(lat['median'])} ms, p99 {ms(lat['p99'])} ms, max {ms(lat['max'])} ms; object pose age: "
              f"median {ms(age['median'])} ms, p99 {ms(age['p99'])} ms, {age['over_0.15_s']} of {age['n']} over 150 ms")
        print(f"camera {camera}: joint state -> each stage, median / p99 ms: " + ", ".join(
            f"{k} {ms(v['median'])} / {ms(v['p99'])}" for k, v in r["stages_s"].items()))
        print(f"camera {camera}: CPU % of one core per node: "
              + ", ".join(f"{k.removesuffix('_node')} {v:.0f}" for k, v in sorted(r["cpu_percent"].items())))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
