"""The ROS 2 graph on a real ROS 2 Jazzy: colcon build, `ros2 launch` from outside the repository, the graph's
interface, arming and three commands in a row, camera off and on, and a clean SIGINT (issue 16).

Runs when a ROS 2 Jazzy is available: ``LEGION_ROS2_PREFIX`` (set by scripts/test.sh after
``../shared/ros2/build.sh``) or a sourced one (``ROS_DISTRO``); otherwise the module is skipped with the reason. Every
DDS process runs inside one ``../shared/ros2/loopback.sh`` call (a network namespace with loopback only).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from legion_runtime import graph

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = ROOT.parent / "shared" / "ros2" / "loopback.sh"
PREFIX = os.environ.get("LEGION_ROS2_PREFIX", "")
if not (PREFIX and (Path(PREFIX) / "install" / "setup.bash").is_file() and LOOPBACK.is_file()):
    pytest.skip("no ROS 2 Jazzy here: set LEGION_ROS2_PREFIX to a prefix built by ../shared/ros2/build.sh "
                "(scripts/test.sh does when ../shared/ros2 exists)", allow_module_level=True)

LAUNCHED = ("speech", "task_sequencer", "embedding", "real2sim", "policy", "sim2real", "safety", "mujoco_plant")
COMMANDS = ["reach the goal", "close the drawer", "reach the goal"]
#: per attempt: 150 steps at 20 Hz + the sequencer's 1 s margin; a failed subtask is tried twice
ATTEMPT_LIMIT_S = graph.MAX_STEPS_PER_SUBTASK / graph.CONTROL_RATE_HZ + 1.0


def in_namespace(script: str, timeout: float) -> subprocess.CompletedProcess:
    """Run a bash script with ROS 2 sourced inside one loopback-only network namespace."""
    return subprocess.run(["bash", str(LOOPBACK), PREFIX, "bash", "-c", script], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """ros2_ws built by colcon with this project's interpreter, into a folder outside the repository."""
    out = tmp_path_factory.mktemp("ros2_ws")
    proc = in_namespace(f"cd {ROOT / 'ros2_ws'} && {sys.executable} -m colcon --log-base {out}/log build "
                        f"--build-base {out}/build --install-base {out}/install", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 packages finished" in proc.stdout, proc.stdout[-2000:]
    return out / "install"


def drive(workspace: Path, tmp_path: Path, camera: str, seed: int = 1) -> tuple[dict, str]:
    """tests/ros2_real/drive_graph.py on the launch, run from ``tmp_path`` (outside the repository)."""
    out = tmp_path / f"camera_{camera}.json"
    commands = " ".join(f"--command '{c}'" for c in COMMANDS)
    proc = in_namespace(
        f"set +u; source {workspace}/setup.bash; set -u; export MUJOCO_GL=egl LEGION_ROS2_PREFIX={PREFIX}; "
        f"cd {tmp_path} && {sys.executable} {ROOT / 'tests/ros2_real/drive_graph.py'} --out {out} "
        f"--camera {camera} --seed {seed} {commands}", timeout=400)
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), out.with_suffix(".launch.log").read_text()


def expected_topics(nodes) -> set[str]:
    keys = {k for n in nodes for k in (*graph.NODES[n].subscribes, *graph.NODES[n].publishes)}
    return {f"{graph.TOPICS[k].name} [{graph.TOPICS[k].msgtype}]" for k in keys} | {
        "/parameter_events [rcl_interfaces/msg/ParameterEvent]", "/rosout [rcl_interfaces/msg/Log]"}


def check_run(result: dict, log: str, nodes, *, reach_succeeds: bool, rates_at_20_hz: bool) -> None:
    assert set(nodes) <= set(result["nodes"]), result["nodes"]
    assert result["cwd"] != str(ROOT) and not result["cwd"].startswith(str(ROOT) + "/")
    # the interface the real ros2 CLI sees is the graph description's
    assert set(result["topics"].split("\n")) - {""} == expected_topics(nodes)
    services = set(result["services"].split("\n"))
    assert {f"{s.name} [{s.srvtype}]" for s in graph.SERVICES.values()} <= services
    for name in ("policy", "safety"):
        listed = {line.strip() for line in result["parameters"][name].splitlines() if not line.endswith(":")}
        assert set(graph.node_parameters(graph.NODES[name])) <= listed, (name, listed)
    assert result["arm"]["success"], result["arm"]
    # three commands on the same launch, each ending with a status that says success or failure and why
    first, drawer, again = result["commands"]
    for c in result["commands"]:
        assert c["final"] is not None and c["final"]["state"] == "done", c
        assert all(s["why"] for s in c["final"]["subtasks"]), c["final"]
        attempts = len(c["final"]["attempts"])
        assert c["seconds"] <= attempts * ATTEMPT_LIMIT_S + 2.0, c  # 2 s: DDS, timers, status delivery
    assert first["final"]["success"] == reach_succeeds, first["final"]
    print({topic: first["rates"][topic] for topic in ("action", "joint_command")})
    if rates_at_20_hz:  # the control loop at 20 Hz +- 5 % over a whole command (two 150-step attempts: 15 s)
        for topic in ("action", "joint_command"):
            rate = first["rates"][topic]
            assert rate["messages"] >= 250 and 19.0 <= rate["rate_hz"] <= 21.0, (topic, rate)
    assert not drawer["final"]["success"]  # the reach scene has no drawer: it fails, and says why
    assert again["final"] is not None
    # SIGINT to the launch: every node ends without a traceback
    assert result["launch_exit"] == 0, result["launch_exit"]
    for word in ("Traceback", "ExternalShutdownException", "RCLError", "process has died"):
        assert word not in log, log[log.find(word) - 2000: log.find(word) + 500]


def test_the_graph_on_real_ros2_camera_off(workspace, tmp_path):
    """Placement seed 0: the goal lies low and far (0.087, 0.882, 0.051 m, sim frame); the policy stops 9 cm short in
    both attempts, so the first command runs its whole 2 x 150 steps: the rates are measured over 15 s."""
    result, log = drive(workspace, tmp_path, "false", seed=0)
    check_run(result, log, LAUNCHED, reach_succeeds=False, rates_at_20_hz=True)
    assert [s["why"] for s in result["commands"][0]["final"]["subtasks"]] == ["max_steps"]


def test_the_graph_on_real_ros2_camera_on(workspace, tmp_path):
    """Placement seed 1: the reach succeeds through the virtual RealSense and the AprilTag detector. The rates are
    printed, not asserted: with the camera rendered in software on 2 cores the loop falls below 20 Hz (issue 16)."""
    result, log = drive(workspace, tmp_path, "true", seed=1)
    check_run(result, log, (*LAUNCHED, "perception"), reach_succeeds=True, rates_at_20_hz=False)
    assert result["commands"][0]["seconds"] < ATTEMPT_LIMIT_S
