"""rosbag2 recording: a bag with every message kind reads back unchanged, in order, with correct metadata."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from legion_runtime import messages as m
from legion_runtime.bag import BagRecorder, read_bag

IIWA_JOINTS = [f"lbr_A{i}" for i in range(1, 8)]

# topic -> (msgtype, value -> msg, msg -> comparable value)
TOPICS = {
    "/legion/command": ("std_msgs/msg/String", m.command_to_msg, m.command_from_msg),
    "/legion/embedding": ("std_msgs/msg/Float32MultiArray", m.embedding_to_msg, m.embedding_from_msg),
    "/legion/observation": ("std_msgs/msg/Float32MultiArray", m.observation_to_msg, m.observation_from_msg),
    "/legion/action": ("std_msgs/msg/Float32MultiArray", m.action_to_msg, m.action_from_msg),
    "/legion/component": ("std_msgs/msg/Int32", m.component_to_msg, m.component_from_msg),
    "/legion/cartesian_target": ("geometry_msgs/msg/PointStamped",
                                 lambda v: m.cartesian_target_to_msg(v[0], v[1]), m.cartesian_target_from_msg),
    "/lbr/joint_trajectory_controller/joint_trajectory": (
        "trajectory_msgs/msg/JointTrajectory",
        lambda v: m.joint_trajectory_to_msg(v, IIWA_JOINTS, stamp=0.0, period=0.05), m.joint_trajectory_from_msg),
    "/lbr/forward_position_controller/commands": (
        "std_msgs/msg/Float64MultiArray", m.joint_positions_to_msg, m.joint_positions_from_msg),
    "/lbr/joint_states": ("sensor_msgs/msg/JointState",
                          lambda v: m.joint_state_to_msg(IIWA_JOINTS, v[0], v[1], stamp=v[2]), m.joint_state_from_msg),
    "/gripper/command": ("std_msgs/msg/Float64", m.gripper_command_to_msg, m.gripper_command_from_msg),
}
# Type hashes a ROS 2 Jazzy `ros2 topic info -v` reports; ROS tools compare them with the bag's.
JAZZY_RIHS01 = {
    "std_msgs/msg/String": "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18",
    "sensor_msgs/msg/JointState": "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e",
    "std_msgs/msg/Float32MultiArray": "RIHS01_0599f6f85b4bfca379873a0b4375a0aca022156bd2d7021275d116ed1fa8bfe0",
}


def value_for(topic: str, step: int, rng: np.random.Generator):
    """A plausible value for ``topic`` at control step ``step``."""
    q = rng.uniform(-1.0, 1.0, 7)
    return {
        "/legion/command": f"reach the goal {step}",
        "/legion/embedding": rng.standard_normal(384).astype(np.float32),
        "/legion/observation": rng.uniform(-1, 1, 12).astype(np.float32),
        "/legion/action": rng.uniform(-1, 1, 4).astype(np.float32),
        "/legion/component": step % 3,
        "/legion/cartesian_target": (rng.uniform(-0.5, 0.5, 3), 100.0 + 0.05 * step),
        "/lbr/joint_trajectory_controller/joint_trajectory": q,
        "/lbr/forward_position_controller/commands": q,
        "/lbr/joint_states": (q, rng.uniform(-0.1, 0.1, 7), 100.0 + 0.05 * step),
        "/gripper/command": float(rng.uniform(0.0, m.GRIPPER_CLOSED_RAD)),
    }[topic]


def assert_same(a, b):
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Bag with 3 steps x all topics, stamps 50 ms apart per step and 1 us apart within a step."""
    path = tmp_path_factory.mktemp("run") / "bag"
    rng = np.random.default_rng(0)
    written = []
    with BagRecorder(path, {t: spec[0] for t, spec in TOPICS.items()}) as bag:
        for step in range(3):
            for i, (topic, (msgtype, to_msg, from_msg)) in enumerate(TOPICS.items()):
                value = value_for(topic, step, rng)
                stamp_ns = 1_700_000_000_000_000_000 + step * 50_000_000 + i * 1_000
                bag.write(topic, to_msg(value), stamp_ns)
                written.append((topic, msgtype, stamp_ns, from_msg(to_msg(value))))
    return path, written


def test_bag_reads_back_same_messages_in_order(recorded):
    path, written = recorded
    read = list(read_bag(path))
    assert [r[:3] for r in read] == [w[:3] for w in written]
    for (topic, _, _, msg), (_, _, _, expected) in zip(read, written):
        assert_same(TOPICS[topic][2](msg), expected)


def test_metadata_lists_topics_types_and_counts(recorded):
    path, written = recorded
    assert sorted(p.name for p in path.iterdir()) == ["bag.mcap", "metadata.yaml"]
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == "mcap" and info["relative_file_paths"] == ["bag.mcap"]
    assert info["message_count"] == len(written) == 30
    assert info["starting_time"]["nanoseconds_since_epoch"] == written[0][2]
    topics = {t["topic_metadata"]["name"]: t for t in info["topics_with_message_count"]}
    assert set(topics) == set(TOPICS)
    for name, (msgtype, _, _) in TOPICS.items():
        assert topics[name]["topic_metadata"]["type"] == msgtype
        assert topics[name]["topic_metadata"]["serialization_format"] == "cdr"
        assert topics[name]["message_count"] == 3
        if msgtype in JAZZY_RIHS01:
            assert topics[name]["topic_metadata"]["type_description_hash"] == JAZZY_RIHS01[msgtype]


def test_mcap_file_is_readable_by_the_mcap_library(recorded):
    """Foxglove's own reader sees a ros2-profile mcap with CDR messages and ros2msg schemas."""
    mcap_reader = pytest.importorskip("mcap.reader")
    path, written = recorded
    with open(path / "bag.mcap", "rb") as f:
        reader = mcap_reader.make_reader(f)
        assert reader.get_header().profile == "ros2"
        assert reader.get_summary().statistics.message_count == len(written)
        seen = []
        for schema, channel, message in reader.iter_messages(log_time_order=True):
            assert (schema.encoding, channel.message_encoding) == ("ros2msg", "cdr")
            assert schema.name == TOPICS[channel.topic][0]
            msg = m.deserialize(message.data, schema.name)
            seen.append((channel.topic, schema.name, message.log_time, TOPICS[channel.topic][2](msg)))
    assert [s[:3] for s in seen] == [w[:3] for w in written]
    for s, w in zip(seen, written):
        assert_same(s[3], w[3])


def test_refuses_to_overwrite_a_run(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "metadata.yaml").write_text("x")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        BagRecorder(tmp_path / "old", {"/c": "std_msgs/msg/String"})
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        BagRecorder(tmp_path / "file", {"/c": "std_msgs/msg/String"})
    (tmp_path / "empty").mkdir()  # an empty folder (e.g. made by a run directory layout) is fine
    with BagRecorder(tmp_path / "empty", {"/c": "std_msgs/msg/String"}) as bag:
        bag.write("/c", m.command_to_msg("reach"), 1)
    assert [r[0] for r in read_bag(tmp_path / "empty")] == ["/c"]


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="storage"):
        BagRecorder(tmp_path / "a", {"/c": "std_msgs/msg/String"}, storage="db3")
    with pytest.raises(ValueError, match="absolute"):
        BagRecorder(tmp_path / "a", {"c": "std_msgs/msg/String"})
    with pytest.raises(ValueError, match="unknown message type"):
        BagRecorder(tmp_path / "a", {"/c": "std_msgs/String"})
    recorder = BagRecorder(tmp_path / "a", {"/c": "std_msgs/msg/String"})
    with pytest.raises(RuntimeError, match="not open"):
        recorder.write("/c", m.command_to_msg("reach"), 0)
    with recorder as bag:
        with pytest.raises(ValueError, match="not declared"):
            bag.write("/d", m.command_to_msg("reach"), 0)
        with pytest.raises(ValueError, match="carries std_msgs/msg/String"):
            bag.write("/c", m.component_to_msg(1), 0)
        with pytest.raises(ValueError, match="stamp_ns"):
            bag.write("/c", m.command_to_msg("reach"), 0.5)
    with pytest.raises(FileNotFoundError):
        list(read_bag(tmp_path / "missing"))


def test_crashed_run_keeps_its_messages(tmp_path):
    with pytest.raises(RuntimeError, match="controller died"):
        with BagRecorder(tmp_path / "bag", {"/c": "std_msgs/msg/Int32"}) as bag:
            bag.write("/c", m.component_to_msg(4), 10)
            raise RuntimeError("controller died")
    assert [(r[0], r[2], m.component_from_msg(r[3])) for r in read_bag(tmp_path / "bag")] == [("/c", 10, 4)]


def test_sqlite3_storage(tmp_path):
    q = np.linspace(-1, 1, 7)
    with BagRecorder(tmp_path / "bag", {"/lbr/joint_states": "sensor_msgs/msg/JointState"}, storage="sqlite3") as bag:
        bag.write("/lbr/joint_states", m.joint_state_to_msg(IIWA_JOINTS, q, q * 0.1, stamp=2.0), 2_000_000_000)
    assert (tmp_path / "bag" / "bag.db3").is_file()
    [(topic, msgtype, stamp_ns, msg)] = list(read_bag(tmp_path / "bag"))
    got = m.joint_state_from_msg(msg)
    assert (topic, msgtype, stamp_ns, got.names, got.stamp) == (
        "/lbr/joint_states", "sensor_msgs/msg/JointState", 2_000_000_000, IIWA_JOINTS, 2.0)
    np.testing.assert_array_equal(got.position, q)
