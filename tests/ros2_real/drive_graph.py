"""Drive the MuJoCo-in-the-loop launch on a real ROS 2 Jazzy and report what happened as JSON.

Run inside ONE ``../shared/ros2/loopback.sh`` call, with the ros2_ws overlay sourced (tests/test_ros2_real.py does):

    python tests/ros2_real/drive_graph.py --out result.json [--camera true] [--command "reach the goal" ...]

1. ``ros2 launch legion_bringup mujoco_plant.launch.py`` from the working directory (the test picks one outside the
   repository), in its own process group;
2. waits for every node of the launch, then lists topics, services and parameters with the real ros2 CLI;
3. arms the safety node (std_srvs/Trigger), then sends each command on /legion/command_text and waits for the task
   sequencer's final status; meanwhile it times every control topic (joint states, object poses, camera_info,
   observation, action, Cartesian target, joint command, joint targets to the plant);
4. ``--soak-s S``: reach after reach, each from a new episode (hold, ``/mujoco_plant/reset``, arm), until the policy
   has acted for S s: the rate and longest gap of each topic while the policy acts, the joint state -> joint target
   latency and the object-pose ages;
5. ``--restart-policy``: SIGKILL the policy node during a reach, count what the safety node forwards meanwhile,
   ``ros2 run`` it again with the launch's parameter files and time its takeover (nothing is re-armed);
6. SIGINT to the launch; its output is kept for the test to read.
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
import psutil
import rclpy
from ament_index_python.packages import get_package_share_directory
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from rosidl_runtime_py.utilities import get_message
from std_msgs.msg import Float32MultiArray, String
from std_srvs.srv import Trigger

from legion_nodes._ros import QOS
from legion_runtime import graph
from legion_runtime import messages as m

ROS2 = [sys.executable, str(Path(os.environ["LEGION_ROS2_PREFIX"]) / "install" / "bin" / "ros2")]
LAUNCH_NODES = {"speech", "task_sequencer", "embedding", "real2sim", "policy", "sim2real", "safety", "mujoco_plant"}


def cli(*args: str, timeout: float = 60) -> str:
    """Output of the real ros2 CLI (no daemon: nothing outlives the namespace)."""
    return subprocess.run([*ROS2, *args, "--no-daemon"], capture_output=True, text=True, timeout=timeout).stdout


#: The control chain's topics in order, after the joint state: real2sim, policy, sim2real, safety.
CHAIN = ("observation", "action", "joint_command", "joint_targets")
#: graph topics whose arrival times the monitor keeps (the camera by its small camera_info, not the 0.9 MB image)
TIMED = ("joint_states", "object_poses", "camera_info", "observation", "action", "cartesian_target", "joint_command",
         "joint_targets")


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


class Monitor:
    """Arrival times (wall clock, s) of the control topics, joint-state and object-pose stamps, the sequencer's
    statuses, the safety node's diagnostics, and the services the driver calls."""

    def __init__(self, node):
        self.node, self.lock = node, threading.Lock()
        self.arrivals: dict[str, list[float]] = {key: [] for key in TIMED}
        self.joint_stamps: list[float] = []  # header stamps of /lbr/joint_states, in arrival order
        self.pose_stamps: list[tuple[float, float]] = []  # (arrival, newest stamp in the message) of object_poses
        self.statuses: list[tuple[float, dict]] = []
        for key in TIMED:
            if key == "observation":
                continue  # timed by the subscription below, which keeps the values too
            topic = graph.TOPICS[key]
            node.create_subscription(get_message(topic.msgtype), topic.name, self._timer_for(key), QOS[topic.qos],
                                     raw=True)
        self.observations: list[tuple[float, list[float]]] = []
        node.create_subscription(Float32MultiArray, "/legion/observation",
                                 lambda msg: self._observation(list(msg.data)), qos_profile_sensor_data)
        node.create_subscription(String, "/legion/task_status", self._status, 50)
        self.diagnostics: dict[str, list] = {}  # name -> [(arrival, level, message, {key: value})]
        node.create_subscription(DiagnosticArray, "/diagnostics", self._diagnostics, 50)
        self.command_pub = node.create_publisher(String, "/legion/command_text", 10)
        self.clients = {key: node.create_client(Trigger, graph.SERVICES[key].name)
                        for key in ("arm", "hold", "plant_reset")}

    def _timer_for(self, key: str):
        msgtype = graph.TOPICS[key].msgtype

        def on_bytes(data: bytes) -> None:
            t = time.time()
            stamp = None
            if key in ("joint_states", "object_poses"):
                msg = m.deserialize(bytes(data), msgtype)
                stamps = [msg.header.stamp] if key == "joint_states" else [tf.header.stamp for tf in msg.transforms]
                stamp = max(s.sec + s.nanosec * 1e-9 for s in stamps) if stamps else None
            with self.lock:
                self.arrivals[key].append(t)
                if key == "joint_states":
                    self.joint_stamps.append(stamp)
                elif key == "object_poses" and stamp is not None:
                    self.pose_stamps.append((t, stamp))
        return on_bytes

    def _diagnostics(self, msg) -> None:
        with self.lock:
            for st in msg.status:
                self.diagnostics.setdefault(st.name, []).append(
                    (time.time(), int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level),
                     st.message, {kv.key: kv.value for kv in st.values}))

    def _observation(self, obs: list[float]) -> None:
        with self.lock:
            t = time.time()
            self.arrivals["observation"].append(t)
            self.observations.append((t, obs))

    def _status(self, msg) -> None:
        with self.lock:
            self.statuses.append((time.time(), json.loads(msg.data)))

    def call(self, key: str, timeout: float = 10.0) -> dict:
        client = self.clients[key]
        if not client.wait_for_service(timeout_sec=timeout):
            return {"success": False, "message": f"no {graph.SERVICES[key].name} service"}
        response = client.call(Trigger.Request())
        return {"success": response.success, "message": response.message}

    def count(self, key: str) -> int:
        with self.lock:
            return len(self.arrivals[key])

    def spans(self, t0: float, t1: float, gap_s: float = 0.5) -> list[tuple[float, float]]:
        """Stretches between t0 and t1 in which the policy acted: runs of /legion/action with no gap over gap_s
        (an attempt; the pause between a failed attempt and its retry, or between commands, splits them)."""
        with self.lock:
            times = [t for t in self.arrivals["action"] if t0 <= t <= t1]
        out = []
        for t in times:
            if out and t - out[-1][1] <= gap_s:
                out[-1][1] = t
            else:
                out.append([t, t])
        return [(a, b) for a, b in out if b > a]

    def rates(self, spans: list[tuple[float, float]], pad_s: float = 0.025) -> dict:
        """Each timed topic within ``spans``: messages, rate (Hz), gap p99 and longest gap (s).

        A span runs from the first to the last action, so a topic that arrives before the action (joint states) or
        after it (joint targets) has one message fewer inside it: counted against the span's length that biased
        every rate low by one period per span (3 % on reaches of 30 steps). Here each span is widened by ``pad_s``
        (half a control period) and a topic's rate is its intervals over the time from its own first to its last
        message in the span."""
        out = {}
        with self.lock:
            for key, times in self.arrivals.items():
                n, covered, gaps = 0, 0.0, []
                for a, b in spans:
                    inside = [t for t in times if a - pad_s <= t <= b + pad_s]
                    if len(inside) > 1:
                        n += len(inside) - 1
                        covered += inside[-1] - inside[0]
                        gaps += [y - x for x, y in zip(inside, inside[1:])]
                out[key] = {"messages": n, "rate_hz": n / covered if covered else 0.0,
                            "gap_p99_s": percentile(gaps, 99), "max_gap_s": max(gaps) if gaps else None}
        out["control_s"] = sum(b - a for a, b in spans)
        return out

    def latency(self, spans: list[tuple[float, float]]) -> dict:
        """Joint state -> joint command: each joint target the safety node sent the plant within ``spans``, from
        the stamp of the newest joint state published before it (the one its observation came from: the chain is
        event-driven and shorter than a period), s; the same for each stage of the chain (observation: real2sim,
        action: policy, joint_command: sim2real, joint_targets: safety), which shows where the time goes. Also the
        age of the newest object pose at each joint state."""
        with self.lock:
            states = list(zip(self.arrivals["joint_states"], self.joint_stamps))
            arrivals = {key: list(self.arrivals[key]) for key in CHAIN}
            poses = list(self.pose_stamps)
        stamps = np.array([s for _, s in states if s is not None])
        stages = {}
        for key in CHAIN:
            latencies = []
            for t in arrivals[key]:
                if any(a <= t <= b for a, b in spans):
                    earlier = stamps[stamps <= t]
                    if earlier.size:
                        latencies.append(t - float(earlier.max()))
            stages[key] = {"n": len(latencies), "median": percentile(latencies, 50), "p99": percentile(latencies, 99),
                           "max": max(latencies) if latencies else None}
        ages = []
        pose_arrivals = np.array([a for a, _ in poses])
        for arrival, stamp in states:
            if stamp is None or not any(a <= arrival <= b for a, b in spans):
                continue
            i = int(np.searchsorted(pose_arrivals, arrival)) - 1
            if i >= 0:
                ages.append(stamp - poses[i][1])
        return {"joint_state_to_command_s": stages["joint_targets"], "stages_s": stages,
                "object_pose_age_s": {"n": len(ages), "median": percentile(ages, 50), "p99": percentile(ages, 99),
                                      "over_0.15_s": sum(a > 0.15 for a in ages)}}

    def safety_states(self, t0: float, t1: float) -> list[str]:
        """The safety node's state words on /diagnostics between t0 and t1 (once a second)."""
        with self.lock:
            entries = self.diagnostics.get("legion: safety", [])
            return [message.split(",")[0] for t, _, message, _ in entries if t0 <= t <= t1]


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


def run_command(mon: Monitor, text: str, timeout: float, during=None) -> dict:
    """Send one command; wait for the status 'done' of that command (or 'unknown task' / 'blank command').
    ``during(elapsed_s)`` is called every 50 ms meanwhile (the restart scenario kills and restarts a node there)."""
    with mon.lock:
        seen = len(mon.statuses)
    t0 = time.time()
    mon.command_pub.publish(String(data=text))
    final = None
    while time.time() - t0 < timeout and final is None:
        time.sleep(0.05)
        if during is not None:
            during(time.time() - t0)
        with mon.lock:
            for t, status in mon.statuses[seen:]:
                if status.get("command") == text and status.get("state") in ("done", "unknown task"):
                    final = (t, status)
                    break
    t1 = final[0] if final else time.time()
    with mon.lock:
        diagnostics = {name: entries[-1][1:] for name, entries in mon.diagnostics.items()}
        observed = [obs for t, obs in mon.observations if t0 <= t <= t1]
    ee_to_goal = [float(np.linalg.norm(np.subtract(o[0:3], o[9:12]))) for o in observed]
    spans = mon.spans(t0, t1)
    return {"command": text, "t0": t0, "t1": t1, "seconds": t1 - t0, "final": final[1] if final else None,
            "spans": spans, "rates": mon.rates(spans), "diagnostics": diagnostics, "observations": len(observed),
            "ee_to_goal_m": {"first": ee_to_goal[0], "min": min(ee_to_goal), "last": ee_to_goal[-1]} if ee_to_goal else None}


def new_episode(mon: Monitor) -> dict:
    """hold -> /mujoco_plant/reset -> arm: a new placement with the arm at its start posture. The jump back is a
    joint state no arm could reach in a period, which the safety node latches as a sensor fault until the arm."""
    out = {"hold": mon.call("hold"), "reset": mon.call("plant_reset")}
    time.sleep(0.5)  # joint states of the new episode reach the safety node: the newest one is sound again
    out["arm"] = mon.call("arm")
    return out


def soak(mon: Monitor, seconds: float, timeout: float) -> dict:
    """Reach after reach, each from a new episode, until the policy has acted for ``seconds`` in all."""
    t_start, commands = time.time(), []
    while sum(c["rates"]["control_s"] for c in commands) < seconds and time.time() - t_start < 4 * seconds + 60:
        episode = new_episode(mon)
        command = run_command(mon, "reach the goal", timeout)
        commands.append({**command, "episode": episode})
    spans = [span for c in commands for span in c["spans"]]
    return {"commands": [{k: c[k] for k in ("seconds", "final", "episode", "rates")} for c in commands],
            "rates": mon.rates(spans), **mon.latency(spans), "wall_s": time.time() - t_start}


def launched_process(launch: subprocess.Popen, executable: str) -> psutil.Process | None:
    """The process of the launch running the node executable (only this launch's children: other launches may
    run on this machine in other namespaces)."""
    for child in psutil.Process(launch.pid).children(recursive=True):
        if any(Path(part).name == executable for part in child.cmdline()):
            return child
    return None


def node_cpu_s(launch: subprocess.Popen) -> dict[str, float]:
    """CPU time (user + system, s) so far of each node process of the launch, by executable name."""
    out = {}
    for child in psutil.Process(launch.pid).children(recursive=True):
        try:
            name = next((Path(p).name for p in child.cmdline() if Path(p).name.endswith("_node")), None)
            if name:
                times = child.cpu_times()
                out[name] = times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return out


def policy_executable(compose: bool) -> str:
    """The executable whose process runs the policy node: the composed chain's, or the policy's own."""
    composed = [exe for exe, members in graph.COMPOSED.items() if "policy" in members]
    return composed[0] if compose and composed else graph.NODES["policy"].executable


def restart_policy(mon: Monitor, launch: subprocess.Popen, timeout: float, compose: bool = True) -> dict:
    """Kill the policy node's process (SIGKILL) while a reach runs; the safety node forwards nothing meanwhile; start
    it again with ``ros2 run`` and the launch's parameter files; it takes over with no re-arm of anything."""
    share = Path(get_package_share_directory("legion_bringup")) / "launch" / "config"
    executable = policy_executable(compose)
    rename = [] if executable != graph.NODES["policy"].executable else ["-r", "__node:=policy"]
    out: dict = {"episode": new_episode(mon)}
    state: dict = {}

    def during(elapsed: float) -> None:
        if "killed" not in state and mon.count("action") >= state["actions_before"] + 20:  # it has acted 1 s
            process = launched_process(launch, executable)
            state["pid"] = process.pid if process else None
            if process is not None:
                process.kill()
                process.wait(10)
            state["killed"] = time.time()
            state["targets_at_kill"] = mon.count("joint_targets")
            time.sleep(0.5)  # anything in flight lands
            state["targets_after_kill"] = mon.count("joint_targets")
            state["restarted"] = subprocess.Popen(
                [*ROS2, "run", "legion_nodes", executable, "--ros-args", *rename,
                 "--params-file", str(share / "legion.yaml"), "--params-file", str(share / "lbr_fri_ros2_stack.yaml")],
                stdout=state["log"], stderr=subprocess.STDOUT, start_new_session=True)
            state["started"] = time.time()
            state["targets_at_restart"] = mon.count("joint_targets")
        if "started" in state and "first_action" not in state:
            with mon.lock:
                after = [t for t in mon.arrivals["action"] if t > state["started"]]
                targets = [t for t in mon.arrivals["joint_targets"] if t > state["started"]]
            if after and targets:
                state["first_action"], state["first_target"] = after[0], targets[0]

    state["actions_before"] = mon.count("action")
    with open(Path(os.environ.get("LEGION_DRIVE_LOG_DIR", ".")) / "restarted_policy.log", "w") as log:
        state["log"] = log
        command = run_command(mon, "reach the goal", timeout + 30, during=during)
        if "restarted" in state and "first_action" not in state:  # the attempt may have ended: a second command
            command2 = run_command(mon, "reach the goal", timeout, during=during)
            out["second_command"] = {k: command2[k] for k in ("seconds", "final")}
        process = state.get("restarted")
        if process is not None:
            os.killpg(process.pid, signal.SIGINT)
            out["restarted_exit"] = process.wait(30)
    out.update({"executable": executable, "pid": state.get("pid"), "command": {k: command[k] for k in ("seconds", "final")},
                "targets_forwarded_while_dead": state.get("targets_at_restart", 0) - state.get("targets_after_kill", 0),
                "in_flight_at_kill": state.get("targets_after_kill", 0) - state.get("targets_at_kill", 0),
                "safety_states_while_dead": mon.safety_states(state.get("killed", 0), state.get("first_action", 0)),
                "takeover_s": state["first_action"] - state["started"] if "first_action" in state else None})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--camera", default="false", choices=["true", "false"])
    parser.add_argument("--seed", default="0", help="the plant's placement seed (launch argument seed)")
    parser.add_argument("--command", action="append", default=[])
    parser.add_argument("--soak-s", type=float, default=0.0, help="then reach after reach until the policy acted so long")
    parser.add_argument("--restart-policy", action="store_true", help="then kill the policy node and ros2 run it again")
    parser.add_argument("--compose", default="true", choices=["true", "false"], help="the launch argument compose")
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--command-timeout", type=float, default=40.0)
    args = parser.parse_args()
    result: dict = {"camera": args.camera, "cwd": os.getcwd()}
    log = args.out.with_suffix(".launch.log")
    os.environ["LEGION_DRIVE_LOG_DIR"] = str(args.out.parent)
    with open(log, "w") as log_file:
        launch = subprocess.Popen([*ROS2, "launch", "legion_bringup", "mujoco_plant.launch.py", f"camera:={args.camera}",
                                   f"seed:={args.seed}", f"compose:={args.compose}"],
                                  stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    rclpy.init()
    node = rclpy.create_node("legion_test_driver")
    mon = Monitor(node)
    executor = SingleThreadedExecutor()  # lighter than the multi-threaded one: the monitor loads the machine less
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        t0 = time.time()
        expected = LAUNCH_NODES | ({"perception"} if args.camera == "true" else set())
        result["nodes"] = wait_for_nodes(node, expected, args.startup_timeout)
        result["startup_s"] = time.time() - t0
        result["topics"] = cli("topic", "list", "-t")
        result["services"] = cli("service", "list", "-t")
        result["parameters"] = {name: cli("param", "list", f"/{name}") for name in ("policy", "safety")}
        time.sleep(1.0)  # joint states reach the safety node before it is armed
        result["arm"] = mon.call("arm")
        result["commands"] = [run_command(mon, text, args.command_timeout) for text in args.command]
        if args.soak_s > 0:
            cpu0, t_soak = node_cpu_s(launch), time.time()
            result["soak"] = soak(mon, args.soak_s, args.command_timeout)
            cpu1, wall = node_cpu_s(launch), time.time() - t_soak
            result["soak"]["cpu_percent"] = {k: round(100 * (cpu1[k] - cpu0.get(k, 0.0)) / wall, 1) for k in cpu1}
        if args.restart_policy:
            result["restart"] = restart_policy(mon, launch, args.command_timeout, args.compose == "true")
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        t_int = time.time()
        os.killpg(launch.pid, signal.SIGINT)
        try:
            result["launch_exit"] = launch.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(launch.pid, signal.SIGKILL)
            result["launch_exit"] = "killed after 30 s"
        result["shutdown_s"] = time.time() - t_int
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
