"""The ROS 2 packages and launch files: package.xml validated by catkin_pkg, entry points against the graph,
and every launch file run (``generate_launch_description``) against a test double of ``launch``/``launch_ros``
(tests/ros2_double), its nodes and parameter files checked against the graph and the repository."""
import ast
import importlib.util
import sys
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

from legion_runtime import graph
from sim2real.drivers import DRIVERS

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "ros2_ws" / "src"
LAUNCH = ROOT / "launch"
sys.path[:0] = [str(ROOT / "tests" / "ros2_double")]

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription  # noqa: E402  (test double)
from launch_ros.actions import Node  # noqa: E402

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
    expected = {n.executable for k, n in graph.NODES.items() if k not in PENDING}
    assert scripts == expected
    for script in scripts:
        assert (SRC / "legion_nodes" / "legion_nodes" / f"{script}.py").is_file()


def test_node_package_declares_every_message_package_it_uses():
    deps = {d.name for d in parse_package(str(SRC / "legion_nodes" / "package.xml")).exec_depends}
    used = {t.msgtype.split("/")[0] for t in graph.TOPICS.values()} | \
        {s.srvtype.split("/")[0] for s in graph.SERVICES.values()} | {a.actiontype.split("/")[0] for a in graph.ACTIONS.values()}
    assert used <= deps, f"missing exec_depend: {sorted(used - deps)}"


def load_launch(name: str):
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), LAUNCH / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def flatten(entities):
    for e in entities:
        yield e
        yield from flatten(getattr(e, "actions", []))


LAUNCH_FILES = {
    "mujoco_plant.launch.py": {"speech", "task_sequencer", "embedding", "perception", "real2sim", "policy", "sim2real",
                               "safety", "mujoco_plant"},
    "mock_hardware.launch.py": {"speech", "task_sequencer", "embedding", "real2sim", "policy", "sim2real", "safety"},
    "real_robot.launch.py": set(graph.DEPLOYMENT_NODES),
}


@pytest.mark.parametrize("name", sorted(LAUNCH_FILES))
def test_launch_file_starts_the_graphs_nodes_with_the_generated_parameter_files(name):
    description = load_launch(name)
    entities = list(flatten(description.entities))
    nodes = [e for e in entities if isinstance(e, Node)]
    assert {n.name for n in nodes} == LAUNCH_FILES[name]
    scripts = entry_points("legion_nodes")
    for node in nodes:
        spec = graph.NODES[node.name]
        assert node.package == "legion_nodes" and node.executable == spec.executable
        assert node.executable in scripts or node.name in PENDING
        base, driver_file, overrides = node.parameters
        assert Path(base) == LAUNCH / "config" / "legion.yaml" and Path(base).is_file()
        assert Path(driver_file.substitutions[0]) == LAUNCH / "config"
        assert set(overrides) <= set(graph.node_parameters(spec)), f"{node.name}: unknown parameters {set(overrides)}"
    for driver in DRIVERS:
        assert (LAUNCH / "config" / f"{driver}.yaml").is_file()
    arguments = {e.name: e for e in entities if isinstance(e, DeclareLaunchArgument)}
    assert set(arguments["driver"].choices) == set(DRIVERS)
    bringup_deps = {d.name for d in parse_package(str(SRC / "legion_bringup" / "package.xml")).exec_depends}
    for include in (e for e in entities if isinstance(e, IncludeLaunchDescription)):
        package = include.source.launch_file_path.substitutions[0].package
        assert package in bringup_deps | {"iiwa_bringup"}, f"{name} includes {package}, not an exec_depend"


def test_mujoco_launch_needs_no_robot_and_real_robot_launch_starts_the_drivers():
    def included(name):
        return {e.source.launch_file_path.substitutions[0].package
                for e in flatten(load_launch(name).entities) if isinstance(e, IncludeLaunchDescription)}

    assert included("mujoco_plant.launch.py") == set()
    assert included("mock_hardware.launch.py") == {"lbr_bringup", "iiwa_bringup"}
    assert included("real_robot.launch.py") == {"lbr_bringup", "iiwa_bringup", "robotiq_description", "realsense2_camera"}


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
