"""Drive the MuJoCo-in-the-loop launch on a real ROS 2 Jazzy and report what happened as JSON.

Run inside ONE ``../shared/ros2/loopback.sh`` call, with the ros2_ws overlay sourced (tests/test_ros2_real.py does):

    python tests/ros2_real/drive_graph.py --out result.json [--camera true] [--command "reach the goal" ...]

1. ``ros2 launch legion_bringup mujoco_plant.launch.py`` from the working directory (the test picks one outside the
   repository), in its own process group;
2. waits for every node of the launch, then lists topics, services and parameters with the real ros2 CLI;
3. arms the safety node (std_srvs/Trigger), then sends each command on /legion/command_text and waits for the task
   sequencer's final status; meanwhile it times /legion/action and the joint commands to the plant;
4. SIGINT to the launch; its output is kept for the test to read.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from diagnostic_msgs.msg import DiagnosticArray
from std_msgs.msg import Float32MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

ROS2 = [sys.executable, str(Path(os.environ["LEGION_ROS2_PREFIX"]) / "install" / "bin" / "ros2")]
LAUNCH_NODES = {"speech", "task_sequencer", "embedding", "real2sim", "policy", "sim2real", "safety", "mujoco_plant"}


def cli(*args: str, timeout: float = 60) -> str:
    """Output of the real ros2 CLI (no daemon: nothing outlives the namespace)."""
    return subprocess.run([*ROS2, *args, "--no-daemon"], capture_output=True, text=True, timeout=timeout).stdout


class Monitor:
    """Arrival times of the control topics, the sequencer's statuses, and the safety services."""

    def __init__(self, node):
        self.node, self.lock = node, threading.Lock()
        self.arrivals: dict[str, list[float]] = {"action": [], "joint_command": []}
        self.statuses: list[tuple[float, dict]] = []
        node.create_subscription(Float32MultiArray, "/legion/action", lambda _m: self._at("action"),
                                 qos_profile_sensor_data)
        node.create_subscription(JointTrajectory, "/lbr/joint_trajectory_controller/joint_trajectory",
                                 lambda _m: self._at("joint_command"), 50)
        node.create_subscription(String, "/legion/task_status", self._status, 50)
        self.observations: list[tuple[float, list[float]]] = []
        node.create_subscription(Float32MultiArray, "/legion/observation",
                                 lambda msg: self._observation(list(msg.data)), qos_profile_sensor_data)
        self.diagnostics: dict[str, list] = {}  # name -> [(level, message, {key: value})], in arrival order
        node.create_subscription(DiagnosticArray, "/diagnostics", self._diagnostics, 50)
        self.command_pub = node.create_publisher(String, "/legion/command_text", 10)
        self.arm = node.create_client(Trigger, "/legion/safety/arm")

    def _at(self, key: str) -> None:
        with self.lock:
            self.arrivals[key].append(time.monotonic())

    def _diagnostics(self, msg) -> None:
        with self.lock:
            for st in msg.status:
                self.diagnostics.setdefault(st.name, []).append(
                    (int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level), st.message,
                     {kv.key: kv.value for kv in st.values}))

    def _observation(self, obs: list[float]) -> None:
        with self.lock:
            self.observations.append((time.monotonic(), obs))

    def _status(self, msg) -> None:
        with self.lock:
            self.statuses.append((time.monotonic(), json.loads(msg.data)))

    def rates(self, t0: float, t1: float) -> dict:
        """Messages per second and the longest gap, s, of each control topic between t0 and t1 (monotonic)."""
        out = {}
        with self.lock:
            for key, times in self.arrivals.items():
                inside = [t for t in times if t0 <= t <= t1]
                gaps = sorted(b - a for a, b in zip(inside, inside[1:]))
                # while it flows: from its first to its last message (retries and idle time between are not a rate)
                flowing = (len(inside) - 1) / (inside[-1] - inside[0]) if len(inside) > 1 else 0.0
                out[key] = {"messages": len(inside), "rate_hz": flowing,
                            "gap_p99_s": gaps[int(0.99 * (len(gaps) - 1))] if gaps else None,
                            "max_gap_s": gaps[-1] if gaps else None}
        return out


def wait_for_nodes(node, expected: set[str], timeout: float) -> list[str]:
    """Names of the graph's nodes once every expected one is up (or the timeout)."""
    deadline = time.monotonic() + timeout
    names: set[str] = set()
    while time.monotonic() < deadline:
        names = set(node.get_node_names())
        if expected <= names:
            break
        time.sleep(0.5)
    return sorted(names)


def run_command(mon: Monitor, text: str, timeout: float) -> dict:
    """Send one command; wait for the status 'done' of that command (or 'unknown task' / 'blank command')."""
    with mon.lock:
        seen = len(mon.statuses)
    t0 = time.monotonic()
    mon.command_pub.publish(String(data=text))
    final = None
    while time.monotonic() - t0 < timeout and final is None:
        time.sleep(0.05)
        with mon.lock:
            for t, status in mon.statuses[seen:]:
                if status.get("command") == text and status.get("state") in ("done", "unknown task"):
                    final = (t, status)
                    break
    t1 = final[0] if final else time.monotonic()
    with mon.lock:
        diagnostics = {name: entries[-1] for name, entries in mon.diagnostics.items()}
        observed = [obs for t, obs in mon.observations if t0 <= t <= t1]
    ee_to_goal = [float(np.linalg.norm(np.subtract(o[0:3], o[9:12]))) for o in observed]
    return {"command": text, "seconds": t1 - t0, "final": final[1] if final else None, "rates": mon.rates(t0, t1),
            "diagnostics": diagnostics, "observations": len(observed),
            "ee_to_goal_m": {"first": ee_to_goal[0], "min": min(ee_to_goal), "last": ee_to_goal[-1]} if ee_to_goal else None,
            "last_observation": observed[-1] if observed else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--camera", default="false", choices=["true", "false"])
    parser.add_argument("--seed", default="0", help="the plant's placement seed (launch argument seed)")
    parser.add_argument("--command", action="append", default=[])
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--command-timeout", type=float, default=40.0)
    args = parser.parse_args()
    result: dict = {"camera": args.camera, "cwd": os.getcwd()}
    log = args.out.with_suffix(".launch.log")
    with open(log, "w") as log_file:
        launch = subprocess.Popen([*ROS2, "launch", "legion_bringup", "mujoco_plant.launch.py", f"camera:={args.camera}",
                                   f"seed:={args.seed}"],
                                  stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    rclpy.init()
    node = rclpy.create_node("legion_test_driver")
    mon = Monitor(node)
    executor = MultiThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        t0 = time.monotonic()
        expected = LAUNCH_NODES | ({"perception"} if args.camera == "true" else set())
        result["nodes"] = wait_for_nodes(node, expected, args.startup_timeout)
        result["startup_s"] = time.monotonic() - t0
        result["topics"] = cli("topic", "list", "-t")
        result["services"] = cli("service", "list", "-t")
        result["parameters"] = {name: cli("param", "list", f"/{name}") for name in ("policy", "safety")}
        mon.arm.wait_for_service(timeout_sec=10)
        time.sleep(1.0)  # joint states reach the safety node before it is armed
        response = mon.arm.call(Trigger.Request())
        result["arm"] = {"success": response.success, "message": response.message}
        result["commands"] = [run_command(mon, text, args.command_timeout) for text in args.command]
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        t_int = time.monotonic()
        os.killpg(launch.pid, signal.SIGINT)
        try:
            result["launch_exit"] = launch.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(launch.pid, signal.SIGKILL)
            result["launch_exit"] = "killed after 30 s"
        result["shutdown_s"] = time.monotonic() - t_int
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
