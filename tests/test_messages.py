"""Conversions to ROS 2 messages: value -> msg -> CDR bytes -> msg -> value, and input validation."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from legion_runtime import messages as m
from sim2real.observation import build_observation

IIWA_JOINTS = [f"lbr_A{i}" for i in range(1, 8)]


def cdr_roundtrip(msg):
    """Serialise with the real ROS 2 definition and decode again, like a subscriber would."""
    data = m.serialize(msg)
    assert isinstance(data, bytes) and data[:4] == b"\x00\x01\x00\x00"  # CDR little-endian header
    return m.deserialize(data, msg.__msgtype__)


def test_cdr_bytes_match_the_ros2_wire_format():
    # Hand-written CDR (XCDR1 little endian), as rclpy would put on the wire.
    assert m.serialize(m.command_to_msg("hi")) == b"\x00\x01\x00\x00" + (3).to_bytes(4, "little") + b"hi\x00"
    assert m.serialize(m.component_to_msg(7)) == b"\x00\x01\x00\x00" + (7).to_bytes(4, "little")
    t = m.time_ns_to_msg(3 * 10**9 + 25)
    assert m.serialize(t) == b"\x00\x01\x00\x00" + (3).to_bytes(4, "little") + (25).to_bytes(4, "little")


def test_command_roundtrip():
    msg = cdr_roundtrip(m.command_to_msg("open the drawer, then reach"))
    assert msg.__msgtype__ == "std_msgs/msg/String"
    assert m.command_from_msg(msg) == "open the drawer, then reach"


@pytest.fixture(scope="module")
def real_embedding():
    from legion_language.embedding import TextEmbedder

    return TextEmbedder().embed("close the drawer")


def test_embedding_roundtrip_real_model(real_embedding):
    msg = cdr_roundtrip(m.embedding_to_msg(real_embedding))
    dim = msg.layout.dim[0]
    assert (dim.label, dim.size, dim.stride) == ("embedding", 384, 384)
    out = m.embedding_from_msg(msg, dim=384)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, real_embedding)
    with pytest.raises(ValueError, match=r"\(768,\)"):
        m.embedding_from_msg(msg, dim=768)


def test_observation_and_action_roundtrip():
    obs = build_observation([0.0, 0.6, 0.2], [0.1, 0.7, 0.02], [-0.1, 0.8, 0.2])
    out = m.observation_from_msg(cdr_roundtrip(m.observation_to_msg(obs)))
    np.testing.assert_array_equal(out, obs)
    a = np.array([0.5, -1.0, 0.25, 1.0], dtype=np.float32)
    np.testing.assert_array_equal(m.action_from_msg(cdr_roundtrip(m.action_to_msg(a))), a)


def test_labels_catch_miswired_arrays():
    obs_msg = m.observation_to_msg(np.zeros(12))
    with pytest.raises(ValueError, match="labelled 'action'"):
        m.action_from_msg(obs_msg)
    with pytest.raises(ValueError, match="expected a std_msgs/msg/Float32MultiArray"):
        m.observation_from_msg(m.command_to_msg("reach"))


@pytest.mark.parametrize("to_msg, bad", [
    (m.observation_to_msg, np.zeros(11)),
    (m.observation_to_msg, np.zeros((1, 12))),
    (m.action_to_msg, np.zeros(5)),
    (m.action_to_msg, [0.0, np.nan, 0.0, 0.0]),
    (m.action_to_msg, [0.0, 1e40, 0.0, 0.0]),  # overflows float32 to inf
    (m.embedding_to_msg, np.zeros(0)),
    (m.embedding_to_msg, [1.0, np.inf]),
    (m.command_to_msg, "   "),
    (m.command_to_msg, 3),
    (m.component_to_msg, -1),
    (m.component_to_msg, 2.0),
    (m.component_to_msg, 2**31),
    (m.gripper_command_to_msg, -0.01),
    (m.gripper_command_to_msg, 0.81),
    (m.gripper_command_to_msg, np.nan),
    (m.time_to_msg, -1.0),
    (m.time_to_msg, np.inf),
    (m.time_ns_to_msg, 1.5),
])
def test_bad_values_raise(to_msg, bad):
    with pytest.raises(ValueError):
        to_msg(bad)


def test_cartesian_target_roundtrip():
    msg = cdr_roundtrip(m.cartesian_target_to_msg([0.45, -0.1, 0.3], stamp=12.5, frame_id="base"))
    assert msg.__msgtype__ == "geometry_msgs/msg/PointStamped"
    p, stamp, frame = m.cartesian_target_from_msg(msg)
    np.testing.assert_array_equal(p, [0.45, -0.1, 0.3])
    assert (stamp, frame) == (12.5, "base")
    with pytest.raises(ValueError, match="finite"):
        m.cartesian_target_to_msg([0.4, np.nan, 0.3], stamp=0.0)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        m.cartesian_target_to_msg([0.4, 0.3], stamp=0.0)
    with pytest.raises(ValueError, match="frame_id"):
        m.cartesian_target_to_msg([0.4, 0.1, 0.3], stamp=0.0, frame_id="")


def test_joint_trajectory_roundtrip():
    q = np.deg2rad([10.0, -30.0, 5.0, 90.0, 0.0, -45.0, 170.0])
    msg = cdr_roundtrip(m.joint_trajectory_to_msg(q, IIWA_JOINTS, stamp=0.0, period=0.05))
    assert msg.__msgtype__ == "trajectory_msgs/msg/JointTrajectory"
    point = msg.points[0]
    assert (point.time_from_start.sec, point.time_from_start.nanosec) == (0, 50_000_000)
    assert len(point.velocities) == len(point.accelerations) == len(point.effort) == 0
    q2, names, stamp, period = m.joint_trajectory_from_msg(msg)
    np.testing.assert_array_equal(q2, q)
    assert (names, stamp, period) == (IIWA_JOINTS, 0.0, 0.05)


def test_joint_trajectory_rejects_bad_input():
    q = np.zeros(7)
    with pytest.raises(ValueError, match="7 distinct"):
        m.joint_trajectory_to_msg(q, IIWA_JOINTS[:6], stamp=0.0, period=0.05)
    with pytest.raises(ValueError, match="7 distinct"):
        m.joint_trajectory_to_msg(q, IIWA_JOINTS[:6] + ["lbr_A1"], stamp=0.0, period=0.05)
    with pytest.raises(ValueError, match="period"):
        m.joint_trajectory_to_msg(q, IIWA_JOINTS, stamp=0.0, period=0.0)
    with pytest.raises(ValueError, match="finite"):
        m.joint_trajectory_to_msg(np.full(7, np.nan), IIWA_JOINTS, stamp=0.0, period=0.05)
    two_points = m.joint_trajectory_to_msg(q, IIWA_JOINTS, stamp=0.0, period=0.05)
    two_points.points.append(two_points.points[0])
    with pytest.raises(ValueError, match="single-point"):
        m.joint_trajectory_from_msg(cdr_roundtrip(two_points))


def test_forward_position_command_roundtrip():
    q = np.linspace(-1.0, 1.0, 7)
    msg = cdr_roundtrip(m.joint_positions_to_msg(q))
    assert msg.__msgtype__ == "std_msgs/msg/Float64MultiArray" and msg.data.dtype == np.float64
    np.testing.assert_array_equal(m.joint_positions_from_msg(msg), q)
    with pytest.raises(ValueError, match=r"\(7,\)"):
        m.joint_positions_from_msg(m.joint_positions_to_msg(q[:6]))


def test_joint_state_roundtrip_with_and_without_effort():
    q, qd, tau = np.linspace(-1, 1, 7), np.linspace(0, 0.6, 7), np.linspace(-50, 50, 7)
    got = m.joint_state_from_msg(cdr_roundtrip(m.joint_state_to_msg(IIWA_JOINTS, q, qd, tau, stamp=3.25)))
    assert got.names == IIWA_JOINTS and got.stamp == 3.25
    np.testing.assert_array_equal(got.position, q)
    np.testing.assert_array_equal(got.velocity, qd)
    np.testing.assert_array_equal(got.effort, tau)
    got = m.joint_state_from_msg(cdr_roundtrip(m.joint_state_to_msg(IIWA_JOINTS, q, qd)))
    assert got.effort is None
    with pytest.raises(ValueError, match="velocity"):
        m.joint_state_to_msg(IIWA_JOINTS, q, qd[:6])
    with pytest.raises(ValueError, match="finite"):
        m.joint_state_to_msg(IIWA_JOINTS, q, qd, np.full(7, np.nan))


def test_gripper_and_component_roundtrip():
    for pos in (m.GRIPPER_OPEN_RAD, 0.4, m.GRIPPER_CLOSED_RAD):
        assert m.gripper_command_from_msg(cdr_roundtrip(m.gripper_command_to_msg(pos))) == pos
    assert m.component_from_msg(cdr_roundtrip(m.component_to_msg(np.int64(5)))) == 5


@given(st.integers(min_value=0, max_value=2**31 * 10**9 - 1))
def test_time_ns_roundtrip_is_exact(ns):
    assert m.time_ns_from_msg(cdr_roundtrip(m.time_ns_to_msg(ns))) == ns


@given(st.floats(min_value=0.0, max_value=2.0e9, allow_nan=False))
def test_time_seconds_roundtrip(seconds):
    t = cdr_roundtrip(m.time_to_msg(seconds))
    assert 0 <= t.nanosec < 10**9
    assert math.isclose(m.time_from_msg(t), seconds, rel_tol=0.0, abs_tol=1e-6)


def test_duration_and_time_carry():
    assert m.time_to_msg(1.9999999999) == m.Time(sec=2, nanosec=0)
    assert m.duration_from_msg(cdr_roundtrip(m.duration_to_msg(0.05))) == 0.05


def test_serialize_rejects_non_messages():
    with pytest.raises(ValueError, match="not a ROS 2 message"):
        m.serialize({"data": "reach"})
    with pytest.raises(ValueError, match="unknown message type"):
        m.deserialize(b"\x00\x01\x00\x00", "std_msgs/String")


def test_text_roundtrip_allows_blank_but_not_non_text():
    assert m.text_from_msg(cdr_roundtrip(m.text_to_msg(""))) == ""
    assert m.text_from_msg(cdr_roundtrip(m.text_to_msg('{"state": "done"}'))) == '{"state": "done"}'
    with pytest.raises(ValueError, match="str"):
        m.text_to_msg(3)


def test_object_poses_roundtrip():
    msg = cdr_roundtrip(m.object_poses_to_msg({"object": [0.6, 0.05, 0.02], "goal": np.array([0.7, -0.1, 0.2])},
                                              stamp=4.25, frame_id="base"))
    assert msg.__msgtype__ == "tf2_msgs/msg/TFMessage"
    poses = m.object_poses_from_msg(msg)
    assert list(poses) == ["object", "goal"]
    np.testing.assert_array_equal(poses["goal"][0], [0.7, -0.1, 0.2])
    assert poses["object"][1:] == (4.25, "base")
    assert [t.transform.rotation.w for t in msg.transforms] == [1.0, 1.0]
    with pytest.raises(ValueError, match="finite"):
        m.object_poses_to_msg({"object": [0.6, np.inf, 0.0]}, stamp=0.0)
    with pytest.raises(ValueError, match="name"):
        m.object_poses_to_msg({"": [0.6, 0.0, 0.0]}, stamp=0.0)
    with pytest.raises(ValueError, match="frame_id"):
        m.object_poses_to_msg({"object": [0.6, 0.0, 0.0]}, stamp=0.0, frame_id="")


def test_audio_roundtrip_is_exact_and_labelled():
    pcm = np.array([0, 1, -1, 32767, -32768], np.int16)
    msg = cdr_roundtrip(m.audio_to_msg(pcm))
    assert msg.__msgtype__ == "std_msgs/msg/Int16MultiArray"
    back = m.audio_from_msg(msg)
    assert back.dtype == np.int16 and np.array_equal(back, pcm)
    with pytest.raises(ValueError, match="int16"):
        m.audio_to_msg(pcm.astype(np.float32))
    msg.layout.dim[0].label = "other"
    with pytest.raises(ValueError, match="audio"):
        m.audio_from_msg(msg)


def test_diagnostics_roundtrip():
    msg = cdr_roundtrip(m.diagnostics_to_msg("legion: safety", m.DIAG_WARN, "HOLD", {"workspace": 2, "estop": 0},
                                             stamp=7.5, hardware_id="lbr_fri_ros2_stack"))
    assert msg.__msgtype__ == "diagnostic_msgs/msg/DiagnosticArray"
    assert m.diagnostics_from_msg(msg) == [("legion: safety", 1, "HOLD", {"workspace": "2", "estop": "0"})]
    assert msg.status[0].hardware_id == "lbr_fri_ros2_stack"
    with pytest.raises(ValueError, match="level"):
        m.diagnostics_to_msg("x", 7, "", {}, stamp=0.0)


@pytest.mark.parametrize("encoding, shape", [("mono8", (4, 6)), ("rgb8", (4, 6, 3)), ("bgr8", (3, 5, 3))])
def test_image_roundtrip_is_exact(encoding, shape):
    pixels = (np.arange(np.prod(shape)) % 256).astype(np.uint8).reshape(shape)
    msg = cdr_roundtrip(m.image_to_msg(pixels, encoding, stamp=3.5, frame_id="camera_color_optical_frame"))
    assert msg.__msgtype__ == "sensor_msgs/msg/Image" and msg.step == shape[1] * (1 if encoding == "mono8" else 3)
    back, enc, stamp, frame = m.image_from_msg(msg)
    assert np.array_equal(back, pixels) and (enc, stamp, frame) == (encoding, 3.5, "camera_color_optical_frame")
    with pytest.raises(ValueError, match="encoding"):
        m.image_to_msg(pixels, "16UC1", stamp=0.0, frame_id="c")
    msg.data = msg.data[:-1]
    with pytest.raises(ValueError, match="does not match"):
        m.image_from_msg(msg)


def test_camera_info_roundtrip_and_uncalibrated_camera():
    msg = cdr_roundtrip(m.camera_info_to_msg(615.2, 614.8, 321.0, 239.5, 640, 480, stamp=1.0, frame_id="cam"))
    assert msg.__msgtype__ == "sensor_msgs/msg/CameraInfo"
    assert m.camera_info_from_msg(msg) == (615.2, 614.8, 321.0, 239.5, 640, 480)
    msg.k = np.zeros(9)
    with pytest.raises(ValueError, match="calibrated"):
        m.camera_info_from_msg(msg)
