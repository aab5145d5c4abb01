"""The LEGION nodes on the arm driver's mock hardware (ros2_control mock components): wiring checks, no robot.

    ros2 launch launch/mock_hardware.launch.py [driver:=lbr_fri_ros2_stack|iiwa_ros2]

Starts lbr_bringup's mock.launch.py (or iiwa_bringup with use_fake_hardware:=true) and every LEGION node
but perception; with no camera, object poses must be published on /legion/object_poses by hand or by a
recorded bag, and nothing moves until the safety node is armed.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from launch import LaunchDescription  # noqa: E402

import _legion  # noqa: E402

NODES = ("speech", "task_sequencer", "embedding", "real2sim", "policy", "sim2real", "safety")


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([*_legion.arguments(), *_legion.arm_driver(mock=True), *_legion.legion_nodes(NODES)])
