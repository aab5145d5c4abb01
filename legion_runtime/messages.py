"""Conversions between the stack's numpy/python values and standard ROS 2 messages, without ROS.

Messages are the dataclasses of rosbags' ROS 2 Jazzy typestore (``rosbags.typesys.Stores.ROS2_JAZZY``),
which carry the real ROS 2 message definitions; :func:`serialize` / :func:`deserialize` give the CDR
bytes that rclpy and rosbag2 use. Thin rclpy nodes and :mod:`legion_runtime.bag` call these
functions; topic names live in ``legion_runtime/graph.py``, not here.

Every ``X_to_msg`` has an inverse ``X_from_msg``. Inputs are checked (size, finiteness, range) and
bad input raises ``ValueError`` saying what is wrong. Units follow REP-103 (m, rad, s); stamps are
seconds as float (see :func:`time_to_msg` for their precision) or integer nanoseconds.

Choices:

* Cartesian target: ``geometry_msgs/msg/PointStamped``. The policy commands the TCP position only;
  the gripper stays top-down (fixed orientation, applied by the IK), so a pose would carry a
  constant quaternion and invite consumers to follow it.
* Gripper: the Jazzy typestore has no ``control_msgs`` (GripperCommand / ParallelGripperCommand are
  actions, not topics), so the command is ``std_msgs/msg/Float64`` holding the 2F-85 knuckle angle
  in rad; the rclpy node copies it into the action goal (``command.position``).
* Float32MultiArray payloads carry one layout dimension whose label names the content
  ("embedding", "observation", "action"); the inverse checks it, which catches mis-wired topics.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from rosbags.typesys import Stores, get_typestore

from sim2real.observation import ACTION_DIM, OBS_DIM

#: ROS 2 Jazzy message definitions (rosbags). Use it to look up classes or register extra types.
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)

_T = TYPESTORE.types
Time = _T["builtin_interfaces/msg/Time"]
Duration = _T["builtin_interfaces/msg/Duration"]
Header = _T["std_msgs/msg/Header"]
String = _T["std_msgs/msg/String"]
Int32 = _T["std_msgs/msg/Int32"]
Float64 = _T["std_msgs/msg/Float64"]
MultiArrayDimension = _T["std_msgs/msg/MultiArrayDimension"]
MultiArrayLayout = _T["std_msgs/msg/MultiArrayLayout"]
Float32MultiArray = _T["std_msgs/msg/Float32MultiArray"]
Float64MultiArray = _T["std_msgs/msg/Float64MultiArray"]
Int16MultiArray = _T["std_msgs/msg/Int16MultiArray"]
Point = _T["geometry_msgs/msg/Point"]
PointStamped = _T["geometry_msgs/msg/PointStamped"]
JointState = _T["sensor_msgs/msg/JointState"]
JointTrajectory = _T["trajectory_msgs/msg/JointTrajectory"]
JointTrajectoryPoint = _T["trajectory_msgs/msg/JointTrajectoryPoint"]
TFMessage = _T["tf2_msgs/msg/TFMessage"]
Image = _T["sensor_msgs/msg/Image"]
CameraInfo = _T["sensor_msgs/msg/CameraInfo"]
RegionOfInterest = _T["sensor_msgs/msg/RegionOfInterest"]
DiagnosticArray = _T["diagnostic_msgs/msg/DiagnosticArray"]
DiagnosticStatus = _T["diagnostic_msgs/msg/DiagnosticStatus"]
KeyValue = _T["diagnostic_msgs/msg/KeyValue"]
TransformStamped = _T["geometry_msgs/msg/TransformStamped"]
Transform = _T["geometry_msgs/msg/Transform"]
Vector3 = _T["geometry_msgs/msg/Vector3"]
Quaternion = _T["geometry_msgs/msg/Quaternion"]

#: Robotiq 2F-85 knuckle angle (ros2_robotiq_gripper, joint ``robotiq_85_left_knuckle_joint``), rad.
GRIPPER_OPEN_RAD = 0.0
GRIPPER_CLOSED_RAD = 0.7929
GRIPPER_LIMIT_RAD = 0.8
#: Degrees of freedom of the LBR iiwa 14 arm.
ARM_DOF = 7
_INT32_MAX = 2**31 - 1
_NS = 1_000_000_000


# --- CDR ---------------------------------------------------------------------------------------

def serialize(msg: Any) -> bytes:
    """Serialise a message to little-endian CDR bytes, as rclpy and rosbag2 store them.

    Args:
        msg: a rosbags ROS 2 message (any typestore dataclass with ``__msgtype__``).

    Raises:
        ValueError: ``msg`` is not a ROS 2 message of :data:`TYPESTORE`.
    """
    msgtype = getattr(msg, "__msgtype__", None)
    if msgtype not in TYPESTORE.types:
        raise ValueError(f"cannot serialise {type(msg).__name__}: not a ROS 2 message of the Jazzy typestore")
    return bytes(TYPESTORE.serialize_cdr(msg, msgtype))


def deserialize(data: bytes, msgtype: str) -> Any:
    """Deserialise CDR bytes into a message of type ``msgtype`` (e.g. ``"std_msgs/msg/String"``).

    Raises:
        ValueError: unknown ``msgtype``.
    """
    if msgtype not in TYPESTORE.types:
        raise ValueError(f"unknown message type {msgtype!r}; expected e.g. 'std_msgs/msg/String'")
    return TYPESTORE.deserialize_cdr(data, msgtype)


def _expect(msg: Any, msgtype: str) -> None:
    """Check a message's type by name (messages read from a bag come from another typestore)."""
    got = getattr(msg, "__msgtype__", type(msg).__name__)
    if got != msgtype:
        raise ValueError(f"expected a {msgtype} message, got {got}")


# --- time --------------------------------------------------------------------------------------

def time_ns_to_msg(ns: int) -> Any:
    """Integer nanoseconds since the epoch (or since start, in simulation) -> builtin_interfaces/msg/Time.

    Raises:
        ValueError: ``ns`` is not an integer in [0, 2**31 s) (Time.sec is int32).
    """
    if isinstance(ns, bool) or not isinstance(ns, (int, np.integer)):
        raise ValueError(f"time must be an integer number of nanoseconds, got {ns!r}")
    sec, nanosec = divmod(int(ns), _NS)
    if not 0 <= sec <= _INT32_MAX:
        raise ValueError(f"time {ns} ns is outside builtin_interfaces/Time's range [0, 2**31) s")
    return Time(sec=sec, nanosec=nanosec)


def time_ns_from_msg(msg: Any) -> int:
    """builtin_interfaces/msg/Time -> integer nanoseconds (exact)."""
    _expect(msg, "builtin_interfaces/msg/Time")
    return int(msg.sec) * _NS + int(msg.nanosec)


def time_to_msg(seconds: float) -> Any:
    """Seconds (float) -> builtin_interfaces/msg/Time, rounded to the nearest nanosecond.

    A float64 holds epoch seconds (~1.7e9) to ~0.2 us, so a round trip through seconds agrees to
    about 1e-6 s; use :func:`time_ns_to_msg` where exactness matters.

    Raises:
        ValueError: ``seconds`` is not finite or not in [0, 2**31).
    """
    seconds = float(seconds)
    if not math.isfinite(seconds) or not 0.0 <= seconds < _INT32_MAX:
        raise ValueError(f"time must be finite seconds in [0, 2**31 - 1), got {seconds!r}")
    sec = math.floor(seconds)
    nanosec = round((seconds - sec) * _NS)  # seconds - sec is exact in float64
    if nanosec == _NS:  # rounding carried into the next second
        sec, nanosec = sec + 1, 0
    return Time(sec=sec, nanosec=nanosec)


def time_from_msg(msg: Any) -> float:
    """builtin_interfaces/msg/Time -> seconds (float)."""
    _expect(msg, "builtin_interfaces/msg/Time")
    return msg.sec + msg.nanosec / _NS


def duration_to_msg(seconds: float) -> Any:
    """Non-negative seconds -> builtin_interfaces/msg/Duration (nearest nanosecond)."""
    t = time_to_msg(seconds)
    return Duration(sec=t.sec, nanosec=t.nanosec)


def duration_from_msg(msg: Any) -> float:
    """builtin_interfaces/msg/Duration -> seconds (float)."""
    _expect(msg, "builtin_interfaces/msg/Duration")
    return msg.sec + msg.nanosec / _NS


def _header(stamp: float, frame_id: str) -> Any:
    return Header(stamp=time_to_msg(stamp), frame_id=frame_id)


# --- validation helpers ------------------------------------------------------------------------

def _vector(values: Any, name: str, size: int | None, dtype: type) -> np.ndarray:
    """1-d finite copy of ``values`` as ``dtype``, checked for size (None: any size >= 1)."""
    v = np.array(values, dtype=np.float64)
    if v.ndim != 1 or (size is not None and v.shape != (size,)):
        want = f"({size},)" if size is not None else "(D,)"
        raise ValueError(f"{name} must have shape {want}, got shape {v.shape}")
    if v.size == 0:
        raise ValueError(f"{name} is empty; it needs at least one value")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite, got {v}")
    if np.any(np.abs(v) > np.finfo(dtype).max):
        raise ValueError(f"{name} exceeds the {np.dtype(dtype).name} range, got {v}")
    return v.astype(dtype)


def _names(joint_names: Sequence[str], n: int) -> list[str]:
    names = list(joint_names)
    if len(names) != n or not all(isinstance(s, str) and s for s in names) or len(set(names)) != n:
        raise ValueError(f"need {n} distinct, non-empty joint names (one per value), got {names!r}")
    return names


# --- std_msgs ----------------------------------------------------------------------------------

def text_to_msg(text: str) -> Any:
    """Any text, blank included (an idle subtask, a JSON status) -> std_msgs/msg/String. Raises ValueError on non-str."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    return String(data=text)


def text_from_msg(msg: Any) -> str:
    """std_msgs/msg/String -> its text."""
    _expect(msg, "std_msgs/msg/String")
    return msg.data


def command_to_msg(text: str) -> Any:
    """Spoken/typed command text -> std_msgs/msg/String.

    Raises:
        ValueError: ``text`` is not a string or is blank.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"command must be non-blank text, got {text!r}")
    return String(data=text)


def command_from_msg(msg: Any) -> str:
    """std_msgs/msg/String -> command text."""
    _expect(msg, "std_msgs/msg/String")
    return command_to_msg(msg.data).data


def _labelled_array_to_msg(values: Any, label: str, size: int | None) -> Any:
    v = _vector(values, label, size, np.float32)
    dim = MultiArrayDimension(label=label, size=v.size, stride=v.size)
    return Float32MultiArray(layout=MultiArrayLayout(dim=[dim], data_offset=0), data=v)


def _labelled_array_from_msg(msg: Any, label: str, size: int | None) -> np.ndarray:
    _expect(msg, "std_msgs/msg/Float32MultiArray")
    dims = msg.layout.dim
    if len(dims) != 1 or dims[0].label != label:
        raise ValueError(f"expected one layout dimension labelled {label!r}, got {[d.label for d in dims]}")
    if dims[0].size != len(msg.data) or msg.layout.data_offset != 0:
        raise ValueError(f"{label} layout says size {dims[0].size}, offset {msg.layout.data_offset}, "
                         f"but data has {len(msg.data)} values")
    return _vector(msg.data, label, size, np.float32)


def audio_to_msg(pcm: Any) -> Any:
    """Mono 16 kHz int16 samples (N,) -> std_msgs/msg/Int16MultiArray (dim label "audio", size N).

    Raises:
        ValueError: not a 1-d int16 array.
    """
    a = np.asarray(pcm)
    if a.ndim != 1 or a.dtype != np.int16:
        raise ValueError(f"audio must be 1-d int16 samples (16 kHz mono), got {a.dtype} of shape {a.shape}")
    dim = MultiArrayDimension(label="audio", size=a.size, stride=a.size)
    return Int16MultiArray(layout=MultiArrayLayout(dim=[dim], data_offset=0), data=a.copy())


def audio_from_msg(msg: Any) -> np.ndarray:
    """Int16MultiArray (label "audio") -> int16 samples (N,). Raises ValueError on a mis-labelled array."""
    _expect(msg, "std_msgs/msg/Int16MultiArray")
    dims = msg.layout.dim
    if len(dims) != 1 or dims[0].label != "audio" or dims[0].size != len(msg.data):
        raise ValueError(f"expected one layout dimension labelled 'audio' of size {len(msg.data)}, "
                         f"got {[(d.label, d.size) for d in dims]}")
    return np.asarray(msg.data, dtype=np.int16)


def embedding_to_msg(embedding: Any) -> Any:
    """Language embedding (D,) float32 -> std_msgs/msg/Float32MultiArray (dim label "embedding", size D).

    Raises:
        ValueError: not 1-d, empty, or not finite.
    """
    return _labelled_array_to_msg(embedding, "embedding", None)


def embedding_from_msg(msg: Any, dim: int | None = None) -> np.ndarray:
    """Float32MultiArray -> (D,) float32 embedding; ``dim`` (e.g. 384) checks D when given."""
    return _labelled_array_from_msg(msg, "embedding", dim)


def observation_to_msg(observation: Any) -> Any:
    """12-d observation s_t (``sim2real.observation`` layout, m) -> Float32MultiArray (label "observation")."""
    return _labelled_array_to_msg(observation, "observation", OBS_DIM)


def observation_from_msg(msg: Any) -> np.ndarray:
    """Float32MultiArray -> (12,) float32 observation."""
    return _labelled_array_from_msg(msg, "observation", OBS_DIM)


def action_to_msg(action: Any) -> Any:
    """4-d action a_t (dx, dy, dz, gripper; Meta-World units, nominally [-1, 1]) -> Float32MultiArray
    (label "action"). Range limits are the safety layer's job; here only size and finiteness."""
    return _labelled_array_to_msg(action, "action", ACTION_DIM)


def action_from_msg(msg: Any) -> np.ndarray:
    """Float32MultiArray -> (4,) float32 action."""
    return _labelled_array_from_msg(msg, "action", ACTION_DIM)


def component_to_msg(k: int) -> Any:
    """Index of the inferred DPMM component (knowledge-space cluster) -> std_msgs/msg/Int32.

    Raises:
        ValueError: ``k`` is not an integer in [0, 2**31).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= _INT32_MAX:
        raise ValueError(f"component index must be an integer in [0, 2**31), got {k!r}")
    return Int32(data=int(k))


def component_from_msg(msg: Any) -> int:
    """std_msgs/msg/Int32 -> component index."""
    _expect(msg, "std_msgs/msg/Int32")
    return component_to_msg(msg.data).data


def gripper_command_to_msg(position: float) -> Any:
    """Robotiq 2F-85 knuckle angle in rad (0 open .. 0.7929 closed; joint limit 0.8) -> std_msgs/msg/Float64.

    Raises:
        ValueError: not finite or outside [0, 0.8] rad.
    """
    position = float(position)
    if not math.isfinite(position) or not GRIPPER_OPEN_RAD <= position <= GRIPPER_LIMIT_RAD:
        raise ValueError(f"gripper position must be in [0, {GRIPPER_LIMIT_RAD}] rad "
                         f"(0 open, {GRIPPER_CLOSED_RAD} closed), got {position!r}")
    return Float64(data=position)


def gripper_command_from_msg(msg: Any) -> float:
    """std_msgs/msg/Float64 -> knuckle angle, rad (validated as in :func:`gripper_command_to_msg`)."""
    _expect(msg, "std_msgs/msg/Float64")
    return gripper_command_to_msg(msg.data).data


# --- geometry / joints -------------------------------------------------------------------------

def cartesian_target_to_msg(position: Any, stamp: float, frame_id: str = "base") -> Any:
    """TCP target position (3,) in m, expressed in ``frame_id`` -> geometry_msgs/msg/PointStamped.

    Orientation is not carried: the gripper is held top-down (see module notes).

    Raises:
        ValueError: not a finite 3-vector, bad stamp, or empty ``frame_id``.
    """
    p = _vector(position, "cartesian target", 3, np.float64)
    if not frame_id:
        raise ValueError("frame_id must name the frame the target is expressed in, e.g. 'base'")
    return PointStamped(header=_header(stamp, frame_id), point=Point(x=p[0], y=p[1], z=p[2]))


def cartesian_target_from_msg(msg: Any) -> tuple[np.ndarray, float, str]:
    """PointStamped -> (position (3,) float64 m, stamp s, frame_id)."""
    _expect(msg, "geometry_msgs/msg/PointStamped")
    p = _vector([msg.point.x, msg.point.y, msg.point.z], "cartesian target", 3, np.float64)
    return p, time_from_msg(msg.header.stamp), msg.header.frame_id


def object_poses_to_msg(positions: dict[str, Any], stamp: float | dict[str, float], frame_id: str = "base") -> Any:
    """Object positions {name: (3,) m in ``frame_id``} -> tf2_msgs/msg/TFMessage, one transform per object.

    Each transform has ``header.frame_id = frame_id``, ``child_frame_id = name`` and the identity rotation
    (the policy uses object positions only). ``stamp`` is the detection time, s, one for all or {name: s} per
    object (each transform has its own header): consumers judge staleness by it.

    Raises:
        ValueError: an empty name or frame, or a position that is not a finite 3-vector.
    """
    if not frame_id:
        raise ValueError("frame_id must name the frame the positions are expressed in, e.g. 'base'")
    transforms = []
    for name, position in positions.items():
        if not name:
            raise ValueError("every object needs a name (child_frame_id)")
        p = _vector(position, f"position of {name!r}", 3, np.float64)
        t = stamp[name] if isinstance(stamp, dict) else stamp
        transforms.append(TransformStamped(header=_header(t, frame_id), child_frame_id=name,
                                           transform=Transform(translation=Vector3(x=p[0], y=p[1], z=p[2]),
                                                               rotation=Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))))
    return TFMessage(transforms=transforms)


def object_poses_from_msg(msg: Any) -> dict[str, tuple[np.ndarray, float, str]]:
    """TFMessage -> {name: (position (3,) float64 m, stamp s, frame_id)}.

    Raises:
        ValueError: a non-finite position or an empty child frame.
    """
    _expect(msg, "tf2_msgs/msg/TFMessage")
    out = {}
    for t in msg.transforms:
        if not t.child_frame_id:
            raise ValueError("a transform without child_frame_id cannot name an object")
        v = t.transform.translation
        out[t.child_frame_id] = (_vector([v.x, v.y, v.z], f"position of {t.child_frame_id!r}", 3, np.float64),
                                 time_from_msg(t.header.stamp), t.header.frame_id)
    return out


#: sensor_msgs/Image encodings this stack reads and writes -> channels
IMAGE_ENCODINGS = {"mono8": 1, "rgb8": 3, "bgr8": 3}


def image_to_msg(pixels: Any, encoding: str, stamp: float, frame_id: str) -> Any:
    """uint8 image (H, W) mono8 or (H, W, 3) rgb8/bgr8 -> sensor_msgs/msg/Image (row-major, step = W * channels).

    Raises:
        ValueError: unknown encoding, or an array whose dtype/shape does not fit it.
    """
    a = np.asarray(pixels)
    channels = IMAGE_ENCODINGS.get(encoding)
    if channels is None:
        raise ValueError(f"image encoding must be one of {sorted(IMAGE_ENCODINGS)}, got {encoding!r}")
    if a.dtype != np.uint8 or a.ndim != (2 if channels == 1 else 3) or (channels == 3 and a.shape[2] != 3):
        raise ValueError(f"{encoding} needs uint8 of shape (H, W{'' if channels == 1 else ', 3'}), got {a.dtype} {a.shape}")
    return Image(header=_header(stamp, frame_id), height=a.shape[0], width=a.shape[1], encoding=encoding,
                 is_bigendian=0, step=a.shape[1] * channels, data=np.ascontiguousarray(a).reshape(-1).copy())


def image_from_msg(msg: Any) -> tuple[np.ndarray, str, float, str]:
    """sensor_msgs/msg/Image -> (pixels uint8 (H, W) or (H, W, 3), encoding, stamp s, frame_id).

    Raises:
        ValueError: an encoding other than mono8/rgb8/bgr8, or data that does not match height, width and step.
    """
    _expect(msg, "sensor_msgs/msg/Image")
    channels = IMAGE_ENCODINGS.get(msg.encoding)
    if channels is None:
        raise ValueError(f"image encoding {msg.encoding!r} is not supported; publish one of {sorted(IMAGE_ENCODINGS)}")
    if msg.step < msg.width * channels or len(msg.data) != msg.step * msg.height:
        raise ValueError(f"image data ({len(msg.data)} bytes, step {msg.step}) does not match {msg.height} x {msg.width} "
                         f"{msg.encoding}")
    rows = np.asarray(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)[:, : msg.width * channels]
    pixels = rows.reshape(msg.height, msg.width) if channels == 1 else rows.reshape(msg.height, msg.width, 3)
    return pixels, msg.encoding, time_from_msg(msg.header.stamp), msg.header.frame_id


def camera_info_to_msg(fx: float, fy: float, cx: float, cy: float, width: int, height: int, stamp: float,
                       frame_id: str) -> Any:
    """Pinhole intrinsics of a rectified image -> sensor_msgs/msg/CameraInfo (plumb_bob, zero distortion)."""
    k = np.array([fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0])
    p = np.array([fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
    return CameraInfo(header=_header(stamp, frame_id), height=int(height), width=int(width), distortion_model="plumb_bob",
                      d=np.zeros(5), k=k, r=np.eye(3).reshape(-1), p=p, binning_x=0, binning_y=0,
                      roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def camera_info_from_msg(msg: Any) -> tuple[float, float, float, float, int, int]:
    """sensor_msgs/msg/CameraInfo -> (fx, fy, cx, cy, width, height) from K.

    Raises:
        ValueError: K is not a pinhole matrix with positive focal lengths (an uncalibrated camera sends zeros).
    """
    _expect(msg, "sensor_msgs/msg/CameraInfo")
    k = np.asarray(msg.k, dtype=np.float64)
    if k.shape != (9,) or not (k[0] > 0 and k[4] > 0) or not np.all(np.isfinite(k)):
        raise ValueError(f"camera_info K must hold positive focal lengths, got {k.tolist()}: is the camera calibrated?")
    return float(k[0]), float(k[4]), float(k[2]), float(k[5]), int(msg.width), int(msg.height)


#: diagnostic_msgs/DiagnosticStatus levels
DIAG_OK, DIAG_WARN, DIAG_ERROR, DIAG_STALE = 0, 1, 2, 3


def diagnostics_to_msg(name: str, level: int, message: str, values: dict[str, Any], stamp: float,
                       hardware_id: str = "") -> Any:
    """One component's status -> diagnostic_msgs/msg/DiagnosticArray (values as strings, as the message has them).

    Raises:
        ValueError: ``level`` not one of OK 0, WARN 1, ERROR 2, STALE 3.
    """
    if level not in (DIAG_OK, DIAG_WARN, DIAG_ERROR, DIAG_STALE):
        raise ValueError(f"diagnostic level must be 0..3 (OK, WARN, ERROR, STALE), got {level!r}")
    status = DiagnosticStatus(level=int(level), name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=str(k), value=str(v)) for k, v in values.items()])
    return DiagnosticArray(header=_header(stamp, ""), status=[status])


def diagnostics_from_msg(msg: Any) -> list[tuple[str, int, str, dict[str, str]]]:
    """DiagnosticArray -> [(name, level, message, {key: value})]."""
    _expect(msg, "diagnostic_msgs/msg/DiagnosticArray")
    return [(st.name, int(st.level), st.message, {kv.key: kv.value for kv in st.values}) for st in msg.status]


def joint_trajectory_to_msg(positions: Any, joint_names: Sequence[str], stamp: float, period: float) -> Any:
    """Joint targets (n,) rad -> trajectory_msgs/msg/JointTrajectory with one point reached after ``period``.

    This is what ros2_controllers' joint_trajectory_controller (lbr_fri_ros2_stack:
    ``/lbr/joint_trajectory_controller/joint_trajectory``) accepts: it interpolates from the current
    state to the point over ``time_from_start = period`` (the policy's control period, e.g. 0.05 s at
    20 Hz). ``stamp = 0.0`` means "start on receipt" to the controller.

    Args:
        positions: (n,) joint positions, rad (n = 7 for the iiwa).
        joint_names: n names in the same order, e.g. ``lbr_A1`` .. ``lbr_A7``.
        stamp: header stamp, s.
        period: time from start of the point, s, > 0.

    Raises:
        ValueError: sizes disagree, non-finite values, or ``period`` <= 0.
    """
    q = _vector(positions, "joint positions", None, np.float64)
    names = _names(joint_names, q.size)
    if not (math.isfinite(period) and period > 0):
        raise ValueError(f"period (time_from_start) must be > 0 s, got {period!r}")
    empty = np.zeros(0, dtype=np.float64)
    point = JointTrajectoryPoint(positions=q, velocities=empty, accelerations=empty, effort=empty,
                                 time_from_start=duration_to_msg(period))
    return JointTrajectory(header=_header(stamp, ""), joint_names=names, points=[point])


def joint_trajectory_from_msg(msg: Any) -> tuple[np.ndarray, list[str], float, float]:
    """Single-point JointTrajectory -> (positions (n,) float64 rad, joint names, stamp s, period s).

    Raises:
        ValueError: the trajectory does not have exactly one point, or sizes disagree.
    """
    _expect(msg, "trajectory_msgs/msg/JointTrajectory")
    if len(msg.points) != 1:
        raise ValueError(f"expected a single-point trajectory, got {len(msg.points)} points")
    point = msg.points[0]
    q = _vector(point.positions, "joint positions", len(msg.joint_names), np.float64)
    return q, _names(msg.joint_names, q.size), time_from_msg(msg.header.stamp), duration_from_msg(point.time_from_start)


def joint_positions_to_msg(positions: Any) -> Any:
    """Joint targets (n,) rad -> std_msgs/msg/Float64MultiArray, the forward_position_controller form
    (``/lbr/forward_position_controller/commands``: data in controller joint order, empty layout).

    Raises:
        ValueError: not 1-d or not finite.
    """
    q = _vector(positions, "joint positions", None, np.float64)
    return Float64MultiArray(layout=MultiArrayLayout(dim=[], data_offset=0), data=q)


def joint_positions_from_msg(msg: Any, dof: int = ARM_DOF) -> np.ndarray:
    """Float64MultiArray -> (dof,) float64 joint positions, rad."""
    _expect(msg, "std_msgs/msg/Float64MultiArray")
    return _vector(msg.data, "joint positions", dof, np.float64)


class JointStateValues(NamedTuple):
    """Values of a sensor_msgs/msg/JointState: names, q (n,) rad, qd (n,) rad/s, effort (n,) N·m or None, stamp s."""

    names: list[str]
    position: np.ndarray
    velocity: np.ndarray | None
    effort: np.ndarray | None
    stamp: float


def joint_state_to_msg(names: Sequence[str], position: Any, velocity: Any, effort: Any = None,
                       stamp: float = 0.0) -> Any:
    """Joint names, q (n,) rad, qd (n,) rad/s, optional effort (n,) N·m, stamp s -> sensor_msgs/msg/JointState.

    Raises:
        ValueError: sizes disagree with ``names`` or values are not finite.
    """
    q = _vector(position, "joint position", None, np.float64)
    names = _names(names, q.size)
    qd = _vector(velocity, "joint velocity", q.size, np.float64)
    tau = np.zeros(0) if effort is None else _vector(effort, "joint effort", q.size, np.float64)
    return JointState(header=_header(stamp, ""), name=names, position=q, velocity=qd, effort=tau)


def joint_state_from_msg(msg: Any) -> JointStateValues:
    """JointState -> :class:`JointStateValues`; velocity/effort are None where the message leaves them empty.

    Raises:
        ValueError: a non-empty field's length differs from the number of names, or non-finite values.
    """
    _expect(msg, "sensor_msgs/msg/JointState")
    q = _vector(msg.position, "joint position", len(msg.name), np.float64)
    names = _names(msg.name, q.size)
    qd = None if len(msg.velocity) == 0 else _vector(msg.velocity, "joint velocity", q.size, np.float64)
    tau = None if len(msg.effort) == 0 else _vector(msg.effort, "joint effort", q.size, np.float64)
    return JointStateValues(names, q, qd, tau, time_from_msg(msg.header.stamp))
