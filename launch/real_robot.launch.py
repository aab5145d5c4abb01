"""The real robot: KUKA LBR iiwa 14 (FRI), Robotiq 2F-85, RealSense, and every LEGION node.

    ros2 launch launch/real_robot.launch.py [driver:=lbr_fri_ros2_stack|iiwa_ros2] [gripper_port:=/dev/ttyUSB0]

The safety node starts in HOLD: check the scene, then ``ros2 service call /legion/safety/arm std_srvs/srv/Trigger``;
``/legion/safety/estop`` latches a stop. The perception node needs the tag map and the hand-eye calibration
(parameters ``tag_map`` and ``calibration`` of ``perception``, in a site parameter file); it refuses to start without them.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from launch import LaunchDescription  # noqa: E402
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution  # noqa: E402
from launch_ros.substitutions import FindPackageShare  # noqa: E402

import _legion  # noqa: E402
from legion_runtime.graph import DEPLOYMENT_NODES  # noqa: E402


def _include(package: str, launch_file: str, arguments: dict) -> IncludeLaunchDescription:
    path = PathJoinSubstitution([FindPackageShare(package), "launch", launch_file])
    return IncludeLaunchDescription(PythonLaunchDescriptionSource(path), launch_arguments=arguments.items())


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        *_legion.arguments(),
        DeclareLaunchArgument("gripper_port", default_value="/dev/ttyUSB0", description="2F-85 serial port"),
        *_legion.arm_driver(mock=False),
        _include("robotiq_description", "robotiq_control.launch.py", {"com_port": LaunchConfiguration("gripper_port")}),
        _include("realsense2_camera", "rs_launch.py", {"rgb_camera.color_profile": "640,480,30"}),
        *_legion.legion_nodes(DEPLOYMENT_NODES),
    ])
