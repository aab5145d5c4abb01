"""launch/gazebo.launch.py on the real ROS 2 Jazzy ``launch`` (issue 16): no Gazebo and no driver package exist here.

What runs, each time in a ``../shared/ros2/loopback.sh`` call (a network namespace with loopback only):

* ``ros2 launch --show-args``: the description builds on the real ``launch``; its arguments, defaults and choices are
  the table of docs/ros2.md ("Gazebo in the loop").
* ``ros2 launch`` with stand-in packages on ``AMENT_PREFIX_PATH``: ``lbr_bringup`` / ``iiwa_bringup`` whose Gazebo
  launch files declare the upstream arguments (lbr-stack/lbr_fri_ros2_stack lbr_bringup/launch/gazebo.launch.py,
  ICube-Robotics/iiwa_ros2 iiwa_bringup/launch/iiwa.launch.py) and record what they receive, and ``legion_nodes``
  executables that record their command line and parameter files, then exit. The parameters each node would get are
  resolved from those files as rcl does (files in order, ``/**`` and the node's name), and checked against the topics
  the driver's launch arguments imply.
* ``ros2 launch`` with no driver package: exit 1 with one error naming the package and how to install it, no
  traceback, no node started.

Runs when ``LEGION_ROS2_PREFIX`` names a prefix built by ../shared/ros2/build.sh (scripts/test.sh sets it); otherwise
the module is skipped with the reason.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from legion_runtime import graph
from ros2_real.loopback import PREFIX, ROOT, in_namespace, skip_module_without_ros2
from sim2real.drivers import DRIVERS

skip_module_without_ros2()

LAUNCH_FILE = ROOT / "launch" / "gazebo.launch.py"
ROS2 = f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(PREFIX) / 'install' / 'bin' / 'ros2'))}"
LAUNCH_TIMEOUT_S = 40

#: upstream launch arguments: name -> (default, choices), read from the drivers' repositories
LBR_GAZEBO_ARGS = {  # lbr-stack/lbr_fri_ros2_stack lbr_bringup/launch/gazebo.launch.py (lbr_bringup/lbr_bringup/*.py)
    "model": ("iiwa7", ["iiwa7", "iiwa14", "med7", "med14"]),
    "robot_name": ("lbr", None),
    "ctrl": ("joint_trajectory_controller", ["joint_trajectory_controller", "forward_position_controller",
                                             "lbr_joint_position_command_controller", "lbr_torque_command_controller",
                                             "lbr_wrench_command_controller", "twist_controller"]),
}
IIWA_ARGS = {  # ICube-Robotics/iiwa_ros2 iiwa_bringup/launch/iiwa.launch.py (branch jazzy-dev)
    "runtime_config_package": ("iiwa_description", None), "controllers_file": ("iiwa_controllers.yaml", None),
    "description_package": ("iiwa_description", None), "description_file": ("iiwa.config.xacro", None),
    "prefix": ("", None), "namespace": ("/", None), "use_sim": ("false", None), "use_fake_hardware": ("true", None),
    "use_planning": ("false", None), "use_servoing": ("false", None), "robot_controller": ("iiwa_arm_controller", None),
    "start_rviz": ("true", None), "robot_ip": ("192.170.10.2", None), "robot_port": ("30200", None),
    "initial_positions_file": ("initial_positions.yaml", None), "command_interface": ("position", None),
    "base_frame_file": ("base_frame.yaml", None),
}
DRIVER_PACKAGES = {"lbr_fri_ros2_stack": ("lbr_bringup", "gazebo.launch.py", LBR_GAZEBO_ARGS),
                   "iiwa_ros2": ("iiwa_bringup", "iiwa.launch.py", IIWA_ARGS)}
ALWAYS = {"speech", "task_sequencer", "embedding", "real2sim", "policy", "sim2real", "safety"}

FAKE_DRIVER_LAUNCH = '''\
"""Stand-in for {package}'s launch/{launch_file}: declares the upstream arguments, records what it receives."""
import json
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction

ARGS = {args!r}


def record(context):
    with open(os.path.join(os.environ["LEGION_FAKE_OUT"], "driver.json"), "w") as f:
        json.dump({{"package": {package!r}, "file": __file__,
                   "configurations": dict(context.launch_configurations)}}, f)
    return []


def generate_launch_description():
    return LaunchDescription([*(DeclareLaunchArgument(name, default_value=default, choices=choices)
                                for name, (default, choices) in ARGS.items()), OpaqueFunction(function=record)])
'''

FAKE_NODE = '''\
#!{python}
"""Stand-in LEGION node: records its command line and the parameter files it was given, then exits."""
import json
import os
import sys
from pathlib import Path

argv = sys.argv[1:]
files = [argv[i + 1] for i, a in enumerate(argv) if a == "--params-file"]
record = {{"argv": argv, "params_files": [[f, Path(f).read_text()] for f in files]}}
Path(os.environ["LEGION_FAKE_OUT"], Path(sys.argv[0]).name + ".json").write_text(json.dumps(record))
'''


def make_prefix(root: Path, drivers: dict[str, str | None], nodes: bool = True) -> Path:
    """An ament prefix with stand-in packages: ``drivers`` package -> launch file text (None: the package without its
    launch file), and ``legion_nodes`` with one recording executable per graph node when ``nodes``."""
    index = root / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    for package, text in drivers.items():
        (index / package).write_text("")
        (root / "share" / package / "launch").mkdir(parents=True)
        if text is not None:
            launch_file = next(f for p, f, _ in DRIVER_PACKAGES.values() if p == package)
            (root / "share" / package / "launch" / launch_file).write_text(text)
    if nodes:
        (index / "legion_nodes").write_text("")
        lib = root / "lib" / "legion_nodes"
        lib.mkdir(parents=True)
        for executable in [spec.executable for spec in graph.NODES.values()] + list(graph.COMPOSED):
            exe = lib / executable
            exe.write_text(FAKE_NODE.format(python=sys.executable))
            exe.chmod(0o755)
    return root


def fake_driver(driver: str) -> str:
    package, launch_file, args = DRIVER_PACKAGES[driver]
    return FAKE_DRIVER_LAUNCH.format(package=package, launch_file=launch_file, args=args)


@pytest.fixture(scope="module")
def drivers_prefix(tmp_path_factory) -> Path:
    """Both stand-in driver packages and the stand-in legion_nodes."""
    return make_prefix(tmp_path_factory.mktemp("prefix"), {DRIVER_PACKAGES[d][0]: fake_driver(d) for d in DRIVERS})


def launch(prefix: Path | None, arguments: list[str], out: Path) -> tuple[subprocess.CompletedProcess, dict, dict]:
    """``ros2 launch launch/gazebo.launch.py ARGUMENTS`` from ``out`` (outside the repository), ``prefix`` in front of
    AMENT_PREFIX_PATH. Returns the process, the driver launch file's record (or {}) and node name -> node record."""
    out.mkdir(parents=True, exist_ok=True)
    ament = f"export AMENT_PREFIX_PATH={shlex.quote(str(prefix))}:$AMENT_PREFIX_PATH; " if prefix else ""
    proc = in_namespace(
        f"{ament}export LEGION_FAKE_OUT={shlex.quote(str(out))} ROS_LOG_DIR={shlex.quote(str(out / 'log'))} TMPDIR={shlex.quote(str(out))}; cd {shlex.quote(str(out))} && "
        f"timeout -k 5 {LAUNCH_TIMEOUT_S} {ROS2} launch {shlex.quote(str(LAUNCH_FILE))} "
        + " ".join(shlex.quote(a) for a in arguments), timeout=LAUNCH_TIMEOUT_S + 20)
    assert proc.returncode not in (124, 137), f"ros2 launch hung:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    driver = out / "driver.json"
    by_executable = {spec.executable: key for key, spec in graph.NODES.items()}
    nodes = {}
    for f in out.glob("*.json"):
        if f.stem in by_executable:
            nodes[by_executable[f.stem]] = json.loads(f.read_text())
        for key in graph.COMPOSED.get(f.stem, ()):  # one process, several nodes: each reads its own sections
            assert key not in nodes, f"{key} started twice"
            nodes[key] = {**json.loads(f.read_text()), "composed_as": graph.NODES[key].name}
    return proc, (json.loads(driver.read_text()) if driver.is_file() else {}), nodes


def flat(tree: dict, parent: str = "") -> dict:
    """Nested parameter YAML -> dotted names, as rcl reads a parameter file."""
    out = {}
    for key, value in tree.items():
        name = f"{parent}.{key}" if parent else str(key)
        out.update(flat(value, name) if isinstance(value, dict) else {name: value})
    return out


def node_parameters(record: dict) -> tuple[str, dict]:
    """(node name, parameters) a node would get from its command line: its ``__node`` remapping (none in a composed
    process: each node keeps its own name), then every ``--params-file`` in order (sections ``/**`` and the node's own
    name) and ``-p name:=value``."""
    argv = record["argv"]
    assert argv[0] == "--ros-args", argv
    names = [argv[i + 1].split(":=", 1)[1] for i, a in enumerate(argv[:-1])
             if a in ("-r", "--remap") and argv[i + 1].startswith("__node:=")]
    if "composed_as" in record:
        assert names == [], f"a __node remapping renames every node of a composed process: {argv}"
        names = [record["composed_as"]]
    assert len(names) == 1, argv
    name = names[0]
    params: dict = {}
    for _, text in record["params_files"]:
        for section, body in (yaml.safe_load(text) or {}).items():
            if section in ("/**", name, f"/{name}", f"/**/{name}"):
                params.update(flat(body["ros__parameters"]))
    for i, a in enumerate(argv[:-1]):
        if a in ("-p", "--param"):
            key, value = argv[i + 1].split(":=", 1)
            params[key] = yaml.safe_load(value)
    return name, params


def documented_arguments() -> dict:
    """name -> (default, choices or None) from the argument table of docs/ros2.md's "Gazebo in the loop"."""
    text = (ROOT / "docs" / "ros2.md").read_text()
    section = text.split("## Gazebo in the loop", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| `([^`]*)` \|([^|]*)\|", section, flags=re.M)
    assert rows, "no argument table in docs/ros2.md's Gazebo section"
    return {name: ("" if default == "''" else default, re.findall(r"`([^`]+)`", choices) or None)
            for name, default, choices in rows}


def shown_arguments(stdout: str) -> dict:
    """name -> (default, choices or None) from ``ros2 launch --show-args``."""
    out = {}
    for block in re.split(r"\n\s*\n", stdout):
        head = re.match(r"\s*'([^']+)':", block)
        if not head:
            continue
        default = re.search(r"\(default: '(.*)'\)", block)
        choices = re.search(r"Valid choices are: (\[.*?\])", block, flags=re.S)
        out[head.group(1)] = (default.group(1) if default else None,
                              yaml.safe_load(choices.group(1)) if choices else None)
    return out


@pytest.fixture(scope="module")
def show_args() -> subprocess.CompletedProcess:
    return in_namespace(f"{ROS2} launch --show-args {shlex.quote(str(LAUNCH_FILE))}", timeout=60)


def test_description_builds_and_declares_the_documented_arguments(show_args):
    assert show_args.returncode == 0, show_args.stdout[-2000:] + show_args.stderr[-3000:]
    shown = shown_arguments(show_args.stdout)
    assert shown == documented_arguments()
    assert shown["driver"] == ("lbr_fri_ros2_stack", list(DRIVERS))
    assert shown["object_poses_source"] == ("topic", ["topic", "camera"])
    assert shown["object_poses_topic"][0] == graph.TOPICS["object_poses"].name
    assert shown["use_sim_time"] == ("true", ["true", "false"])
    assert {"image_topic", "camera_info_topic", "camera_frame", "tag_map", "calibration"} <= set(shown)


def check_nodes_on_driver_topics(nodes: dict, driver: str, joint_states: str, joint_targets: str,
                                 use_sim_time: bool) -> dict:
    """Every started node: its name, the driver's topics, the clock; returns node name -> parameters."""
    params = {}
    for key, record in nodes.items():
        name, p = node_parameters(record)
        assert name == graph.NODES[key].name
        params[key] = p
        assert p["use_sim_time"] is use_sim_time, key
        spec = graph.NODES[key]
        if "driver" in spec.parameters:
            assert p["driver"] == driver, key
        uses = (*spec.subscribes, *spec.publishes)
        if "joint_states" in uses:
            assert p["topics.joint_states"] == joint_states, key
        if "joint_targets" in uses:
            assert p["topics.joint_targets"] == joint_targets, key
        # every topic of the graph node is set (from legion.yaml at least)
        assert {f"topics.{k}" for k in uses} <= set(p), key
    return params


def test_lbr_gazebo_with_object_poses_from_a_topic(drivers_prefix, show_args, tmp_path):
    proc, driver, nodes = launch(drivers_prefix, ["object_poses_topic:=/gazebo/object_poses"], tmp_path / "run")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "Traceback" not in log
    # the driver's own Gazebo launch, with the iiwa 14 and the trajectory controller
    assert driver["package"] == "lbr_bringup"
    assert driver["file"] == str(drivers_prefix / "share/lbr_bringup/launch/gazebo.launch.py")
    conf = driver["configurations"]
    assert (conf["model"], conf["robot_name"], conf["ctrl"]) == ("iiwa14", "lbr", "joint_trajectory_controller")
    undeclared = set(conf) - set(shown_arguments(show_args.stdout)) - set(LBR_GAZEBO_ARGS)
    assert not undeclared, f"arguments lbr_bringup's gazebo.launch.py does not declare: {undeclared}"
    # our nodes on the topics that namespace and controller give: /<robot_name>/...
    assert set(nodes) == ALWAYS, "topic mode: no perception node"
    params = check_nodes_on_driver_topics(
        nodes, "lbr_fri_ros2_stack", joint_states=f"/{conf['robot_name']}/joint_states",
        joint_targets=f"/{conf['robot_name']}/{conf['ctrl']}/joint_trajectory", use_sim_time=True)
    assert params["real2sim"]["topics.object_poses"] == "/gazebo/object_poses"
    assert params["policy"]["checkpoint"] == "models/stream-efficient/legion"
    assert params["speech"]["backend"] == "pocketsphinx"


def test_iiwa_gazebo_with_object_poses_from_a_gazebo_camera(drivers_prefix, tmp_path):
    arguments = ["driver:=iiwa_ros2", "object_poses_source:=camera", "image_topic:=/gz/camera/image",
                 "camera_info_topic:=/gz/camera/camera_info", "camera_frame:=gz_camera_optical",
                 "tag_map:=worlds/tags.yaml", "calibration:=worlds/camera.yaml", "use_sim_time:=false"]
    proc, driver, nodes = launch(drivers_prefix, arguments, tmp_path / "run")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "Traceback" not in log
    assert driver["package"] == "iiwa_bringup", "driver:=iiwa_ros2 must include iiwa_bringup only"
    assert driver["file"] == str(drivers_prefix / "share/iiwa_bringup/launch/iiwa.launch.py")
    conf = driver["configurations"]
    assert (conf["use_sim"], conf["use_fake_hardware"]) == ("true", "false")
    assert conf["robot_controller"] == "iiwa_arm_controller" and conf["namespace"] == "/"
    assert set(nodes) == ALWAYS | {"perception"}
    ns = conf["namespace"].rstrip("/") + "/"
    params = check_nodes_on_driver_topics(nodes, "iiwa_ros2", joint_states=f"{ns}joint_states",
                                          joint_targets=f"{ns}{conf['robot_controller']}/joint_trajectory",
                                          use_sim_time=False)
    perception = params["perception"]
    assert perception["topics.image"] == "/gz/camera/image"
    assert perception["topics.camera_info"] == "/gz/camera/camera_info"
    assert perception["camera_frame"] == "gz_camera_optical"
    assert (perception["tag_map"], perception["calibration"]) == ("worlds/tags.yaml", "worlds/camera.yaml")
    # perception publishes where real2sim listens: the default object-pose topic
    assert perception["topics.object_poses"] == params["real2sim"]["topics.object_poses"] == \
        graph.TOPICS["object_poses"].name


@pytest.mark.parametrize("driver,launch_file_present", [("lbr_fri_ros2_stack", False), ("iiwa_ros2", False),
                                                        ("lbr_fri_ros2_stack", True)],
                         ids=["no-lbr_bringup", "no-iiwa_bringup", "lbr_bringup-without-gazebo.launch.py"])
def test_missing_driver_package_is_one_clear_error_and_starts_nothing(driver, launch_file_present, tmp_path):
    package, launch_file, _ = DRIVER_PACKAGES[driver]
    # legion_nodes stand-ins present: a node started before the check would leave a record
    drivers = {package: None} if launch_file_present else {}
    prefix = make_prefix(tmp_path / "prefix", drivers)
    proc, record, nodes = launch(prefix, [f"driver:={driver}"], tmp_path / "run")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    assert "Traceback" not in log, log
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert len(errors) == 1, log
    assert f"driver:={driver}" in errors[0] and f"'{package}'" in errors[0] and f"launch/{launch_file}" in errors[0]
    assert "To install" in errors[0]
    repository = {"lbr_fri_ros2_stack": "github.com/lbr-stack/lbr_fri_ros2_stack",
                  "iiwa_ros2": "github.com/ICube-Robotics/iiwa_ros2"}[driver]
    assert repository in errors[0]
    if launch_file_present:
        assert str(prefix / "share" / package) in errors[0]
    else:
        assert "is not installed" in errors[0]
    assert record == {} and nodes == {}, f"started despite the missing driver: {sorted(nodes)}"
