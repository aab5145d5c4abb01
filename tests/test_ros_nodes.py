"""The rclpy node files of ros2_ws/src/legion_nodes on the real rclpy (ROS 2 Jazzy, Cyclone DDS), in-process.

Each test builds the nodes it needs from their files in one rclpy context (tests/ros_graph.py): parameters as a
launch file overrides them, ROS time from ``/clock`` (the nodes' own timers fire as it advances), and every message
over DDS as the CDR bytes the nodes publish (rosbags' ROS 2 Jazzy definitions). Each node's interface, as the ROS
graph reports it, is checked against the graph description and ``launch/config/legion.yaml``; the nodes are wired
into one closed loop with the MuJoCo plant; services and the gripper action are called through real clients and
servers. Without ROS 2 (rclpy) the module is skipped (tests/ros_graph.py says why); the whole launch on a real ROS 2
is tests/test_ros2_real.py, the generated parameter files are checked in tests/test_ros_packages.py.
"""
import math
import shutil
import sys

import numpy as np
import pytest
import ros_graph
import yaml
from ros_graph import CHECKPOINT, RCLPY_PARAMETERS, ROOT

from legion_runtime import graph
from legion_runtime import messages as m

ros_graph.require("rclpy")  # skips the module without ROS 2
PARAMS_FILE = ROOT / "launch" / "config" / "legion.yaml"


@pytest.fixture
def ros():
    """A fresh rclpy context and harness per test (tests/ros_graph.py)."""
    with ros_graph.Graph() as g:
        yield g


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


PERCEPTION = {"tag_map": str(ROOT / "tests/data/perception/tag_map.yaml"),
              "calibration": str(ROOT / "tests/data/perception/camera_extrinsics.yaml")}
NODE_ARGS = {"policy": {"checkpoint": CHECKPOINT}, "speech": {"audio_source": "topic"}, "perception": PERCEPTION}


#: what every rclpy node has besides the graph's endpoints: its log and parameter events, ROS time (use_sim_time),
#: its parameter and type-description services (``/<node>/<name>``)
RCLPY_TOPICS = {"/rosout", "/parameter_events", "/clock"}
RCLPY_SERVICES = {"describe_parameters", "get_parameter_types", "get_parameters", "list_parameters", "set_parameters",
                  "set_parameters_atomically", "get_type_description"}


def graph_interface(ros, node) -> dict:
    """``node``'s endpoints as the ROS graph reports them, without what rclpy adds to every node."""
    found = ros.interface(node)
    rclpy_services = {f"{node.get_namespace().rstrip('/')}/{node.get_name()}/{s}" for s in RCLPY_SERVICES}
    return {**found, "publishers": {e for e in found["publishers"] if e[0] not in RCLPY_TOPICS},
            "subscriptions": {e for e in found["subscriptions"] if e[0] not in RCLPY_TOPICS},
            "services": {s for s in found["services"] if s[0] not in rclpy_services}}


@pytest.mark.parametrize("key", list(graph.NODES))
def test_node_declares_what_the_graph_and_parameter_file_say(key, parameter_file, ros):
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    node = ros.make(key, **NODE_ARGS.get(key, {}))
    spec = graph.NODES[key]
    assert node.get_name() == spec.name
    declared = set(node.list_parameters([], 0).names) - RCLPY_PARAMETERS
    assert declared == set(flatten(parameter_file[key]["ros__parameters"])) == set(graph.node_parameters(spec))
    for name, value in flatten(parameter_file[key]["ros__parameters"]).items():
        if name not in NODE_ARGS.get(key, {}):
            assert node.param(name) == value, name

    def reliability(t):  # and durability: "latched" topics keep their last message for late joiners
        return (ReliabilityPolicy.BEST_EFFORT if t.qos == "sensor_data" else ReliabilityPolicy.RELIABLE,
                DurabilityPolicy.TRANSIENT_LOCAL if t.qos == "latched" else DurabilityPolicy.VOLATILE)

    expected_subs = set(spec.subscribes) - ({"audio"} if key == "speech" and node.param("audio_source") != "topic" else set())
    expected = {
        "publishers": {(graph.TOPICS[k].name, graph.TOPICS[k].msgtype, reliability(graph.TOPICS[k])) for k in spec.publishes},
        "subscriptions": {(graph.TOPICS[k].name, graph.TOPICS[k].msgtype, reliability(graph.TOPICS[k]))
                          for k in expected_subs},
        "services": {(graph.SERVICES[k].name, graph.SERVICES[k].srvtype) for k in spec.services},
        "action_clients": {(graph.ACTIONS[k].name, graph.ACTIONS[k].actiontype) for k in spec.action_clients},
        "action_servers": {(graph.ACTIONS[k].name, graph.ACTIONS[k].actiontype) for k in spec.action_servers}}
    assert ros.eventually(lambda: graph_interface(ros, node), expected) == expected
    # messages cross the rclpy boundary as CDR bytes: every subscription of the graph's topics is raw
    assert all(s.raw for s in node.subscriptions if s.topic_name not in RCLPY_TOPICS)


def test_topic_names_come_from_parameters(ros):
    node = ros.make("embedding", **{"topics.embedding": "/robot2/embedding"})
    published = ros.eventually(lambda: {t for t, *_ in graph_interface(ros, node)["publishers"]}, {"/robot2/embedding"})
    assert published == {"/robot2/embedding"}


def test_speech_node_hears_a_spoken_command_on_the_audio_topic(ros):
    from legion_language.speech import read_wav

    node = ros.make("speech", audio_source="topic", utterance_s=2.0)
    pcm = read_wav(ROOT / "legion_language" / "data" / "commands" / "reach_the_goal.wav")
    pcm = np.concatenate([pcm, np.zeros(32000 - len(pcm) % 32000, np.int16)])
    for chunk in np.array_split(pcm, 8):  # audio arrives in pieces
        ros.deliver(node, "audio", m.audio_to_msg(chunk))
    assert [msg.data for msg in ros.sent(node, "command_text")] == ["reach the goal"]
    ros.deliver(node, "audio", m.audio_to_msg(np.zeros(32000, np.int16)))  # silence: nothing published
    assert len(ros.sent(node, "command_text")) == 1


@pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")), reason="needs espeak-ng and sox")
def test_speech_node_without_the_grammar_hears_a_command_in_ones_own_words(ros, tmp_path):
    """use_grammar false: free-form decoding publishes what was said (the task sequencer's matcher then understands
    it), where the grammar would force it onto a library phrasing or refuse it."""
    import subprocess

    from legion_language.speech import read_wav

    wav = tmp_path / "water.wav"
    subprocess.run(f"espeak-ng -v en-us -s 150 --stdout 'turn on the water' | sox -t wav - -r 16000 -c 1 -b 16 {wav}",
                   shell=True, check=True)
    node = ros.make("speech", audio_source="topic", utterance_s=2.0, use_grammar=False)
    pcm = read_wav(wav)
    ros.deliver(node, "audio", m.audio_to_msg(np.concatenate([pcm, np.zeros(32000 - len(pcm) % 32000, np.int16)])))
    assert [msg.data for msg in ros.sent(node, "command_text")] == ["turn on the water"]


def test_embedding_node_embeds_the_subtask_description(ros):
    from legion_language.embedding import TextEmbedder

    node = ros.make("embedding")
    ros.deliver(node, "subtask", m.command_to_msg("reach the goal"))
    ros.deliver(node, "subtask", m.text_to_msg(""))  # idle: nothing
    (msg,) = ros.sent(node, "embedding")
    np.testing.assert_allclose(m.embedding_from_msg(msg), TextEmbedder().embed(["reach the goal"])[0], atol=1e-6)


def real2sim_beside_a_plant(ros):
    """A real2sim node and a MuJoCo plant node whose 50 ms timer came due once (ROS time 10 s): (node, plant, poses,
    joints), what the plant published, which real2sim received (no subtask yet: it observed nothing)."""
    node = ros.make("real2sim")
    plant = ros.make("mujoco_plant")
    ros.set_time(10.0)
    (poses,) = ros.sent(plant, "object_poses")
    (joints,) = ros.sent(plant, "joint_states")
    return node, plant, poses, joints


def test_real2sim_node_never_reuses_a_stale_object_pose(ros):
    node, plant, poses, joints = real2sim_beside_a_plant(ros)
    ros.deliver(node, "joint_states", joints)
    assert ros.sent(node, "observation") == [], "no subtask yet: nothing to observe"
    ros.deliver(node, "subtask", m.command_to_msg("reach the goal"))
    ros.deliver(node, "joint_states", joints)
    (obs_msg,) = ros.sent(node, "observation")
    q, _ = plant.plant.joint_state()
    from legion_runtime.main_job import make_chain

    expected = make_chain(plant.plant.frame)[0].observation(q, plant.plant.object_position(), plant.plant.goal_position())
    np.testing.assert_allclose(m.observation_from_msg(obs_msg), expected, atol=1e-5)
    late = m.joint_state_to_msg(list(plant.driver.joint_names), q, np.zeros(7), stamp=10.0 + 0.6)  # pose 0.6 s old
    ros.deliver(node, "joint_states", late)
    assert len(ros.sent(node, "observation")) == 1
    assert any("'puck' not seen (stale ['goal', 'puck'])" in text for text in ros.logs(node))


def test_real2sim_node_builds_the_checkpoints_gripper_layout_from_the_2f85_joint_state(ros, tmp_path):
    """A checkpoint trained on the 'gripper' layout: real2sim reads it from the manifest and puts the opening of the
    plant's 2F-85 (its knuckle on the gripper's joint states) into slot 6; with a stale knuckle it observes nothing
    and says why."""
    from legion_language.tasks import load_task_library
    from legion_policy.agent import AgentConfig, LegionAgent
    from legion_policy.checkpoint import save_checkpoint
    from legion_runtime.main_job import make_chain

    agent = LegionAgent(AgentConfig(hidden=16, embed_dim=384), seed=0)
    rng = np.random.default_rng(0)
    agent.fit_knowledge_space(rng.normal(0, 0.1, (64, 12)).astype(np.float32),
                              np.tile(np.eye(384, dtype=np.float32)[0], (64, 1)))
    save_checkpoint(tmp_path / "grip", agent, embedding_model="sentence-transformers/all-MiniLM-L6-v2",
                    embedding_dim=384, task_library=load_task_library().to_dict(), provenance={},
                    observation_layout="gripper")
    node = ros.make("real2sim", checkpoint=str(tmp_path / "grip"))
    plant = ros.make("mujoco_plant", task="pick-place-v3")
    ros.set_time(10.0)
    (joints,), (gripper,) = ros.sent(plant, "joint_states"), ros.sent(plant, "gripper_joint_states")
    assert list(gripper.name) == ["robotiq_85_left_knuckle_joint"]
    ros.deliver(node, "subtask", m.command_to_msg("pick and place the puck"))
    knuckle = plant.plant.gripper_position()
    ros.deliver(node, "gripper_joint_states", m.joint_state_to_msg([gripper.name[0]], [knuckle], [0.0], stamp=9.8))
    ros.deliver(node, "joint_states", joints)  # at 10.0 s: the knuckle read at 9.8 s is stale
    assert ros.sent(node, "observation") == []
    assert any("no 2F-85 joint state ('robotiq_85_left_knuckle_joint') within 0.1 s" in t for t in ros.logs(node))
    ros.deliver(node, "gripper_joint_states", gripper)
    ros.deliver(node, "joint_states", joints)
    (obs_msg,) = ros.sent(node, "observation")
    q, p = plant.plant.joint_state()[0], plant.plant
    expected = make_chain(p.frame, observation_layout="gripper")[0].observation(
        q, p.object_position(), p.goal_position(), knuckle_rad=p.gripper_position())
    obs = m.observation_from_msg(obs_msg)
    np.testing.assert_allclose(obs, expected, atol=2e-4)  # the node lays the resting puck on the table (on_table)
    assert obs[6] == pytest.approx(p.metaworld_observation()[3], abs=0.01) and obs[6] > 0.9  # open, as Meta-World reads


@pytest.mark.parametrize("task, command", [("reach-v3", "reach the goal"), ("drawer-close-v3", "close the drawer")])
def test_camera_chain_plant_image_to_perception_to_real2sim_matches_the_simulator(task, command, ros):
    """mujoco_plant (virtual RealSense image + camera_info) -> perception (tags) -> real2sim, over DDS: the
    observation built from detections matches the one from the simulator's positions within 1 cm."""
    from legion_runtime.main_job import make_chain
    from legion_runtime.sim_perception import SIM_CALIBRATION
    from legion_sim.camera import sim_tag_map_path

    plant = ros.make("mujoco_plant", camera=True, task=task, seed=1)
    perception = ros.make("perception", tag_map=sim_tag_map_path(), calibration=str(SIM_CALIBRATION))
    real2sim = ros.make("real2sim")
    ros.deliver(real2sim, "subtask", m.command_to_msg(command))
    ros.set_time(5.0)  # the plant's timers come due: joint states and one camera frame
    assert ros.sent(plant, "object_poses") == []
    (info,), (image,), (joints,) = ros.sent(plant, "camera_info"), ros.sent(plant, "image"), ros.sent(plant, "joint_states")
    assert info.header.stamp == image.header.stamp == joints.header.stamp
    (poses,) = ros.sent(perception, "object_poses")  # perception found the tags; real2sim received the poses
    ros.deliver(real2sim, "joint_states", joints)  # the joint states again, now that real2sim has the poses
    obs = ros.sent(real2sim, "observation")[-1]
    q = plant.plant.joint_state()[0]
    truth = make_chain(plant.plant.frame)[0].observation(q, plant.plant.object_position(), plant.plant.goal_position())
    error = np.abs(m.observation_from_msg(obs) - truth).max()
    print(task, f"largest observation error through the camera {error * 1e3:.1f} mm")
    assert error < 0.01


def test_the_graph_reaches_the_goal_only_after_the_safety_node_is_armed(ros):
    """plant -> real2sim -> policy -> sim2real -> safety -> plant over DDS, 20 Hz of ROS time: each cycle the plant's
    timer steps the scene and every message of the cycle is handled before the next."""
    from legion_language.embedding import TextEmbedder

    plant = ros.make("mujoco_plant", seed=3)
    nodes = [plant, ros.make("real2sim"), ros.make("policy", checkpoint=CHECKPOINT), ros.make("sim2real"), ros.make("safety")]
    policy, safety = nodes[2], nodes[4]
    ros.deliver(nodes[1], "subtask", m.command_to_msg("reach the goal"))  # real2sim, policy and sim2real receive it
    ros.deliver(policy, "embedding", m.embedding_to_msg(TextEmbedder().embed(["reach the goal"])[0]))

    def cycle(i):
        ros.set_time((i + 1) * plant.plant.dt)

    q0 = plant.plant.joint_state()[0]
    for i in range(5):
        cycle(i)
    assert ros.sent(safety, "joint_targets") == [], "HOLD: nothing reaches the driver before arm"
    np.testing.assert_allclose(plant.plant.joint_state()[0], q0, atol=2e-3)
    assert safety.supervisor.counters.get("not_armed_hold", 0) >= 4
    response = ros.call(safety, "arm")
    assert response.success, response.message
    for i in range(5, 155):
        cycle(i)
        if plant.plant.success():
            break
    assert plant.plant.success(), f"not reached after {i - 4} armed steps"
    targets = ros.sent(safety, "joint_targets")
    assert targets and targets[0].joint_names == [f"lbr_A{k}" for k in range(1, 8)]
    ros.set_time(math.floor(ros.time_ns * 1e-9) + 1.0)  # the safety node's 1 s diagnostics timer comes due
    diag = ros.sent(safety, "diagnostics")[-1]
    assert m.diagnostics_from_msg(diag)[0][:3] == ("legion: safety", m.DIAG_OK, "ARMED")


def home_posture(ros):
    """The plant's joint positions at reset (the home posture above the table), from a plant node that then ends."""
    plant = ros.make("mujoco_plant")
    q = plant.plant.joint_state()[0]
    ros.destroy(plant)
    return q


def test_safety_node_estop_latches_and_stale_joint_states_stop_forwarding(ros):
    safety = ros.make("safety")
    q = home_posture(ros)
    names = [f"lbr_A{k}" for k in range(1, 8)]
    assert not ros.call(safety, "arm").success  # no joint states yet
    ros.set_time(1.0)
    ros.deliver(safety, "joint_states", m.joint_state_to_msg(names, q, q, stamp=1.0))
    assert ros.call(safety, "arm").success
    command = m.joint_trajectory_to_msg(q + 0.002, names, 1.0, 0.05)
    ros.deliver(safety, "joint_command", command)
    assert len(ros.sent(safety, "joint_targets")) == 1
    assert ros.call(safety, "estop").success and ros.call(safety, "hold").message.startswith("e-stop is latched")
    ros.deliver(safety, "joint_command", command)
    assert len(ros.sent(safety, "joint_targets")) == 1, "nothing passes a latched e-stop"
    assert ros.call(safety, "arm").success
    ros.set_time(1.5)  # joint states now 0.5 s old: the watchdog forwards nothing
    fresh_command = m.joint_trajectory_to_msg(q + 0.002, names, 1.5, 0.05)
    ros.deliver(safety, "joint_command", fresh_command)
    assert len(ros.sent(safety, "joint_targets")) == 1 and safety.supervisor.counters["stale_joint_states"] == 1
    ros.deliver(safety, "joint_states", m.joint_state_to_msg(names, q, q, stamp=1.3))  # arriving 200 ms late: stale
    ros.deliver(safety, "joint_command", fresh_command)
    assert len(ros.sent(safety, "joint_targets")) == 1 and safety.supervisor.counters["stale_joint_states"] == 2
    ros.deliver(safety, "joint_command", command)  # made at 1.0 s, arriving at 1.5 s: refused
    assert safety.supervisor.counters["stale_command"] == 1
    ros.deliver(safety, "joint_states", m.joint_state_to_msg(names, q, q, stamp=1.5))
    ros.deliver(safety, "joint_command", fresh_command)
    assert len(ros.sent(safety, "joint_targets")) == 2, "forwarding resumes when joint states are fresh"
    wrong_names = m.joint_trajectory_to_msg(q + 0.002, [f"joint_a{k}" for k in range(1, 8)], 1.5, 0.05)
    ros.deliver(safety, "joint_command", wrong_names)  # another driver's joint names: refused, not guessed
    assert len(ros.sent(safety, "joint_targets")) == 2
    bad = m.joint_trajectory_to_msg(q + 3.0, names, 1.5, 0.05)  # beyond the position limits of A2, A4, A6
    ros.deliver(safety, "joint_command", bad)
    (_, last) = ros.sent(safety, "joint_targets")[-2:]
    q_sent, *_ = m.joint_trajectory_from_msg(last)
    from sim2real.safety import SafetyLimits

    lim = SafetyLimits.iiwa14(np.full(3, -1.0), np.full(3, 1.0))
    assert np.all(q_sent <= lim.joint_position_max) and np.all(q_sent >= lim.joint_position_min)


@pytest.mark.parametrize("kind", ["GripperCommand", "ParallelGripperCommand"])
def test_safety_node_sends_gripper_goals_only_when_armed(kind, ros):
    from control_msgs import action

    safety = ros.make("safety", gripper_action=kind)
    goals = ros.serve_action("gripper", getattr(action, kind))  # the Robotiq driver's action server
    ros.spin_until(safety.gripper.server_is_ready, "the safety node sees the gripper action server")
    names = [f"lbr_A{k}" for k in range(1, 8)]
    ros.deliver(safety, "gripper_request", m.gripper_command_to_msg(0.79))
    assert goals == []
    ros.deliver(safety, "joint_states", m.joint_state_to_msg(names, np.zeros(7), np.zeros(7), stamp=0.0))
    assert ros.call(safety, "arm").success
    ros.deliver(safety, "gripper_request", m.gripper_command_to_msg(0.79))
    ros.spin_until(lambda: goals, "a gripper goal at the action server")
    (goal,) = goals
    if kind == "GripperCommand":
        assert (goal.command.position, goal.command.max_effort) == (0.79, 50.0)
    else:
        assert (goal.command.name, list(goal.command.position)) == (["robotiq_85_left_knuckle_joint"], [0.79])
    assert [msg.data for msg in ros.sent(safety, "gripper_command")] == [0.79]


def test_plant_node_serves_the_gripper_action(ros):
    from action_msgs.msg import GoalStatus
    from control_msgs.action import GripperCommand

    plant = ros.make("mujoco_plant")
    goal = GripperCommand.Goal()
    goal.command.position = m.GRIPPER_CLOSED_RAD
    status, result = ros.send_goal("gripper", GripperCommand, goal)
    assert status == GoalStatus.STATUS_SUCCEEDED and result.reached_goal and plant.gripper == pytest.approx(1.0)


def test_task_sequencer_node_runs_a_long_horizon_command_subtask_by_subtask(ros):
    import json

    node = ros.make("task_sequencer", max_steps_per_subtask=3, retries=1)
    ros.deliver(node, "command_text", m.command_to_msg("make me a sandwich"))
    (status,) = [json.loads(msg.data) for msg in ros.sent(node, "task_status")]
    assert status["state"] == "unknown task" and "reach the goal" in status["known"]
    assert len(status["closest"]) == 3, "a command not understood names the closest known commands"
    assert ros.sent(node, "subtask") == [], "an unknown command starts nothing"
    # in one's own words: matched in the language model's embedding space, the status says what it understood
    ros.deliver(node, "command_text", m.command_to_msg("get to the goal"))
    assert [msg.data for msg in ros.sent(node, "subtask")] == ["reach the goal"]
    understood = json.loads(ros.sent(node, "task_status")[-1].data)["understood"]
    assert [u["meaning"] for u in understood] == ["reach"] and understood[0]["score"] >= 0.82
    before = len(ros.sent(node, "subtask"))

    ros.deliver(node, "command_text", m.command_to_msg("close the drawer then reach the goal"))  # spoken order
    far = np.zeros(12, np.float32)
    far[3:6] = [0.0, 0.5, 0.2]  # drawer handle 0.3 m from its goal: the drawer is open
    far[9:12] = [0.0, 0.8, 0.2]  # goal 0.8 m from the hand
    for _ in range(3):
        ros.deliver(node, "observation", m.observation_to_msg(far))  # drawer-close, attempt 1 fails at 3 steps
    closed = far.copy()
    closed[3:6] = far[9:12] + [0.0, 0.0, 0.05]  # handle 5 cm from the goal: within drawer-close's 6.5 cm
    ros.deliver(node, "observation", m.observation_to_msg(closed))  # attempt 2 succeeds at once
    near = far.copy()
    # the ee point 5.5 cm above the goal: the TCP, 4.5 cm below the ee point, is 1 cm from it, so reach succeeds
    # (judged on the ee point itself it would be 5.5 cm, past reach's 5 cm)
    near[0:3] = far[9:12] + [0.0, 0.0, 0.055]
    for _ in range(3):
        ros.deliver(node, "observation", m.observation_to_msg(far))  # reach, attempt 1 fails at 3 steps -> retry
    ros.deliver(node, "observation", m.observation_to_msg(near))  # attempt 2 succeeds at once
    subtasks = [msg.data for msg in ros.sent(node, "subtask")][before:]
    assert subtasks == ["close the drawer", "close the drawer", "reach the goal", "reach the goal", ""]
    final = json.loads(ros.sent(node, "task_status")[-1].data)
    assert final["state"] == "done" and final["order"] == "spoken"
    assert [(a["subtask"], a["steps"], a["success"]) for a in final["attempts"]] == \
        [("drawer-close", 3, False), ("drawer-close", 1, True), ("reach", 3, False), ("reach", 1, True)]


def test_safety_node_refuses_a_joint_command_whose_tcp_leaves_the_workspace_or_jumps(ros):
    plant = ros.make("mujoco_plant")
    safety = ros.make("safety")
    q, qd = plant.plant.joint_state()
    names = list(plant.driver.joint_names)
    ros.deliver(safety, "joint_states", m.joint_state_to_msg(names, q, qd, stamp=0.0))
    assert ros.call(safety, "arm").success
    fk = safety.real2sim.kinematics.forward_kinematics
    step = q.copy()
    step[1] += 0.004  # a few mm at the TCP: forwarded
    ros.deliver(safety, "joint_command", m.joint_trajectory_to_msg(step, names, 0.0, 0.05))
    assert len(ros.sent(safety, "joint_targets")) == 1
    jump = step.copy()
    jump[0] += 0.2  # 0.2 rad in 0.5 s: inside the joint position and velocity limits
    ros.deliver(safety, "joint_command", m.joint_trajectory_to_msg(jump, names, 0.0, 0.5))
    moved = np.linalg.norm(fk(jump)[0] - fk(step)[0])
    assert moved > 0.025 and len(ros.sent(safety, "joint_targets")) == 1, f"a {moved:.3f} m TCP jump was forwarded"
    assert any(k.startswith("cartesian_") for k in safety.supervisor.counters)


def test_perception_node_turns_a_camera_image_into_base_frame_object_poses(ros):
    sys.path.insert(0, str(ROOT / "tests"))
    from tag_images import D435, facing_camera, render

    from sim2real.perception import load_extrinsics

    node = ros.make("perception", **PERCEPTION)
    frame = node.param("camera_frame")
    R, t_obj, t_goal = facing_camera(0.2, 0.3), np.array([-0.1, 0.05, 0.8]), np.array([0.15, 0.0, 1.0])
    gray = render([(3, 0.06, R, t_obj), (8, 0.06, R, t_goal)])
    image = m.image_to_msg(np.repeat(gray[:, :, None], 3, axis=2), "bgr8", 5.0, frame)
    ros.deliver(node, "image", image)  # before camera_info: skipped
    assert ros.sent(node, "object_poses") == []
    ros.deliver(node, "camera_info", m.camera_info_to_msg(D435.fx, D435.fy, D435.cx, D435.cy, 640, 480, 5.0, frame))
    ros.deliver(node, "image", image)
    (msg,) = ros.sent(node, "object_poses")
    poses = m.object_poses_from_msg(msg)
    T = load_extrinsics(PERCEPTION["calibration"])
    for name, p_cam in (("object", R @ np.array([0, 0, 0.02]) + t_obj), ("goal", t_goal)):
        position, stamp, base = poses[name]
        np.testing.assert_allclose(position, T[:3, :3] @ p_cam + T[:3, 3], atol=0.006)
        assert (stamp, base) == (5.0, "base")
    ros.deliver(node, "image", m.image_to_msg(np.full((480, 640, 3), 100, np.uint8), "bgr8", 5.7, frame))  # tags gone
    assert len(ros.sent(node, "object_poses")) == 1, "stale poses are not published"


def test_perception_node_without_a_calibration_says_what_to_set(ros):
    from sim2real.perception import PerceptionError

    with pytest.raises(PerceptionError, match="parameter calibration is empty"):
        ros.make("perception", tag_map=PERCEPTION["tag_map"])


def test_perception_node_reads_a_realsense_recording_through_pyrealsense2():
    sys.path.insert(0, str(ROOT / "tests"))
    from realsense_cases import run_isolated

    run_isolated("perception_node_reads_a_recording")


def test_mujoco_plant_node_runs_the_table_scene_and_publishes_all_its_objects(ros):
    node = ros.make("real2sim")
    plant = ros.make("mujoco_plant", task="table", seed=2)
    ros.set_time(5.0)  # one cycle of the plant: real2sim receives its object poses (no subtask: no observation)
    (poses,) = ros.sent(plant, "object_poses")
    (joints,) = ros.sent(plant, "joint_states")
    names = {"push_puck", "place_puck", "drawer_handle", "button", "peg", "window_handle", "faucet_handle",
             "push_goal", "place_goal"}
    assert set(m.object_poses_from_msg(poses)) == names
    assert ros.sent(node, "observation") == []
    ros.deliver(node, "subtask", m.command_to_msg("press the button"))
    ros.deliver(node, "joint_states", joints)
    (obs_msg,) = ros.sent(node, "observation")
    obs = m.observation_from_msg(obs_msg)
    np.testing.assert_allclose(obs[3:6], plant.plant.objects()["button"], atol=1e-5)  # the button, sim frame
    from legion_language.tasks import load_task_library

    rule = load_task_library().by_env_id("button-press-topdown-v3").goal_rule
    np.testing.assert_allclose(obs[9:12], rule.goal(plant.plant.objects()), atol=1e-5)


def test_real2sim_goes_idle_on_the_blank_subtask_and_serves_the_next_command(ros):
    """Issue 16.3: real2sim read the idle subtask "" with command_from_msg, which raises: it died at the end of every
    command, and no second command ever completed."""
    node, _, _, joints = real2sim_beside_a_plant(ros)
    ros.deliver(node, "subtask", m.command_to_msg("reach the goal"))
    ros.deliver(node, "joint_states", joints)
    assert len(ros.sent(node, "observation")) == 1
    ros.deliver(node, "subtask", m.text_to_msg(""))  # the sequencer's "no subtask": the command ended
    ros.deliver(node, "joint_states", joints)
    assert len(ros.sent(node, "observation")) == 1, "idle: nothing to observe"
    ros.deliver(node, "subtask", m.command_to_msg("reach the goal"))  # the next command
    ros.deliver(node, "joint_states", joints)
    assert len(ros.sent(node, "observation")) == 2


def test_task_sequencer_refuses_a_blank_command_with_a_status_and_keeps_serving(ros):
    import json

    node = ros.make("task_sequencer", max_steps_per_subtask=3, retries=1)
    ros.deliver(node, "command_text", m.text_to_msg("   "))
    (status,) = [json.loads(msg.data) for msg in ros.sent(node, "task_status")]
    assert status["state"] == "blank command" and ros.sent(node, "subtask") == []
    ros.deliver(node, "command_text", m.command_to_msg("reach the goal"))
    assert [msg.data for msg in ros.sent(node, "subtask")] == ["reach the goal"]


def test_speech_node_without_a_microphone_says_so_and_keeps_serving_the_audio_topic(ros):
    """Issue 16.2: with audio_source: microphone the speech node died on a machine without one ("PortAudio library
    not found", then "Error querying device -1"). This machine has PortAudio (libportaudio2, from scripts/setup.sh)
    and no input device: the real sounddevice is asked and refuses."""
    from legion_language.speech import read_wav
    from legion_runtime.messages import diagnostics_from_msg

    node = ros.make("speech", audio_source="microphone", utterance_s=2.0)
    ((name, level, message, _),) = diagnostics_from_msg(ros.sent(node, "diagnostics")[0])
    assert name == "legion: speech" and level == m.DIAG_WARN
    assert message.startswith("no microphone:") and "listening on /legion/audio only" in message, message
    pcm = read_wav(ROOT / "legion_language" / "data" / "commands" / "reach_the_goal.wav")
    pcm = np.concatenate([pcm, np.zeros(32000 - len(pcm) % 32000, np.int16)])
    ros.deliver(node, "audio", m.audio_to_msg(pcm))
    assert [msg.data for msg in ros.sent(node, "command_text")] == ["reach the goal"]


def test_policy_and_perception_nodes_find_the_shipped_files_from_any_directory(tmp_path, monkeypatch, ros):
    """Issue 16.5: launched from outside the repository, the policy died with "no checkpoint folder at
    models/legion-reach-drawer" and perception with "cannot read calibration calibration/sim_camera_extrinsics.yaml":
    the defaults name repository files relative to the repository, not to the working directory."""
    monkeypatch.chdir(tmp_path)
    policy = ros.make("policy", checkpoint="models/legion-reach-drawer")
    assert policy.policy.manifest["task_library"]["subtasks"]["reach"]["env_id"] == "reach-v3"
    from legion_sim.camera import sim_tag_map_path

    perception = ros.make("perception", tag_map=sim_tag_map_path(), calibration="calibration/sim_camera_extrinsics.yaml")
    assert perception.tracker is not None


def test_task_sequencer_ends_an_attempt_whose_observations_stopped_when_its_time_is_up(ros):
    """Issue 16.4: with the camera in the loop the policy sometimes waited, no observation came, and the sequencer,
    which counts steps on observations, kept the status "running" forever."""
    import json

    node = ros.make("task_sequencer", max_steps_per_subtask=150, retries=0)
    ros.set_time(100.0)
    ros.deliver(node, "command_text", m.command_to_msg("reach the goal"))
    far = np.zeros(12, np.float32)
    far[9:12] = [0.0, 0.8, 0.2]
    start = 100.1
    ros.set_time(start)  # the sequencer's 0.1 s timer after the command: the attempt's clock starts
    for _ in range(40):
        ros.deliver(node, "observation", m.observation_to_msg(far))  # 40 steps, then the observations stop
    ros.set_time(start + 8.4)  # the timer checks again
    assert json.loads(ros.sent(node, "task_status")[-1].data)["state"] == "running", "8.4 s < 150 / 20 Hz + 1 s"
    ros.set_time(start + 8.6)
    final = json.loads(ros.sent(node, "task_status")[-1].data)
    assert final["state"] == "done" and final["success"] is False
    assert final["subtasks"][0]["why"] == "time limit 8.5 s: 40 of 150 steps observed"
    assert ros.sent(node, "subtask")[-1].data == ""


def test_policy_node_acts_on_a_retry_of_the_same_subtask(ros):
    """On the real ROS 2 graph the policy never acted again after the first attempt: a retry republishes the same
    description, the embedding node answers at once, and the policy's subtask callback then wiped that embedding.
    Each observation is followed by one policy period of ROS time, in which the policy acts once on it."""
    node = ros.make("policy", checkpoint=CHECKPOINT)
    from legion_language.embedding import TextEmbedder

    embedding = m.embedding_to_msg(TextEmbedder().embed("reach the goal"))
    obs = m.observation_to_msg(np.array([0, 0.6, 0.2, 0, 0.7, 0.02, 0, 0, 0, 0, 0.8, 0.2], np.float32))
    period = 1.0 / node.param("rate_hz")
    ros.set_time(5.0)
    ros.deliver(node, "subtask", m.command_to_msg("reach the goal"))
    ros.deliver(node, "embedding", embedding)
    ros.deliver(node, "observation", obs)
    ros.set_time(5.0 + period)
    assert len(ros.sent(node, "action")) == 1
    ros.deliver(node, "embedding", embedding)  # the retry: the embedding node answered before the policy saw the subtask
    ros.deliver(node, "subtask", m.command_to_msg("reach the goal"))
    ros.deliver(node, "observation", obs)
    ros.set_time(5.0 + 2 * period)
    assert len(ros.sent(node, "action")) == 2


def test_a_restarted_policy_acts_on_the_latched_subtask(ros):
    """The subtask and embedding topics are latched (transient local: the last message is kept for late joiners) so
    that a policy node started while a command runs learns at once what to do: it acts on the next observation."""
    from legion_language.embedding import TextEmbedder

    first = ros.make("policy", checkpoint=CHECKPOINT)
    ros.deliver(first, "subtask", m.command_to_msg("reach the goal"))
    ros.deliver(first, "embedding", m.embedding_to_msg(TextEmbedder().embed("reach the goal")))
    ros.destroy(first)  # the node ends; the sequencer and the embedding node publish nothing new
    node = ros.make("policy", checkpoint=CHECKPOINT)
    obs = m.observation_to_msg(np.array([0, 0.6, 0.2, 0, 0.7, 0.02, 0, 0, 0, 0, 0.8, 0.2], np.float32))
    ros.set_time(5.0)
    ros.deliver(node, "observation", obs)
    ros.set_time(5.0 + 1.0 / node.param("rate_hz"))
    assert node.subtask == "reach the goal" and node.embedding is not None
    assert len(ros.sent(node, "action")) == 1
