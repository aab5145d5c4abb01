"""The rclpy node files of ros2_ws/src/legion_nodes, run against a test double of rclpy (tests/ros2_double).

What is real: every message (CDR bytes from rosbags' ROS 2 Jazzy definitions), the node logic
(checkpoint, language model, speech recogniser, kinematics, safety filter, MuJoCo plant) and the
parameter file. What is doubled: rclpy's node plumbing (no ROS 2 on this machine). Each node's declared
interface is checked against the graph description and ``launch/config/legion.yaml``, and the nodes are
wired into one closed loop through an in-test bus that routes the bytes they publish by topic name.
"""
import sys

import numpy as np
import pytest
import yaml
from ros_graph import CHECKPOINT, ROOT, Bus, call, deliver, make, sent

import rclpy.node  # noqa: E402  (the test double, on sys.path through ros_graph)
from rclpy.action import ServerGoalHandle  # noqa: E402
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from legion_runtime import graph  # noqa: E402
from legion_runtime import messages as m  # noqa: E402

PARAMS_FILE = ROOT / "launch" / "config" / "legion.yaml"


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.fixture(scope="module")
def parameter_file():
    return yaml.safe_load(PARAMS_FILE.read_text())


def test_parameter_files_are_the_graphs():
    for name, text in graph.parameter_files().items():
        assert (PARAMS_FILE.parent / name).read_text() == text, f"{name}: run `legion ros-params` after editing the graph"


PERCEPTION = {"tag_map": str(ROOT / "tests/data/perception/tag_map.yaml"),
              "calibration": str(ROOT / "tests/data/perception/camera_extrinsics.yaml")}
NODE_ARGS = {"policy": {"checkpoint": CHECKPOINT}, "speech": {"audio_source": "topic"}, "perception": PERCEPTION}


@pytest.mark.parametrize("key", list(graph.NODES))
def test_node_declares_what_the_graph_and_parameter_file_say(key, parameter_file):
    node = make(key, **NODE_ARGS.get(key, {}))
    spec = graph.NODES[key]
    assert node.get_name() == spec.name
    assert set(node.parameters) == set(flatten(parameter_file[key]["ros__parameters"])) == set(graph.node_parameters(spec))
    for name, value in flatten(parameter_file[key]["ros__parameters"]).items():
        if name not in NODE_ARGS.get(key, {}):
            assert node.param(name) == value, name
    published = {(p.topic, p.msg_type.ros_type, (p.qos.reliability, p.qos.durability)) for p in node.declared_publishers}
    subscribed = {(s.topic, s.msg_type.ros_type, (s.qos.reliability, s.qos.durability), s.raw) for s in node.subscriptions_}

    def reliability(t):  # and durability: "latched" topics keep their last message for late joiners
        return (ReliabilityPolicy.BEST_EFFORT if t.qos == "sensor_data" else ReliabilityPolicy.RELIABLE,
                DurabilityPolicy.TRANSIENT_LOCAL if t.qos == "latched" else DurabilityPolicy.VOLATILE)

    assert published == {(graph.TOPICS[k].name, graph.TOPICS[k].msgtype, reliability(graph.TOPICS[k])) for k in spec.publishes}
    expected_subs = set(spec.subscribes) - ({"audio"} if key == "speech" and node.param("audio_source") != "topic" else set())
    assert subscribed == {(graph.TOPICS[k].name, graph.TOPICS[k].msgtype, reliability(graph.TOPICS[k]), True)
                          for k in expected_subs}
    assert {(s.name, s.srv_type.ros_type) for s in node.services_} == \
        {(graph.SERVICES[k].name, graph.SERVICES[k].srvtype) for k in spec.services}
    assert {(a.action_name, a.action_type.ros_type) for a in node.action_clients} == \
        {(graph.ACTIONS[k].name, graph.ACTIONS[k].actiontype) for k in spec.action_clients}
    assert {(a.action_name, a.action_type.ros_type) for a in node.action_servers} == \
        {(graph.ACTIONS[k].name, graph.ACTIONS[k].actiontype) for k in spec.action_servers}


def test_topic_names_come_from_parameters():
    node = make("embedding", **{"topics.embedding": "/robot2/embedding"})
    assert [p.topic for p in node.declared_publishers] == ["/robot2/embedding"]


def test_speech_node_hears_a_spoken_command_on_the_audio_topic():
    from legion_policy.speech import read_wav

    node = make("speech", audio_source="topic", utterance_s=2.0)
    pcm = read_wav(ROOT / "legion_policy" / "data" / "commands" / "reach_the_goal.wav")
    pcm = np.concatenate([pcm, np.zeros(32000 - len(pcm) % 32000, np.int16)])
    for chunk in np.array_split(pcm, 8):  # audio arrives in pieces
        deliver(node, "audio", m.audio_to_msg(chunk))
    assert [msg.data for msg in sent(node, "command_text")] == ["reach the goal"]
    deliver(node, "audio", m.audio_to_msg(np.zeros(32000, np.int16)))  # silence: nothing published
    assert len(sent(node, "command_text")) == 1


def test_embedding_node_embeds_the_subtask_description():
    from legion_policy.embedding import TextEmbedder

    node = make("embedding")
    deliver(node, "subtask", m.command_to_msg("reach the goal"))
    deliver(node, "subtask", m.text_to_msg(""))  # idle: nothing
    (msg,) = sent(node, "embedding")
    np.testing.assert_allclose(m.embedding_from_msg(msg), TextEmbedder().embed(["reach the goal"])[0], atol=1e-6)


def real2sim_beside_a_plant():
    """A real2sim node and a MuJoCo plant node that has published one cycle (at 10 s): (node, plant, poses,
    joints), the object poses already delivered to real2sim."""
    node = make("real2sim")
    plant = make("mujoco_plant")
    plant.get_clock().set(10.0)
    plant.on_timer()
    (poses,) = sent(plant, "object_poses")
    (joints,) = sent(plant, "joint_states")
    deliver(node, "object_poses", poses)
    return node, plant, poses, joints


def test_real2sim_node_never_reuses_a_stale_object_pose():
    node, plant, poses, joints = real2sim_beside_a_plant()
    deliver(node, "joint_states", joints)
    assert sent(node, "observation") == [], "no subtask yet: nothing to observe"
    deliver(node, "subtask", m.command_to_msg("reach the goal"))
    deliver(node, "joint_states", joints)
    (obs_msg,) = sent(node, "observation")
    q, _ = plant.plant.joint_state()
    from legion_runtime.main_job import make_chain

    expected = make_chain(plant.plant.frame)[0].observation(q, plant.plant.object_position(), plant.plant.goal_position())
    np.testing.assert_allclose(m.observation_from_msg(obs_msg), expected, atol=1e-5)
    late = m.joint_state_to_msg(list(plant.driver.joint_names), q, np.zeros(7), stamp=10.0 + 0.6)  # pose 0.6 s old
    deliver(node, "joint_states", late)
    assert len(sent(node, "observation")) == 1
    assert any("'puck' not seen (stale ['goal', 'puck'])" in text for _, text in node.get_logger().records)


def test_camera_chain_plant_image_to_perception_to_real2sim_matches_the_simulator():
    """mujoco_plant (virtual RealSense image + camera_info) -> perception (tags) -> real2sim: the observation
    built from detections matches the one from the simulator's positions within 1 cm."""
    from legion_runtime.main_job import make_chain
    from legion_runtime.sim_perception import SIM_CALIBRATION
    from legion_sim.camera import sim_tag_map_path

    for task, command in (("reach-v3", "reach the goal"), ("drawer-close-v3", "close the drawer")):
        plant = make("mujoco_plant", camera=True, task=task, seed=1)
        perception = make("perception", tag_map=sim_tag_map_path(), calibration=str(SIM_CALIBRATION))
        real2sim = make("real2sim")
        deliver(real2sim, "subtask", m.command_to_msg(command))
        plant.get_clock().set(5.0)
        plant.on_timer()
        assert sent(plant, "object_poses") == []
        (info,), (image,), (joints,) = sent(plant, "camera_info"), sent(plant, "image"), sent(plant, "joint_states")
        deliver(perception, "camera_info", info)
        deliver(perception, "image", image)
        (poses,) = sent(perception, "object_poses")
        deliver(real2sim, "object_poses", poses)
        deliver(real2sim, "joint_states", joints)
        (obs,) = sent(real2sim, "observation")
        q = plant.plant.joint_state()[0]
        truth = make_chain(plant.plant.frame)[0].observation(q, plant.plant.object_position(), plant.plant.goal_position())
        error = np.abs(m.observation_from_msg(obs) - truth).max()
        print(task, f"largest observation error through the camera {error * 1e3:.1f} mm")
        assert error < 0.01


def test_the_graph_reaches_the_goal_only_after_the_safety_node_is_armed():
    """plant -> real2sim -> policy -> sim2real -> safety -> plant, 20 Hz in lockstep, through CDR bytes."""
    plant = make("mujoco_plant", seed=3)
    nodes = [plant, make("real2sim"), make("policy", checkpoint=CHECKPOINT), make("sim2real"), make("safety")]
    policy, safety = nodes[2], nodes[4]
    bus = Bus(nodes)
    from legion_policy.embedding import TextEmbedder

    subtask = m.command_to_msg("reach the goal")
    for node in nodes[1:4]:
        if any(s.topic == graph.TOPICS["subtask"].name for s in node.subscriptions_):
            deliver(node, "subtask", subtask)
    deliver(policy, "embedding", m.embedding_to_msg(TextEmbedder().embed(["reach the goal"])[0]))

    def cycle(i):
        t = i * plant.plant.dt
        for node in nodes:
            node.get_clock().set(t)
        plant.on_timer()
        bus.pump()
        policy.on_timer()
        bus.pump()

    q0 = plant.plant.joint_state()[0]
    for i in range(5):
        cycle(i)
    assert sent(safety, "joint_targets") == [], "HOLD: nothing reaches the driver before arm"
    np.testing.assert_allclose(plant.plant.joint_state()[0], q0, atol=2e-3)
    assert safety.supervisor.counters.get("not_armed_hold", 0) >= 4
    response = call(safety, "arm")
    assert response.success, response.message
    for i in range(5, 155):
        cycle(i)
        if plant.plant.success():
            break
    assert plant.plant.success(), f"not reached after {i - 4} armed steps"
    targets = sent(safety, "joint_targets")
    assert targets and targets[0].joint_names == [f"lbr_A{k}" for k in range(1, 8)]
    safety.publish_diagnostics()
    (diag,) = sent(safety, "diagnostics")
    assert m.diagnostics_from_msg(diag)[0][:3] == ("legion: safety", m.DIAG_OK, "ARMED")


def test_safety_node_estop_latches_and_stale_joint_states_stop_forwarding():
    safety = make("safety")
    q = make("mujoco_plant").plant.joint_state()[0]  # the home posture above the table
    names = [f"lbr_A{k}" for k in range(1, 8)]
    assert not call(safety, "arm").success  # no joint states yet
    safety.get_clock().set(1.0)
    deliver(safety, "joint_states", m.joint_state_to_msg(names, q, q, stamp=1.0))
    assert call(safety, "arm").success
    command = m.joint_trajectory_to_msg(q + 0.002, names, 1.0, 0.05)
    deliver(safety, "joint_command", command)
    assert len(sent(safety, "joint_targets")) == 1
    assert call(safety, "estop").success and call(safety, "hold").message.startswith("e-stop is latched")
    deliver(safety, "joint_command", command)
    assert len(sent(safety, "joint_targets")) == 1, "nothing passes a latched e-stop"
    assert call(safety, "arm").success
    safety.get_clock().set(1.5)  # joint states now 0.5 s old: the watchdog forwards nothing
    fresh_command = m.joint_trajectory_to_msg(q + 0.002, names, 1.5, 0.05)
    deliver(safety, "joint_command", fresh_command)
    assert len(sent(safety, "joint_targets")) == 1 and safety.supervisor.counters["stale_joint_states"] == 1
    deliver(safety, "joint_states", m.joint_state_to_msg(names, q, q, stamp=1.3))  # arriving 200 ms late: stale
    deliver(safety, "joint_command", fresh_command)
    assert len(sent(safety, "joint_targets")) == 1 and safety.supervisor.counters["stale_joint_states"] == 2
    deliver(safety, "joint_command", command)  # made at 1.0 s, arriving at 1.5 s: refused
    assert safety.supervisor.counters["stale_command"] == 1
    deliver(safety, "joint_states", m.joint_state_to_msg(names, q, q, stamp=1.5))
    deliver(safety, "joint_command", fresh_command)
    assert len(sent(safety, "joint_targets")) == 2, "forwarding resumes when joint states are fresh"
    wrong_names = m.joint_trajectory_to_msg(q + 0.002, [f"joint_a{k}" for k in range(1, 8)], 1.5, 0.05)
    deliver(safety, "joint_command", wrong_names)  # another driver's joint names: refused, not guessed
    assert len(sent(safety, "joint_targets")) == 2
    bad = m.joint_trajectory_to_msg(q + 3.0, names, 1.5, 0.05)  # beyond the position limits of A2, A4, A6
    deliver(safety, "joint_command", bad)
    (_, last) = sent(safety, "joint_targets")[-2:]
    q_sent, *_ = m.joint_trajectory_from_msg(last)
    from sim2real.safety import SafetyLimits

    lim = SafetyLimits.iiwa14(np.full(3, -1.0), np.full(3, 1.0))
    assert np.all(q_sent <= lim.joint_position_max) and np.all(q_sent >= lim.joint_position_min)


@pytest.mark.parametrize("kind", ["GripperCommand", "ParallelGripperCommand"])
def test_safety_node_sends_gripper_goals_only_when_armed(kind):
    safety = make("safety", gripper_action=kind)
    names = [f"lbr_A{k}" for k in range(1, 8)]
    deliver(safety, "gripper_request", m.gripper_command_to_msg(0.79))
    (client,) = safety.action_clients
    assert client.goals == []
    deliver(safety, "joint_states", m.joint_state_to_msg(names, np.zeros(7), np.zeros(7), stamp=0.0))
    assert call(safety, "arm").success
    deliver(safety, "gripper_request", m.gripper_command_to_msg(0.79))
    (goal,) = client.goals
    if kind == "GripperCommand":
        assert (goal.command.position, goal.command.max_effort) == (0.79, 50.0)
    else:
        assert (goal.command.name, goal.command.position) == (["robotiq_85_left_knuckle_joint"], [0.79])
    assert [msg.data for msg in sent(safety, "gripper_command")] == [0.79]


def test_plant_node_serves_the_gripper_action():
    plant = make("mujoco_plant")
    (server,) = plant.action_servers
    from control_msgs.action import GripperCommand

    goal = GripperCommand.Goal()
    goal.command.position = m.GRIPPER_CLOSED_RAD
    handle = ServerGoalHandle(goal)
    result = server.execute_callback(handle)
    assert handle.status == "succeeded" and result.reached_goal and plant.gripper == pytest.approx(1.0)


def test_task_sequencer_node_runs_a_long_horizon_command_subtask_by_subtask():
    import json

    node = make("task_sequencer", max_steps_per_subtask=3, retries=1)
    deliver(node, "command_text", m.command_to_msg("make me a sandwich"))
    (status,) = [json.loads(msg.data) for msg in sent(node, "task_status")]
    assert status["state"] == "unknown task" and "reach the goal" in status["known"]
    assert sent(node, "subtask") == [], "an unknown command starts nothing"

    deliver(node, "command_text", m.command_to_msg("close the drawer then reach the goal"))  # spoken order
    far = np.zeros(12, np.float32)
    far[3:6] = [0.0, 0.5, 0.2]  # drawer handle 0.3 m from its goal: the drawer is open
    far[9:12] = [0.0, 0.8, 0.2]  # goal 0.8 m from the hand
    for _ in range(3):
        deliver(node, "observation", m.observation_to_msg(far))  # drawer-close, attempt 1 fails at 3 steps
    closed = far.copy()
    closed[3:6] = far[9:12] + [0.0, 0.0, 0.05]  # handle 5 cm from the goal: within drawer-close's 6.5 cm
    deliver(node, "observation", m.observation_to_msg(closed))  # attempt 2 succeeds at once
    near = far.copy()
    # the ee point 5.5 cm above the goal: the TCP, 4.5 cm below the ee point, is 1 cm from it, so reach succeeds
    # (judged on the ee point itself it would be 5.5 cm, past reach's 5 cm)
    near[0:3] = far[9:12] + [0.0, 0.0, 0.055]
    for _ in range(3):
        deliver(node, "observation", m.observation_to_msg(far))  # reach, attempt 1 fails at 3 steps -> retry
    deliver(node, "observation", m.observation_to_msg(near))  # attempt 2 succeeds at once
    subtasks = [msg.data for msg in sent(node, "subtask")]
    assert subtasks == ["close the drawer", "close the drawer", "reach the goal", "reach the goal", ""]
    final = json.loads(sent(node, "task_status")[-1].data)
    assert final["state"] == "done" and final["order"] == "spoken"
    assert [(a["subtask"], a["steps"], a["success"]) for a in final["attempts"]] == \
        [("drawer-close", 3, False), ("drawer-close", 1, True), ("reach", 3, False), ("reach", 1, True)]


def test_safety_node_refuses_a_joint_command_whose_tcp_leaves_the_workspace_or_jumps():
    plant = make("mujoco_plant")
    safety = make("safety")
    q, qd = plant.plant.joint_state()
    names = list(plant.driver.joint_names)
    deliver(safety, "joint_states", m.joint_state_to_msg(names, q, qd, stamp=0.0))
    assert call(safety, "arm").success
    fk = safety.real2sim.kinematics.forward_kinematics
    step = q.copy()
    step[1] += 0.004  # a few mm at the TCP: forwarded
    deliver(safety, "joint_command", m.joint_trajectory_to_msg(step, names, 0.0, 0.05))
    assert len(sent(safety, "joint_targets")) == 1
    jump = step.copy()
    jump[0] += 0.2  # 0.2 rad in 0.5 s: inside the joint position and velocity limits
    deliver(safety, "joint_command", m.joint_trajectory_to_msg(jump, names, 0.0, 0.5))
    moved = np.linalg.norm(fk(jump)[0] - fk(step)[0])
    assert moved > 0.025 and len(sent(safety, "joint_targets")) == 1, f"a {moved:.3f} m TCP jump was forwarded"
    assert any(k.startswith("cartesian_") for k in safety.supervisor.counters)


def test_perception_node_turns_a_camera_image_into_base_frame_object_poses():
    sys.path.insert(0, str(ROOT / "tests"))
    from tag_images import D435, facing_camera, render

    from sim2real.perception import load_extrinsics

    node = make("perception", **PERCEPTION)
    frame = node.param("camera_frame")
    R, t_obj, t_goal = facing_camera(0.2, 0.3), np.array([-0.1, 0.05, 0.8]), np.array([0.15, 0.0, 1.0])
    gray = render([(3, 0.06, R, t_obj), (8, 0.06, R, t_goal)])
    image = m.image_to_msg(np.repeat(gray[:, :, None], 3, axis=2), "bgr8", 5.0, frame)
    deliver(node, "image", image)  # before camera_info: skipped
    assert sent(node, "object_poses") == []
    deliver(node, "camera_info", m.camera_info_to_msg(D435.fx, D435.fy, D435.cx, D435.cy, 640, 480, 5.0, frame))
    deliver(node, "image", image)
    (msg,) = sent(node, "object_poses")
    poses = m.object_poses_from_msg(msg)
    T = load_extrinsics(PERCEPTION["calibration"])
    for name, p_cam in (("object", R @ np.array([0, 0, 0.02]) + t_obj), ("goal", t_goal)):
        position, stamp, base = poses[name]
        np.testing.assert_allclose(position, T[:3, :3] @ p_cam + T[:3, 3], atol=0.006)
        assert (stamp, base) == (5.0, "base")
    deliver(node, "image", m.image_to_msg(np.full((480, 640, 3), 100, np.uint8), "bgr8", 5.7, frame))  # tags gone
    assert len(sent(node, "object_poses")) == 1, "stale poses are not published"


def test_perception_node_without_a_calibration_says_what_to_set():
    from sim2real.perception import PerceptionError

    with pytest.raises(PerceptionError, match="parameter calibration is empty"):
        make("perception", tag_map=PERCEPTION["tag_map"])



def test_perception_node_reads_a_realsense_recording_through_pyrealsense2():
    sys.path.insert(0, str(ROOT / "tests"))
    from realsense_cases import run_isolated

    run_isolated("perception_node_reads_a_recording")


def test_mujoco_plant_node_runs_the_table_scene_and_publishes_all_its_objects():
    node = make("real2sim")
    plant = make("mujoco_plant", task="table", seed=2)
    plant.get_clock().set(5.0)
    plant.on_timer()
    (poses,) = sent(plant, "object_poses")
    (joints,) = sent(plant, "joint_states")
    names = {"push_puck", "place_puck", "drawer_handle", "button", "peg", "window_handle", "faucet_handle",
             "push_goal", "place_goal"}
    assert set(m.object_poses_from_msg(poses)) == names
    deliver(node, "object_poses", poses)
    deliver(node, "subtask", m.command_to_msg("press the button"))
    deliver(node, "joint_states", joints)
    (obs_msg,) = sent(node, "observation")
    obs = m.observation_from_msg(obs_msg)
    np.testing.assert_allclose(obs[3:6], plant.plant.objects()["button"], atol=1e-5)  # the button, sim frame
    from legion_policy.tasks import load_task_library

    rule = load_task_library().by_env_id("button-press-topdown-v3").goal_rule
    np.testing.assert_allclose(obs[9:12], rule.goal(plant.plant.objects()), atol=1e-5)


def test_real2sim_goes_idle_on_the_blank_subtask_and_serves_the_next_command():
    """Issue 16.3: real2sim read the idle subtask "" with command_from_msg, which raises: it died at the end of every
    command, and no second command ever completed."""
    node, _, _, joints = real2sim_beside_a_plant()
    deliver(node, "subtask", m.command_to_msg("reach the goal"))
    deliver(node, "joint_states", joints)
    assert len(sent(node, "observation")) == 1
    deliver(node, "subtask", m.text_to_msg(""))  # the sequencer's "no subtask": the command ended
    deliver(node, "joint_states", joints)
    assert len(sent(node, "observation")) == 1, "idle: nothing to observe"
    deliver(node, "subtask", m.command_to_msg("reach the goal"))  # the next command
    deliver(node, "joint_states", joints)
    assert len(sent(node, "observation")) == 2


def test_task_sequencer_refuses_a_blank_command_with_a_status_and_keeps_serving():
    import json

    node = make("task_sequencer", max_steps_per_subtask=3, retries=1)
    deliver(node, "command_text", m.text_to_msg("   "))
    (status,) = [json.loads(msg.data) for msg in sent(node, "task_status")]
    assert status["state"] == "blank command" and sent(node, "subtask") == []
    deliver(node, "command_text", m.command_to_msg("reach the goal"))
    assert [msg.data for msg in sent(node, "subtask")] == ["reach the goal"]


def test_speech_node_without_a_microphone_says_so_and_keeps_serving_the_audio_topic():
    """Issue 16.2: with audio_source: microphone the speech node died on a machine without one ("PortAudio library
    not found", then "Error querying device -1"). This machine has PortAudio (libportaudio2, from scripts/setup.sh)
    and no input device: the real sounddevice is asked and refuses."""
    from legion_policy.speech import read_wav
    from legion_runtime.messages import diagnostics_from_msg

    node = make("speech", audio_source="microphone", utterance_s=2.0)
    ((name, level, message, _),) = diagnostics_from_msg(sent(node, "diagnostics")[0])
    assert name == "legion: speech" and level == m.DIAG_WARN
    assert message.startswith("no microphone:") and "listening on /legion/audio only" in message, message
    pcm = read_wav(ROOT / "legion_policy" / "data" / "commands" / "reach_the_goal.wav")
    pcm = np.concatenate([pcm, np.zeros(32000 - len(pcm) % 32000, np.int16)])
    deliver(node, "audio", m.audio_to_msg(pcm))
    assert [msg.data for msg in sent(node, "command_text")] == ["reach the goal"]


def test_policy_and_perception_nodes_find_the_shipped_files_from_any_directory(tmp_path, monkeypatch):
    """Issue 16.5: launched from outside the repository, the policy died with "no checkpoint folder at
    models/legion-reach-drawer" and perception with "cannot read calibration calibration/sim_camera_extrinsics.yaml":
    the defaults name repository files relative to the repository, not to the working directory."""
    monkeypatch.chdir(tmp_path)
    policy = make("policy", checkpoint="models/legion-reach-drawer")
    assert policy.policy.manifest["task_library"]["subtasks"]["reach"]["env_id"] == "reach-v3"
    from legion_sim.camera import sim_tag_map_path

    perception = make("perception", tag_map=sim_tag_map_path(), calibration="calibration/sim_camera_extrinsics.yaml")
    assert perception.tracker is not None


def test_task_sequencer_ends_an_attempt_whose_observations_stopped_when_its_time_is_up():
    """Issue 16.4: with the camera in the loop the policy sometimes waited, no observation came, and the sequencer,
    which counts steps on observations, kept the status "running" forever."""
    import json

    node = make("task_sequencer", max_steps_per_subtask=150, retries=0)
    node.get_clock().set(100.0)
    deliver(node, "command_text", m.command_to_msg("reach the goal"))
    far = np.zeros(12, np.float32)
    far[9:12] = [0.0, 0.8, 0.2]
    node.check_time_limit()  # the attempt's clock starts
    for _ in range(40):
        deliver(node, "observation", m.observation_to_msg(far))  # 40 steps, then the observations stop
    node.get_clock().set(100.0 + 8.4)
    node.check_time_limit()
    assert json.loads(sent(node, "task_status")[-1].data)["state"] == "running", "8.4 s < 150 / 20 Hz + 1 s"
    node.get_clock().set(100.0 + 8.6)
    node.check_time_limit()
    final = json.loads(sent(node, "task_status")[-1].data)
    assert final["state"] == "done" and final["success"] is False
    assert final["subtasks"][0]["why"] == "time limit 8.5 s: 40 of 150 steps observed"
    assert sent(node, "subtask")[-1].data == ""


def test_policy_node_acts_on_a_retry_of_the_same_subtask():
    """On the real ROS 2 graph the policy never acted again after the first attempt: a retry republishes the same
    description, the embedding node answers at once, and the policy's subtask callback then wiped that embedding."""
    node = make("policy", checkpoint=CHECKPOINT)
    from legion_policy.embedding import TextEmbedder

    embedding = m.embedding_to_msg(TextEmbedder().embed("reach the goal"))
    obs = m.observation_to_msg(np.array([0, 0.6, 0.2, 0, 0.7, 0.02, 0, 0, 0, 0, 0.8, 0.2], np.float32))
    node.get_clock().set(5.0)
    deliver(node, "subtask", m.command_to_msg("reach the goal"))
    deliver(node, "embedding", embedding)
    deliver(node, "observation", obs)
    node.on_timer()
    assert len(sent(node, "action")) == 1
    deliver(node, "embedding", embedding)  # the retry: the embedding node answered before the policy saw the subtask
    deliver(node, "subtask", m.command_to_msg("reach the goal"))
    deliver(node, "observation", obs)
    node.on_timer()
    assert len(sent(node, "action")) == 2
