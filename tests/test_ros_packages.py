"""The ROS 2 packages and launch files: package.xml validated by catkin_pkg, entry points against the graph, and
every launch file's ``generate_launch_description`` evaluated by the real ROS 2 ``launch`` / ``launch_ros`` (Jazzy)
as ``ros2 launch`` would before starting processes: launch arguments declared and checked against their choices,
conditions evaluated, each node's name and parameter files expanded (launch_ros writes the per-node overrides to a
parameter file, read back here), checked against the graph and the repository. Without ROS 2's ``launch`` those tests
are skipped; the package files are checked everywhere."""
import ast
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import ros_graph
import yaml
from catkin_pkg.package import parse_package

from legion_runtime import graph
from sim2real.drivers import DRIVERS

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "ros2_ws" / "src"
LAUNCH = ROOT / "launch"
PARAMS_FILE = LAUNCH / "config" / "legion.yaml"

#: nodes of the graph whose executable is not written yet, and why
PENDING: dict[str, str] = {}


def entry_points(package: str) -> set[str]:
    """Console scripts of an ament_python package, read from its setup.py without running it."""
    tree = ast.parse((SRC / package / "setup.py").read_text())
    nodes = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "NODES")
    return set(ast.literal_eval(nodes))


@pytest.mark.parametrize("package", ["legion_nodes", "legion_bringup"])
def test_package_xml_is_valid_format_3(package):
    pkg = parse_package(str(SRC / package / "package.xml"))
    pkg.validate()  # raises InvalidPackage with the reason
    assert pkg.package_format == 3 and pkg.name == package
    assert [e.content for e in pkg.exports if e.tagname == "build_type"] == ["ament_python"]
    assert (SRC / package / "resource" / package).is_file(), "ament resource marker"
    assert (SRC / package / package / "__init__.py").is_file()
    assert "script_dir=$base/lib/" + package in (SRC / package / "setup.cfg").read_text()


def test_every_graph_node_has_an_executable_and_a_node_file():
    scripts = entry_points("legion_nodes")
    expected = {n.executable for k, n in graph.NODES.items() if k not in PENDING} | set(graph.COMPOSED)
    assert scripts == expected
    for script in scripts:
        assert (SRC / "legion_nodes" / "legion_nodes" / f"{script}.py").is_file()


def test_node_package_declares_every_message_package_it_uses():
    deps = {d.name for d in parse_package(str(SRC / "legion_nodes" / "package.xml")).exec_depends}
    used = {t.msgtype.split("/")[0] for t in graph.TOPICS.values()} | \
        {s.srvtype.split("/")[0] for s in graph.SERVICES.values()} | {a.actiontype.split("/")[0] for a in graph.ACTIONS.values()}
    assert used <= deps, f"missing exec_depend: {sorted(used - deps)}"


def test_parameter_files_are_the_graphs():
    for name, text in graph.parameter_files().items():
        assert (PARAMS_FILE.parent / name).read_text() == text, f"{name}: run `legion ros-params` after editing the graph"


def load_launch(name: str):
    """The real LaunchDescription that ``launch/<name>`` generates (skips the test without ROS 2's launch)."""
    ros_graph.require("launch_ros")
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), LAUNCH / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


class Evaluated:
    """A launch description as ``ros2 launch <file> [arguments]`` evaluates it before starting anything.

    Its launch arguments are declared in a real LaunchContext (a value outside an argument's ``choices`` raises, as
    ``ros2 launch`` does), conditions are evaluated, and each ``launch_ros`` Node expands its name and parameters
    (``_perform_substitutions``, the first step of ``Node.execute``: the step before the process starts).
    Included launch files are not loaded (their packages, the robot's drivers, are not installed here).

    Attributes:
        arguments: {name: DeclareLaunchArgument}.
        nodes: {node name: {"package", "executable", "parameter_files" (paths, in order), "overrides" (dict)}},
            of the nodes whose condition holds; each node of a composed process (``graph.COMPOSED``) has that
            process's entry.
        includes: [(package, launch file name, launch arguments)] of the includes whose condition holds.
    """

    def __init__(self, description, **launch_arguments: str):
        from launch import LaunchContext
        from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
        from launch.utilities import perform_substitutions
        from launch_ros.actions import Node

        context = LaunchContext()
        context.launch_configurations.update(launch_arguments)
        entities = list(description.entities)
        self.arguments = {e.name: e for e in entities if isinstance(e, DeclareLaunchArgument)}
        for argument in self.arguments.values():
            argument.visit(context)  # sets the default, raises on a value outside the choices
        live = [e for e in entities if e.condition is None or e.condition.evaluate(context)]
        self.nodes, self.includes = {}, []
        for node in (e for e in live if isinstance(e, Node)):
            node._perform_substitutions(context)
            args = [perform_substitutions(context, part) for part in node.cmd[1:]
                    if not any(type(s).__name__ == "LocalSubstitution" for s in part)]
            files = [args[i + 1] for i, a in enumerate(args) if a == "--params-file"]
            *parameter_files, generated = files  # launch_ros writes a node's dict of overrides to a file of its own
            overrides = yaml.safe_load(Path(generated).read_text())["/**"]["ros__parameters"]
            os.unlink(generated)
            entry = {"package": node.node_package, "executable": node.node_executable,
                     "parameter_files": parameter_files, "overrides": overrides}
            members = graph.COMPOSED.get(node.node_executable, (node.node_name.rsplit("/", 1)[-1],))
            for name in members:
                assert name not in self.nodes, f"{name} is launched twice"
                self.nodes[name] = entry
        for include in (e for e in live if isinstance(e, IncludeLaunchDescription)):
            # launch 3.4 has no public getter for a source's unexpanded location (``location`` str()s it)
            (path,) = include.launch_description_source._LaunchDescriptionSource__location
            package, *rest = path.substitutions
            self.includes.append((perform_substitutions(context, package.package),
                                  perform_substitutions(context, rest[-1:]), dict(include.launch_arguments)))


LAUNCH_FILES = {
    "mujoco_plant.launch.py": {"speech", "task_sequencer", "embedding", "perception", "real2sim", "policy", "sim2real",
                               "safety", "mujoco_plant"},
    "mock_hardware.launch.py": {"speech", "task_sequencer", "embedding", "real2sim", "policy", "sim2real", "safety"},
    "real_robot.launch.py": set(graph.DEPLOYMENT_NODES),
}


@pytest.mark.parametrize("compose", ["true", "false"])
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("name", sorted(LAUNCH_FILES))
def test_launch_file_starts_the_graphs_nodes_with_the_generated_parameter_files(name, driver, compose):
    launched = Evaluated(load_launch(name), driver=driver, compose=compose)
    assert set(launched.nodes) == LAUNCH_FILES[name]
    scripts = entry_points("legion_nodes")
    for node_name, node in launched.nodes.items():
        spec = graph.NODES[node_name]
        composed = compose == "true" and node_name in graph.COMPOSED["control_chain_node"]
        assert node["package"] == "legion_nodes"
        assert node["executable"] == ("control_chain_node" if composed else spec.executable)
        assert node["executable"] in scripts or node_name in PENDING
        base, driver_file = map(Path, node["parameter_files"])
        assert base == LAUNCH / "config" / "legion.yaml" and base.is_file()
        assert driver_file == LAUNCH / "config" / f"{driver}.yaml" and driver_file.is_file()
        parameters = {}  # a composed process's overrides reach each of its nodes, which takes those it declares
        for member in (graph.COMPOSED["control_chain_node"] if composed else (node_name,)):
            parameters.update(graph.node_parameters(graph.NODES[member]))
        assert set(node["overrides"]) <= set(parameters), f"{node_name}: unknown parameters {set(node['overrides'])}"
        for key, value in node["overrides"].items():  # rclpy refuses a value of another type than the declared one
            assert type(value) is type(parameters[key]), (node_name, key, value, parameters[key])
    for d in DRIVERS:
        assert (LAUNCH / "config" / f"{d}.yaml").is_file()
    assert set(launched.arguments["driver"].choices) == set(DRIVERS)
    bringup_deps = {d.name for d in parse_package(str(SRC / "legion_bringup" / "package.xml")).exec_depends}
    for package, _, _ in launched.includes:
        assert package in bringup_deps | {"iiwa_bringup"}, f"{name} includes {package}, not an exec_depend"


def test_a_launch_argument_outside_its_choices_is_refused():
    with pytest.raises(Exception, match='Argument "driver" provided value "kuka_rsi" is not valid'):
        Evaluated(load_launch("mujoco_plant.launch.py"), driver="kuka_rsi")


def test_mujoco_launch_needs_no_robot_and_real_robot_launch_starts_the_drivers():
    def included(name, driver="lbr_fri_ros2_stack"):
        return {(package, launch_file) for package, launch_file, _ in Evaluated(load_launch(name), driver=driver).includes}

    assert included("mujoco_plant.launch.py") == set()
    assert included("mock_hardware.launch.py") == {("lbr_bringup", "mock.launch.py")}
    assert included("mock_hardware.launch.py", "iiwa_ros2") == {("iiwa_bringup", "iiwa.launch.py")}
    assert included("real_robot.launch.py") == {("lbr_bringup", "hardware.launch.py"),
                                                 ("robotiq_description", "robotiq_control.launch.py"),
                                                 ("realsense2_camera", "rs_launch.py")}
    assert included("real_robot.launch.py", "iiwa_ros2") == {("iiwa_bringup", "iiwa.launch.py"),
                                                              ("robotiq_description", "robotiq_control.launch.py"),
                                                              ("realsense2_camera", "rs_launch.py")}


def test_mujoco_launch_without_the_camera_runs_no_perception_node_and_tells_the_plant():
    launched = Evaluated(load_launch("mujoco_plant.launch.py"), camera="false", seed="4")
    assert "perception" not in launched.nodes
    assert launched.nodes["mujoco_plant"]["overrides"] == {"camera": False, "seed": 4, "task": "reach-v3"}
    with_camera = Evaluated(load_launch("mujoco_plant.launch.py"))
    assert with_camera.nodes["mujoco_plant"]["overrides"]["camera"] is True
    assert with_camera.nodes["perception"]["overrides"]["calibration"] == "calibration/sim_camera_extrinsics.yaml"


@pytest.mark.parametrize("package", ["legion_nodes", "legion_bringup"])
def test_setup_py_installs_existing_files_by_relative_paths(package, tmp_path):
    """Issue 16.1: colcon refused legion_bringup ("'data_files' must be relative"): its setup.py globbed absolute
    paths. Here setuptools really installs the package into a folder, and every data file must arrive."""
    import subprocess

    setup = SRC / package / "setup.py"
    proc = subprocess.run([sys.executable, "-c", (
        "import runpy, setuptools, json, sys\n"
        "seen = {}\n"
        "setuptools.setup = lambda **kw: seen.update(kw)\n"
        f"runpy.run_path({str(setup)!r})\n"
        "print(json.dumps(seen['data_files']))")], cwd=SRC / package, capture_output=True, text=True, check=True)
    import json

    data_files = json.loads(proc.stdout)
    for _, files in data_files:
        for f in files:
            assert not Path(f).is_absolute(), f"{package}: data file {f} is absolute"
            assert (SRC / package / f).is_file(), f"{package}: data file {f} does not exist"
    proc = subprocess.run([sys.executable, "setup.py", "-q", "install_data", "--install-dir", str(tmp_path)],
                          cwd=SRC / package, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for target, files in data_files:
        for f in files:
            assert (tmp_path / target / Path(f).name).is_file(), f"{target}/{Path(f).name} not installed"
    if package == "legion_bringup":
        assert (tmp_path / "share/legion_bringup/launch/mujoco_plant.launch.py").is_file()
