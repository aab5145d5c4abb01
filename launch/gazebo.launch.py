"""Gazebo-in-the-loop: the arm driver's own Gazebo simulation, and the LEGION nodes against its topics.

    ros2 launch launch/gazebo.launch.py [driver:=lbr_fri_ros2_stack|iiwa_ros2]
        [object_poses_source:=topic|camera] [object_poses_topic:=/legion/object_poses]
        [image_topic:=...] [camera_info_topic:=...] [camera_frame:=...] [tag_map:=...] [calibration:=...]
        [use_sim_time:=true]

Starts lbr_bringup's ``gazebo.launch.py`` (``model:=iiwa14 robot_name:=lbr ctrl:=joint_trajectory_controller``:
Gazebo Sim through ros_gz_sim, topics under ``/lbr``) or iiwa_bringup's ``iiwa.launch.py`` with ``use_sim:=true
use_fake_hardware:=false robot_controller:=iiwa_arm_controller`` (Gazebo through gazebo_ros, topics at the root),
and every LEGION node; ``config/<driver>.yaml`` points them at that driver's joint states and trajectory controller.
The nodes run on Gazebo's clock (``use_sim_time:=true``): the driver's joint states are stamped with it.

Object poses (``tf2_msgs/msg/TFMessage`` in the robot base frame, one transform per tag-map object) come from the
source the user names:

* ``object_poses_source:=topic`` (default): the user's own publisher on ``object_poses_topic`` (e.g. Gazebo's
  ground truth through ros_gz_bridge, renamed to tag-map object names); no perception node runs.
* ``object_poses_source:=camera``: the perception node finds the AprilTags on a Gazebo camera's images
  (``image_topic``, ``camera_info_topic``, frame ``camera_frame``) with the world's tag map (``tag_map``) and the
  camera's pose (``calibration``, easy_handeye2 YAML), and publishes on ``object_poses_topic``.

Neither Gazebo model has the 2F-85: gripper goals go unanswered, as on mock hardware. Arm the safety node to move:
``ros2 service call /legion/safety/arm std_srvs/srv/Trigger``. A driver package that is not installed stops the
launch before anything starts, with one error naming the package and how to install it.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory  # noqa: E402
from launch import LaunchContext, LaunchDescription  # noqa: E402
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction  # noqa: E402
from launch.conditions import IfCondition  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch.substitutions import LaunchConfiguration, PythonExpression  # noqa: E402

import _legion  # noqa: E402
from legion_runtime.graph import DEPLOYMENT_NODES, TOPICS  # noqa: E402

#: driver -> (package, its Gazebo launch file, the launch arguments we give it, how to install the package).
#: Upstream: lbr-stack/lbr_fri_ros2_stack lbr_bringup/launch/gazebo.launch.py (arguments model, robot_name, ctrl);
#: ICube-Robotics/iiwa_ros2 iiwa_bringup/launch/iiwa.launch.py (use_sim, use_fake_hardware, robot_controller).
GAZEBO = {
    "lbr_fri_ros2_stack": (
        "lbr_bringup", "gazebo.launch.py",
        {"model": "iiwa14", "robot_name": "lbr", "ctrl": "joint_trajectory_controller"},
        "build lbr_fri_ros2_stack from source (https://github.com/lbr-stack/lbr_fri_ros2_stack, branch jazzy: vcs "
        "import its lbr_fri_ros2_stack/repos-fri-<FRI version>.yaml, rosdep install, colcon build; rosdep brings "
        "ros_gz_sim and gz_ros2_control) and source its install/setup.bash, or use the robot-PC image "
        "(docker/README.md)"),
    "iiwa_ros2": (
        "iiwa_bringup", "iiwa.launch.py",
        {"use_sim": "true", "use_fake_hardware": "false", "robot_controller": "iiwa_arm_controller"},
        "build ICube-Robotics/iiwa_ros2 from source (https://github.com/ICube-Robotics/iiwa_ros2, Jazzy: branch "
        "jazzy-dev) and source its install/setup.bash; its use_sim:=true path needs gazebo_ros and gazebo_ros2_control "
        "(Gazebo Classic), which are not released for Jazzy"),
}

#: the nodes that always run; perception only with object_poses_source:=camera
NODES = tuple(n for n in DEPLOYMENT_NODES if n != "perception")


class DriverNotInstalledError(RuntimeError):
    """The selected arm driver's bringup package (or its Gazebo launch file) is not installed."""


def driver_simulation(context: LaunchContext) -> list:
    """The selected driver's Gazebo launch, included once its package is found.

    Raises:
        DriverNotInstalledError: the package or its launch file is missing; the message names it and how to install
            it (``ros2 launch`` prints it as one error line and exits 1 before any node starts).
    """
    driver = context.launch_configurations["driver"]
    package, launch_file, arguments, install = GAZEBO[driver]
    try:
        share = Path(get_package_share_directory(package))
    except PackageNotFoundError:
        raise DriverNotInstalledError(
            f"driver:={driver} needs the ROS 2 package '{package}' (its launch/{launch_file} starts the Gazebo "
            f"simulation), and it is not installed here (not on AMENT_PREFIX_PATH). To install it: {install}."
        ) from None
    path = share / "launch" / launch_file
    if not path.is_file():
        raise DriverNotInstalledError(f"driver:={driver}: '{package}' at {share} has no launch/{launch_file} "
                                      f"(a release without Gazebo support?). To install one that has: {install}.")
    return [IncludeLaunchDescription(PythonLaunchDescriptionSource(str(path)), launch_arguments=arguments.items())]


def generate_launch_description() -> LaunchDescription:
    """Arguments, the driver's Gazebo simulation (checked first), the LEGION nodes on its topics."""
    poses_topic = LaunchConfiguration("object_poses_topic")
    sim_time = {"use_sim_time": LaunchConfiguration("use_sim_time")}
    camera = IfCondition(PythonExpression(["'", LaunchConfiguration("object_poses_source"), "' == 'camera'"]))
    return LaunchDescription([
        *_legion.arguments(),
        DeclareLaunchArgument("use_sim_time", default_value="true", choices=["true", "false"],
                              description="LEGION nodes on Gazebo's /clock (the driver stamps joint states with it)"),
        DeclareLaunchArgument("object_poses_source", default_value="topic", choices=["topic", "camera"],
                              description="topic: your own publisher on object_poses_topic (e.g. Gazebo ground "
                                          "truth); camera: the perception node on a Gazebo camera's images"),
        DeclareLaunchArgument("object_poses_topic", default_value=TOPICS["object_poses"].name,
                              description="tf2_msgs/msg/TFMessage of the object poses in the robot base frame"),
        DeclareLaunchArgument("image_topic", default_value=TOPICS["image"].name,
                              description="camera: the Gazebo camera's sensor_msgs/msg/Image topic"),
        DeclareLaunchArgument("camera_info_topic", default_value=TOPICS["camera_info"].name,
                              description="camera: the Gazebo camera's sensor_msgs/msg/CameraInfo topic"),
        DeclareLaunchArgument("camera_frame", default_value="camera_color_optical_frame",
                              description="camera: header.frame_id of its images (an optical frame: z forward)"),
        DeclareLaunchArgument("tag_map", default_value="", description="camera: tag map YAML of the Gazebo world"),
        DeclareLaunchArgument("calibration", default_value="",
                              description="camera: easy_handeye2 YAML of the camera's pose in the robot base frame"),
        OpaqueFunction(function=driver_simulation),
        *_legion.legion_nodes(NODES, extra={
            **{name: dict(sim_time) for name in NODES},
            "real2sim": {**sim_time, "topics.object_poses": poses_topic}}),
        *_legion.legion_nodes(("perception",), extra={"perception": {
            **sim_time, "topics.object_poses": poses_topic, "topics.image": LaunchConfiguration("image_topic"),
            "topics.camera_info": LaunchConfiguration("camera_info_topic"),
            "camera_frame": LaunchConfiguration("camera_frame"), "tag_map": LaunchConfiguration("tag_map"),
            "calibration": LaunchConfiguration("calibration")}}, condition=camera),
    ])
