"""MuJoCo-in-the-loop: the LEGION nodes driving the MuJoCo KUKA plant instead of the robot.

    ros2 launch legion_bringup mujoco_plant.launch.py [task:=reach-v3] [checkpoint:=models/stream-efficient/legion]
        [camera:=true|false] [audio_source:=topic|microphone] [seed:=0]

The mujoco_plant node takes the arm driver's, the gripper's and the RealSense's place with their topics and
action: it publishes the virtual RealSense's images, and the perception node finds the tags on them with the
simulated camera's calibration (``calibration/sim_camera_extrinsics.yaml``). With ``camera:=false`` the plant publishes
the simulator's object positions instead and no perception node runs. Speech listens on ``/legion/audio``
(``audio_source:=microphone``: the default microphone; a machine without one says so on /diagnostics and keeps
listening on the topic). Arm the safety node to move: ``ros2 service call /legion/safety/arm std_srvs/srv/Trigger``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from launch import LaunchDescription  # noqa: E402
from launch.actions import DeclareLaunchArgument  # noqa: E402
from launch.conditions import IfCondition  # noqa: E402
from launch.substitutions import LaunchConfiguration  # noqa: E402

import _legion  # noqa: E402

from legion_sim.camera import sim_tag_map_path  # noqa: E402

NODES = ("speech", "task_sequencer", "embedding", "real2sim", "policy", "sim2real", "safety", "mujoco_plant")


def generate_launch_description() -> LaunchDescription:
    camera = LaunchConfiguration("camera")
    return LaunchDescription([
        *_legion.arguments(),
        DeclareLaunchArgument("task", default_value="reach-v3", description="Meta-World task scene of the plant"),
        DeclareLaunchArgument("seed", default_value="0", description="seed of the plant's object and goal placement"),
        DeclareLaunchArgument("camera", default_value="true", choices=["true", "false"],
                              description="true: objects from the virtual RealSense through AprilTags (perception "
                                          "node); false: the simulator's object positions"),
        DeclareLaunchArgument("audio_source", default_value="topic", choices=["topic", "microphone"],
                              description="speech input: /legion/audio, or the default microphone"),
        *_legion.legion_nodes(NODES, extra={
            "mujoco_plant": {"task": LaunchConfiguration("task"), "camera": camera, "seed": LaunchConfiguration("seed")},
            "speech": {"audio_source": LaunchConfiguration("audio_source")}}),
        *_legion.legion_nodes(("perception",), extra={
            "perception": {"tag_map": sim_tag_map_path(), "calibration": "calibration/sim_camera_extrinsics.yaml"}},
            condition=IfCondition(camera)),
    ])
