"""The one description of the deployment graph: nodes, topics, services, actions and parameters.

Three things are generated from these tables, so they cannot drift apart:

* the in-process runner records exactly :func:`recorded_topics` in its rosbag2;
* the ROS 2 parameter file ``launch/config/legion.yaml`` (:func:`parameter_file`; a test regenerates it
  and compares);
* every rclpy node in ``ros2_ws/src/legion_nodes`` declares its parameters, publishers, subscriptions
  and services from :data:`NODES` (``legion_nodes/_ros.py``), so a topic name is written once, here.

Topic names follow ROS 2 conventions. The arm-driver topics default to lbr_fri_ros2_stack's (namespace
``/lbr``) and the camera topics to realsense-ros's (``../shared/docs/robot.md``); each node takes every
topic name and frame as a parameter (``topics.<key>``, ``*_frame``), so another driver is a parameter
file away.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sim2real.gripper import KNUCKLE_JOINT


@dataclass(frozen=True)
class Topic:
    """A topic of the graph.

    Attributes:
        name: fully qualified ROS 2 topic name (default; nodes take it as parameter ``topics.<key>``).
        msgtype: ROS 2 message type, ``pkg/msg/Name``.
        qos: ``"reliable"`` (reliable, volatile, keep last 10: rclpy's default for ``10``) or
            ``"sensor_data"`` (best effort, keep last 5: ``rclpy.qos.qos_profile_sensor_data``).
        description: what flows on it, with units and frame.
    """

    name: str
    msgtype: str
    qos: str
    description: str


@dataclass(frozen=True)
class Service:
    """A service a node offers: fully qualified name, ``pkg/srv/Name`` type, what it does."""

    name: str
    srvtype: str
    description: str


@dataclass(frozen=True)
class Action:
    """An action a node calls (client) or serves: fully qualified name, ``pkg/action/Name`` type."""

    name: str
    actiontype: str
    description: str


@dataclass(frozen=True)
class Node:
    """A node of the graph.

    Attributes:
        name: ROS 2 node name (also its section in the parameter file).
        executable: console script of the ``legion_nodes`` package that runs it.
        subscribes, publishes: keys of :data:`TOPICS`.
        parameters: node parameters and their defaults (REP-103 units in the names: ``_m``, ``_rad``, ``_s``,
            ``_hz``); ``topics.<key>`` entries for every topic are added by :func:`node_parameters`.
        services: keys of :data:`SERVICES` the node serves.
        action_clients, action_servers: keys of :data:`ACTIONS`.
    """

    name: str
    executable: str
    subscribes: tuple[str, ...]
    publishes: tuple[str, ...]
    parameters: dict = field(default_factory=dict)
    services: tuple[str, ...] = ()
    action_clients: tuple[str, ...] = ()
    action_servers: tuple[str, ...] = ()


#: The checkpoint the policy node loads unless told otherwise (relative paths: from the project root).
DEFAULT_CHECKPOINT = "models/stream-efficient/legion"

TOPICS: dict[str, Topic] = {
    "audio": Topic("/legion/audio", "std_msgs/msg/Int16MultiArray", "sensor_data",
                   "microphone samples, 16 kHz mono int16 (speech node with audio_source 'topic')"),
    "command_text": Topic("/legion/command_text", "std_msgs/msg/String", "reliable",
                          "recognised command text (normalised)"),
    "subtask": Topic("/legion/subtask", "std_msgs/msg/String", "latched",
                     "description of the subtask being executed (empty: idle)"),
    "task_status": Topic("/legion/task_status", "std_msgs/msg/String", "reliable",
                         "sequencer status as JSON: command, subtask index, outcomes so far, state"),
    "embedding": Topic("/legion/embedding", "std_msgs/msg/Float32MultiArray", "latched",
                       "language embedding l of the subtask description (384-d MiniLM or 768-d RoBERTa)"),
    "image": Topic("/camera/camera/color/image_raw", "sensor_msgs/msg/Image", "sensor_data",
                   "RealSense colour image, bgr8 640 x 480 (realsense-ros)"),
    "camera_info": Topic("/camera/camera/color/camera_info", "sensor_msgs/msg/CameraInfo", "sensor_data",
                         "colour camera intrinsics (realsense-ros)"),
    "object_poses": Topic("/legion/object_poses", "tf2_msgs/msg/TFMessage", "sensor_data",
                          "object poses, m, one transform per tag-map object (child_frame_id = its name: puck, "
                          "goal, drawer_handle, ...), "
                          "header.frame_id = the robot base frame, stamp = detection time"),
    "observation": Topic("/legion/observation", "std_msgs/msg/Float32MultiArray", "sensor_data",
                         "12-d observation s_t in the sim frame, m, in the checkpoint's layout "
                         "(sim2real.observation.OBS_LAYOUTS)"),
    "action": Topic("/legion/action", "std_msgs/msg/Float32MultiArray", "sensor_data",
                    "4-d policy action in [-1, 1]: TCP displacement (1 unit = 1 cm per step) and gripper"),
    "component": Topic("/legion/component", "std_msgs/msg/Int32", "sensor_data",
                       "DPMM component inferred for the current latent z"),
    "cartesian_target": Topic("/legion/cartesian_target", "geometry_msgs/msg/PointStamped", "sensor_data",
                              "TCP position target from the action, m, frame base (before the safety node)"),
    "joint_command": Topic("/legion/joint_command", "trajectory_msgs/msg/JointTrajectory", "reliable",
                           "IK joint targets proposed by sim2real, rad, interpolated to the controller rate"),
    "gripper_request": Topic("/legion/gripper_request", "std_msgs/msg/Float64", "reliable",
                             "2F-85 knuckle position proposed by sim2real, rad (0 open, 0.7929 closed)"),
    "joint_targets": Topic("/lbr/joint_trajectory_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory",
                           "reliable", "arm joint position targets sent to the driver by the safety node, rad"),
    "gripper_command": Topic("/legion/gripper_command", "std_msgs/msg/Float64", "reliable",
                             "2F-85 knuckle position accepted by the safety node, rad (also sent as an action goal)"),
    "joint_states": Topic("/lbr/joint_states", "sensor_msgs/msg/JointState", "sensor_data",
                          "measured arm joint positions (rad) and velocities (rad/s)"),
    "gripper_joint_states": Topic("/joint_states", "sensor_msgs/msg/JointState", "sensor_data",
                                  "measured 2F-85 knuckle (ros2_robotiq_gripper's joint_state_broadcaster: "
                                  "robotiq_85_left_knuckle_joint, rad, 0 open .. 0.7929 closed)"),
    "diagnostics": Topic("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", "reliable",
                         "safety state (HOLD/ARMED/ESTOP) and intervention counters by reason"),
}

SERVICES: dict[str, Service] = {
    "arm": Service("/legion/safety/arm", "std_srvs/srv/Trigger", "leave HOLD (or a latched e-stop) and forward commands"),
    "hold": Service("/legion/safety/hold", "std_srvs/srv/Trigger", "stop forwarding commands; hold the measured posture"),
    "estop": Service("/legion/safety/estop", "std_srvs/srv/Trigger", "latched stop; only `arm` releases it"),
    "plant_reset": Service("/mujoco_plant/reset", "std_srvs/srv/Trigger",
                           "MuJoCo-in-the-loop only: a new object and goal placement, the arm back at its start "
                           "posture (the safety node latches that jump as a sensor fault: hold, reset, then arm)"),
}

ACTIONS: dict[str, Action] = {
    "gripper": Action("/robotiq_gripper_controller/gripper_cmd", "control_msgs/action/GripperCommand",
                      "Robotiq 2F-85 (ros2_robotiq_gripper; ParallelGripperCommand on Jazzy+: parameter)"),
}

NODES: dict[str, Node] = {n.name: n for n in (
    Node("speech", "speech_node", ("audio",), ("command_text", "diagnostics"),
         {"backend": "pocketsphinx", "vosk_model_path": "", "use_grammar": True, "audio_source": "microphone",
          "sample_rate_hz": 16000, "utterance_s": 3.0}),
    Node("task_sequencer", "task_sequencer_node", ("command_text", "observation"), ("subtask", "task_status"),
         {"task_library": "", "max_steps_per_subtask": 150, "order": "spoken", "retries": 2, "control_rate_hz": 20.0,
          "attempt_time_margin_s": 1.0, "match_free_wording": True, "embedding_model_path": ""}),
    Node("embedding", "embedding_node", ("subtask",), ("embedding",), {"model_path": ""}),
    Node("perception", "perception_node", ("image", "camera_info"), ("object_poses",),
         {"tag_map": "", "calibration": "", "base_frame": "base", "camera_frame": "camera_color_optical_frame",
          "max_age_s": 0.15, "quad_decimate": 1.0, "full_frame_every": 5, "camera_source": "topics",
          "realsense_serial": "", "realsense_recording": "", "rate_hz": 30.0}),
    # decimate 1.0: the whole frame 25 ms on one core; windows around the tags seen last ~2 ms (bench_perception)
    # checkpoint: the one the policy node loads; its manifest names the observation layout real2sim builds
    Node("real2sim", "real2sim_node", ("joint_states", "gripper_joint_states", "object_poses", "subtask"),
         ("observation",),
         {"driver": "lbr_fri_ros2_stack", "base_frame": "base", "max_object_age_s": 0.15, "max_goal_age_s": 30.0,
          "task_library": "", "checkpoint": DEFAULT_CHECKPOINT, "gripper_joint": KNUCKLE_JOINT,
          "max_gripper_age_s": 0.1}),
    Node("policy", "policy_node", ("observation", "embedding", "subtask"), ("action", "component"),
         {"checkpoint": DEFAULT_CHECKPOINT, "rate_hz": 20.0, "max_steps_per_subtask": 150,
          "max_observation_age_s": 0.1, "explore_retries": True}),
    Node("sim2real", "sim2real_node", ("action", "joint_states", "subtask"),
         ("cartesian_target", "joint_command", "gripper_request"),
         {"driver": "lbr_fri_ros2_stack", "base_frame": "base", "policy_rate_hz": 20.0}),
    Node("safety", "safety_node", ("joint_command", "gripper_request", "joint_states"),
         ("joint_targets", "gripper_command", "diagnostics"),
         {"driver": "lbr_fri_ros2_stack", "max_step_m": 0.025, "start_in_hold": True, "watchdog_s": 0.1,
          "gripper_action": "GripperCommand", "gripper_max_effort": 50.0},
         services=("arm", "hold", "estop"), action_clients=("gripper",)),
    Node("mujoco_plant", "mujoco_plant_node", ("joint_targets",),
         ("joint_states", "gripper_joint_states", "object_poses", "image", "camera_info"),
         {"driver": "lbr_fri_ros2_stack", "task": "reach-v3", "seed": 0, "base_frame": "base", "camera": False,
          "camera_frame": "camera_color_optical_frame", "camera_rate_hz": 15.0},  # a D435 colour mode: 6, 15, 30 fps
         services=("plant_reset",), action_servers=("gripper",)),
)}

#: Nodes of the deployment itself (the plant stands in for the robot's drivers and camera).
DEPLOYMENT_NODES = ("speech", "task_sequencer", "embedding", "perception", "real2sim", "policy", "sim2real", "safety")

#: Nodes that the launch files run in one process, on one executor (ROS 2 composition; launch argument
#: ``compose``): console script -> the nodes it runs. Composed, the chain from joint state to joint command
#: (real2sim -> policy -> sim2real) never leaves the process: one wake-up instead of three cross-process hops. The
#: safety node stays apart, the one process between the learned part and the arm: when the chain's process dies or
#: is restarted (``ros2 run legion_nodes control_chain_node``: a new checkpoint, a crash) it forwards nothing and
#: holds, armed.
COMPOSED: dict[str, tuple[str, ...]] = {"control_chain_node": ("real2sim", "policy", "sim2real")}

CONTROL_RATE_HZ = 20.0
MAX_STEPS_PER_SUBTASK = 150


def node_parameters(node: Node) -> dict:
    """Every parameter of ``node`` with its default: its own, then ``topics.<key>`` for each topic it uses."""
    topics = {f"topics.{key}": TOPICS[key].name for key in (*node.subscribes, *node.publishes)}
    return {**node.parameters, **topics}


def parameter_file(nodes: tuple[str, ...] | None = None) -> dict:
    """The ROS 2 parameter file (``<node>: {ros__parameters: {...}}``) of ``nodes`` (default: all).

    Dotted names are nested as ROS 2 parameter files write them: ``topics.action`` is ``topics: {action: ...}``.
    """
    def nested(flat: dict) -> dict:
        tree: dict = {}
        for name, value in flat.items():
            *parents, leaf = name.split(".")
            node = tree
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        return tree

    return {name: {"ros__parameters": nested(node_parameters(NODES[name]))} for name in (nodes or tuple(NODES))}


def driver_parameter_file(name: str) -> dict:
    """Overrides for arm driver ``name`` (``sim2real.drivers.DRIVERS``): its topics and the ``driver`` parameter.

    Raises:
        ValueError: unknown driver.
    """
    from sim2real.drivers import driver

    d = driver(name)
    topics = {"joint_states": d.joint_states_topic, "joint_targets": d.joint_trajectory_topic}
    out = {}
    for node in NODES.values():
        params: dict = {}
        if "driver" in node.parameters:
            params["driver"] = d.name
        used = {k: v for k, v in topics.items() if k in (*node.subscribes, *node.publishes)}
        if used:
            params["topics"] = used
        if params:
            out[node.name] = {"ros__parameters": params}
    return out


_HEADER = "# Generated from legion_runtime/graph.py by `legion ros-params`: edit the graph, not this file.\n"


def parameter_file_text() -> str:
    """:func:`parameter_file` as the YAML text of ``launch/config/legion.yaml`` (with a do-not-edit header)."""
    import yaml

    return _HEADER + yaml.safe_dump(parameter_file(), sort_keys=False, default_flow_style=False)


def parameter_files() -> dict[str, str]:
    """File name (in ``launch/config/``) -> YAML text: ``legion.yaml`` and one ``<driver>.yaml`` per arm driver."""
    import yaml

    from sim2real.drivers import DRIVERS

    files = {"legion.yaml": parameter_file_text()}
    for name in DRIVERS:
        files[f"{name}.yaml"] = (_HEADER + f"# Applied after legion.yaml when the launch argument driver:={name}.\n"
                                 + yaml.safe_dump(driver_parameter_file(name), sort_keys=False))
    return files


def recorded_topics() -> dict[str, str]:
    """Topic name → message type for every topic the in-process runner records (its rosbag2)."""
    keys = ("command_text", "subtask", "embedding", "observation", "action", "component", "cartesian_target",
            "joint_targets", "gripper_command", "joint_states", "diagnostics")
    return {TOPICS[k].name: TOPICS[k].msgtype for k in keys}
