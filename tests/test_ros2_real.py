"""The ROS 2 graph on a real ROS 2 Jazzy: colcon build, `ros2 launch` from outside the repository, the graph's
interface, arming and three commands in a row, camera off and on, a killed policy node restarted by ``ros2 run``, and a
clean SIGINT (issue 16). The rates and latencies over 60 s of control are measured by benchmarks/bench_ros2_graph.py.

Runs when a ROS 2 Jazzy is available: ``LEGION_ROS2_PREFIX`` (set by scripts/test.sh after
``../shared/ros2/build.sh``) or a sourced one (``ROS_DISTRO``); otherwise the module is skipped with the reason. Every
DDS process runs inside one ``../shared/ros2/loopback.sh`` call (a network namespace with loopback only).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from legion_runtime import graph
from ros2_real.loopback import PREFIX, ROOT, colcon_build, in_namespace, skip_module_without_ros2

skip_module_without_ros2()

LAUNCHED = ("speech", "task_sequencer", "embedding", "real2sim", "policy", "sim2real", "safety", "mujoco_plant")
COMMANDS = ["reach the goal", "close the drawer", "reach the goal"]
#: per attempt: 150 steps at 20 Hz + the sequencer's 1 s margin; a failed subtask is tried twice
ATTEMPT_LIMIT_S = graph.MAX_STEPS_PER_SUBTASK / graph.CONTROL_RATE_HZ + 1.0


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """ros2_ws built by colcon with this project's interpreter, into a folder outside the repository."""
    out = tmp_path_factory.mktemp("ros2_ws")
    proc = colcon_build(out, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 packages finished" in proc.stdout, proc.stdout[-2000:]
    return out / "install"


def drive(workspace: Path, tmp_path: Path, camera: str, seed: int = 1, extra: str = "") -> tuple[dict, str]:
    """tests/ros2_real/drive_graph.py on the launch, run from ``tmp_path`` (outside the repository)."""
    out = tmp_path / f"camera_{camera}.json"
    commands = " ".join(f"--command '{c}'" for c in COMMANDS)
    proc = in_namespace(
        f"set +u; source {workspace}/setup.bash; set -u; export MUJOCO_GL=egl LEGION_ROS2_PREFIX={PREFIX}; "
        f"cd {tmp_path} && {sys.executable} {ROOT / 'tests/ros2_real/drive_graph.py'} --out {out} "
        f"--camera {camera} --seed {seed} {commands} {extra}", timeout=600)
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), out.with_suffix(".launch.log").read_text()


def expected_topics(nodes) -> set[str]:
    keys = {k for n in nodes for k in (*graph.NODES[n].subscribes, *graph.NODES[n].publishes)}
    return {f"{graph.TOPICS[k].name} [{graph.TOPICS[k].msgtype}]" for k in keys} | {
        "/parameter_events [rcl_interfaces/msg/ParameterEvent]", "/rosout [rcl_interfaces/msg/Log]"}


def check_run(result: dict, log: str, nodes) -> None:
    """The interface, arming, three commands that each end in time with a verdict and its reasons, a clean SIGINT.
    Whether a reach succeeds is not asserted here: on a loaded machine the policy acts on observations as they come,
    and the same placement has ended either way (CI's run of placement seed 0 succeeded, this machine's failed)."""
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
        assert c["final"]["success"] == all(s["success"] for s in c["final"]["subtasks"])
    assert first["observations"] > 0 and first["rates"]["action"]["messages"] > 0
    assert not drawer["final"]["success"]  # the reach scene has no drawer: it fails, and says why
    # SIGINT to the launch: every node ends without a traceback
    assert result["launch_exit"] == 0, result["launch_exit"]
    for word in ("Traceback", "ExternalShutdownException", "RCLError", "process has died"):
        assert word not in log, log[log.find(word) - 2000: log.find(word) + 500]


def test_the_graph_on_real_ros2_camera_off_and_a_restarted_policy_takes_over(workspace, tmp_path):
    """Camera off, then the policy node's process killed (SIGKILL) during a reach (composed by default: real2sim,
    policy and sim2real go with it): while it is dead the safety node forwards nothing and stays armed; ``ros2 run``
    starts it again, it learns the running subtask and its embedding from the latched topics and acts, and joint
    targets reach the arm again with no re-arm of anything."""
    result, log = drive(workspace, tmp_path, "false", seed=0, extra="--restart-policy")
    restart = result["restart"]
    killed = [line for line in log.splitlines() if "process has died" in line]
    assert len(killed) == 1 and restart["executable"] in killed[0] and f"pid {restart['pid']}" in killed[0], killed
    check_run(result, log.replace(killed[0], ""), LAUNCHED)  # the one death is the kill; the rest end cleanly
    print({k: restart[k] for k in ("takeover_s", "targets_forwarded_while_dead", "in_flight_at_kill",
                                   "safety_states_while_dead")})
    assert restart["episode"]["arm"]["success"] and restart["pid"] is not None, restart
    assert restart["targets_forwarded_while_dead"] == 0, restart
    assert restart["safety_states_while_dead"] and set(restart["safety_states_while_dead"]) == {"ARMED"}, restart
    assert restart["takeover_s"] is not None and restart["takeover_s"] < 30, restart
    assert restart["restarted_exit"] == 0, restart
    restarted_log = (tmp_path / "restarted_policy.log").read_text()
    assert "Traceback" not in restarted_log, restarted_log[-3000:]


def test_the_graph_on_real_ros2_camera_on(workspace, tmp_path):
    """Camera on (virtual RealSense at 15 Hz on the plant's camera thread; AprilTag perception): the interface, three
    commands and a clean SIGINT. The 20 Hz target over 60 s is NOT met yet with the camera on (2 cores, software GL:
    action 7.7 Hz, pose age median 166 ms against real2sim's 150 ms); benchmarks/bench_ros2_graph.py measures it."""
    result, log = drive(workspace, tmp_path, "true", seed=1)
    check_run(result, log, (*LAUNCHED, "perception"))
