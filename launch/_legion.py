"""Shared by the launch files: launch arguments, the LEGION nodes of the graph, and the arm drivers.

Node names, executables and parameters come from ``legion_runtime.graph`` (installed with the project),
parameter values from ``config/legion.yaml`` then ``config/<driver>.yaml`` (both generated from the graph
by ``legion ros-params``), then the launch arguments.
"""
from pathlib import Path

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from legion_runtime.graph import COMPOSED, NODES

CONFIG = Path(__file__).resolve().parent / "config"
#: Command prefixes of nodes: perception (AprilTags on every image, the costliest node) runs at a lower CPU
#: priority than the control chain (real2sim, policy, sim2real, safety), which then keeps its 20 Hz and its
#: latency on a loaded machine; a pose is late by a few ms instead.
PREFIX = {"perception": "nice -n 10"}
#: Environment of nodes: the plant's software GL (Mesa llvmpipe) rasterizes in the calling thread, the plant's
#: low-priority camera thread, and starts no threads of its own: a frame being rendered never takes both cores from
#: the control chain.
ENVIRONMENT = {"mujoco_plant": {"LP_NUM_THREADS": "0"}}
DRIVERS = ("lbr_fri_ros2_stack", "iiwa_ros2")


def arguments() -> list:
    """Launch arguments every LEGION launch file takes."""
    return [
        DeclareLaunchArgument("driver", default_value=DRIVERS[0], choices=list(DRIVERS),
                              description="arm driver: lbr_fri_ros2_stack (lbr_bringup) or iiwa_ros2 (iiwa_bringup)"),
        DeclareLaunchArgument("checkpoint", default_value=NODES["policy"].parameters["checkpoint"],
                              description="LEGION checkpoint folder the policy node loads (real2sim builds the "
                                          "observation layout its manifest names)"),
        DeclareLaunchArgument("speech_backend", default_value="pocketsphinx", choices=["pocketsphinx", "vosk"],
                              description="speech recogniser; vosk needs vosk_model_path"),
        DeclareLaunchArgument("vosk_model_path", default_value="", description="unpacked Vosk model folder"),
        DeclareLaunchArgument("compose", default_value="true", choices=["true", "false"],
                              description="true: real2sim, policy and sim2real in one process (control_chain_node); "
                                          "false: a process each"),
    ]


def legion_nodes(names: tuple, extra: dict | None = None, condition=None) -> list:
    """One launch_ros Node per graph node in ``names``, parameters: legion.yaml, <driver>.yaml, arguments, ``extra``;
    started only where ``condition`` (a launch condition, None: always) holds (nodes of a composed process: where
    ``compose`` says). Where ``names`` holds every node of a
    :data:`legion_runtime.graph.COMPOSED` process, the launch argument ``compose`` chooses that one process (their
    overrides merged: a parameter given two of them with different values is an error) or a process each.

    Raises:
        ValueError: two composed nodes get different values for one parameter.
    """
    driver_file = PathJoinSubstitution([str(CONFIG), PythonExpression(["'", LaunchConfiguration("driver"), ".yaml'"])])
    checkpoint = LaunchConfiguration("checkpoint")  # one object: composed, the two nodes share the value
    from_arguments = {"policy": {"checkpoint": checkpoint},
                      "real2sim": {"checkpoint": checkpoint},  # its manifest names the observation layout
                      "speech": {"backend": LaunchConfiguration("speech_backend"),
                                 "vosk_model_path": LaunchConfiguration("vosk_model_path")}}

    def overrides(name: str) -> dict:
        return {**from_arguments.get(name, {}), **(extra or {}).get(name, {})}

    composed = {executable: members for executable, members in COMPOSED.items() if set(members) <= set(names)}
    in_process = {name for members in composed.values() for name in members}
    nodes = []
    for name in names:
        spec = NODES[name]
        alone = UnlessCondition(LaunchConfiguration("compose")) if name in in_process else condition
        nodes.append(Node(package="legion_nodes", executable=spec.executable, name=spec.name, output="screen",
                          parameters=[str(CONFIG / "legion.yaml"), driver_file, overrides(name)], condition=alone,
                          prefix=PREFIX.get(name), additional_env=ENVIRONMENT.get(name)))
    for executable, members in composed.items():
        merged: dict = {}
        for name in members:
            for key, value in overrides(name).items():
                if key in merged and merged[key] is not value and merged[key] != value:
                    raise ValueError(f"{executable} runs {members} in one process, whose overrides reach all of "
                                     f"them: parameter {key!r} cannot take two values ({merged[key]!r}, {value!r})")
                merged[key] = value
        # no name: a name remaps every node of the process; each keeps its own (and its section of the YAML files)
        nodes.append(Node(package="legion_nodes", executable=executable, output="screen",
                          parameters=[str(CONFIG / "legion.yaml"), driver_file, merged],
                          condition=IfCondition(LaunchConfiguration("compose"))))
    return nodes


def _is(driver: str) -> IfCondition:
    return IfCondition(PythonExpression(["'", LaunchConfiguration("driver"), f"' == '{driver}'"]))


def arm_driver(mock: bool) -> list:
    """The arm driver's bringup: lbr_fri_ros2_stack (``mock`` or ``hardware``) or iiwa_ros2 (fake hardware or real)."""
    lbr = "mock.launch.py" if mock else "hardware.launch.py"
    return [
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("lbr_bringup"), "launch", lbr])),
            launch_arguments={"model": "iiwa14", "ctrl": "joint_trajectory_controller"}.items(),
            condition=_is("lbr_fri_ros2_stack")),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("iiwa_bringup"), "launch",
                                                                "iiwa.launch.py"])),
            launch_arguments={"use_fake_hardware": "true" if mock else "false"}.items(),
            condition=_is("iiwa_ros2")),
    ]
