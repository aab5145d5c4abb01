"""The one description of the deployment graph: nodes, the topics they use, and their parameters.

The in-process runner records exactly these topics, and the ROS 2 packages (``ros2_ws/``, issue 5)
generate their launch and parameter files from the same table, so the two cannot drift apart.
Topic names follow ROS 2 conventions; the arm-driver topics default to lbr_fri_ros2_stack's
(namespace ``/lbr``, ``/work/shared/docs/robot.md``) and are parameters, never hard-coded elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Topic:
    """A topic of the graph.

    Attributes:
        name: fully qualified ROS 2 topic name.
        msgtype: ROS 2 message type, ``pkg/msg/Name``.
        qos: ``"reliable"`` (keep last 10) or ``"sensor_data"`` (best effort, keep last 5; rclpy's profile).
        description: what flows on it, with units and frame.
    """

    name: str
    msgtype: str
    qos: str
    description: str


@dataclass(frozen=True)
class Node:
    """A node of the graph: the topics it subscribes to and publishes (keys of :data:`TOPICS`) and its parameters."""

    name: str
    subscribes: tuple[str, ...]
    publishes: tuple[str, ...]
    parameters: dict = field(default_factory=dict)


TOPICS: dict[str, Topic] = {
    "command_text": Topic("/legion/command_text", "std_msgs/msg/String", "reliable",
                          "recognised command text (normalised)"),
    "subtask": Topic("/legion/subtask", "std_msgs/msg/String", "reliable",
                     "description of the subtask being executed"),
    "embedding": Topic("/legion/embedding", "std_msgs/msg/Float32MultiArray", "reliable",
                       "language embedding l of the subtask description (384-d MiniLM or 768-d RoBERTa)"),
    "observation": Topic("/legion/observation", "std_msgs/msg/Float32MultiArray", "sensor_data",
                         "12-d observation s_t in the sim frame, m (sim2real.observation.OBS_LAYOUT)"),
    "action": Topic("/legion/action", "std_msgs/msg/Float32MultiArray", "sensor_data",
                    "4-d policy action in [-1, 1]: TCP displacement (1 unit = 1 cm per step) and gripper"),
    "component": Topic("/legion/component", "std_msgs/msg/Int32", "sensor_data",
                       "DPMM component inferred for the current latent z"),
    "cartesian_target": Topic("/legion/cartesian_target", "geometry_msgs/msg/PointStamped", "sensor_data",
                              "TCP position target after the safety filter, m, frame base"),
    "joint_targets": Topic("/lbr/joint_trajectory_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory",
                           "reliable", "arm joint position targets, rad, one point at the control period"),
    "gripper_command": Topic("/legion/gripper_command", "std_msgs/msg/Float64", "reliable",
                             "2F-85 knuckle position target, rad (0 open, 0.7929 closed)"),
    "joint_states": Topic("/lbr/joint_states", "sensor_msgs/msg/JointState", "sensor_data",
                          "measured arm joint positions (rad) and velocities (rad/s)"),
}

NODES: dict[str, Node] = {n.name: n for n in (
    Node("speech", (), ("command_text",), {"backend": "pocketsphinx", "vosk_model_path": "", "sample_rate": 16000}),
    Node("task_sequencer", ("command_text",), ("subtask",), {"task_library": "", "max_steps_per_subtask": 150}),
    Node("embedding", ("subtask",), ("embedding",), {"model_path": ""}),
    Node("real2sim", ("joint_states",), ("observation",), {"base_frame": "base", "sim_frame": "sim"}),
    Node("policy", ("observation", "embedding"), ("action", "component"),
         {"checkpoint": "models/legion-reach-drawer", "rate_hz": 20.0}),
    Node("sim2real", ("action", "joint_states"), ("cartesian_target",), {"action_scale_m": 0.01}),
    Node("safety", ("cartesian_target", "joint_states"), ("joint_targets", "gripper_command"),
         {"max_step_m": 0.02, "start_in_hold": True}),
)}

CONTROL_RATE_HZ = 20.0
MAX_STEPS_PER_SUBTASK = 150


def recorded_topics() -> dict[str, str]:
    """Topic name → message type for every topic of the graph (what the runner writes to its rosbag2)."""
    return {t.name: t.msgtype for t in TOPICS.values()}
