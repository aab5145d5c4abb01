"""Sim2Real and Real2Sim: between the policy's sim-frame world and the robot's base frame.

Points of the hand:

* TCP: midpoint of the 2F-85's fingertip pads (:mod:`sim2real.kinematics`); safety checks and
  Meta-World's success tests use it.
* ee point: the policy's end effector, ``ee_offset_m`` behind the TCP along the approach axis.
  Meta-World's observation (and its mocap) report the Sawyer's ``hand`` body, 4.5 cm behind the
  centre of its finger pads, not the pads themselves; giving the policy the same point of the
  2F-85 keeps the fingers where the policy learned to put them (e.g. on a drawer handle).

Frames (REP-103 units, right-handed):

* ``sim``: Meta-World's world frame, in which the policy was trained (table centre near (0, 0.6, 0)).
* ``base``: the robot base frame (``lbr_link_0``), in which FK, IK and the driver work.

:class:`FrameTransform` is the rigid transform T_sim<-base (the arm base pose in the sim frame).
:class:`Sim2Real` turns policy actions into Cartesian commands like Meta-World's mocap does
(ee target += ACTION_SCALE_M * clip(a[:3], -1, 1), clipped to the hand workspace; gripper a[3] > 0
closes, as Meta-World's ``do_simulation([a, -a])`` on its claws) and an approved command into joint
targets by IK. :class:`Real2Sim` turns joint states (FK) and perceived object/goal positions into
the 12-d observation of :mod:`sim2real.observation`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import mujoco
import numpy as np

from sim2real.kinematics import JOINT_NAMES, TOP_DOWN_ROT, ArmKinematics, IKResult, default_kinematics
from sim2real.gripper import pad_distance
from sim2real.observation import ACTION_SCALE_M, build_observation, check_layout, gripper_opening

#: Default arm base position in the sim frame, m: 0.1 m behind the Sawyer's spot (see
#: ``legion_sim.kuka_scene``; the simulated plant uses this pose).
DEFAULT_BASE_POS_SIM = (0.0, 0.1, 0.0)
#: Default arm base orientation in the sim frame, quaternion (w, x, y, z): axes aligned.
DEFAULT_BASE_QUAT_SIM = (1.0, 0.0, 0.0, 0.0)
#: Meta-World's observed ``hand`` body lies this far behind the centre of the Sawyer's finger pads
#: (``tcp_center``) along the approach axis, m (measured: hand - tcp_center = (0.001, -0.004, 0.0446)).
METAWORLD_EE_OFFSET_M = 0.045
#: Meta-World v3's hand/mocap box for reach-v3 and drawer-close-v3 (``hand_low``/``hand_high``), sim frame, m.
METAWORLD_HAND_LOW = (-0.5, 0.40, 0.05)
METAWORLD_HAND_HIGH = (0.5, 1.0, 0.5)


def _vec3(v, name: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be a finite 3-vector in metres, got {v!r}")
    return v


@dataclass(frozen=True)
class FrameTransform:
    """Rigid transform T_sim<-base: p_sim = rotation @ p_base + translation.

    Attributes:
        translation: (3,) base origin in the sim frame, m.
        rotation: (3, 3) base axes in the sim frame (columns).
    """

    translation: np.ndarray
    rotation: np.ndarray

    def __post_init__(self):
        t = _vec3(self.translation, "translation")
        r = np.asarray(self.rotation, dtype=np.float64)
        if r.shape != (3, 3) or not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
            raise ValueError(f"rotation must be a 3x3 rotation matrix (orthonormal, det +1), got {r!r}")
        object.__setattr__(self, "translation", t)
        object.__setattr__(self, "rotation", r)

    @classmethod
    def from_pos_quat(cls, pos, quat_wxyz) -> "FrameTransform":
        """From the base position (3,) m and orientation quaternion (w, x, y, z) in the sim frame.

        Raises:
            ValueError: non-finite input or a zero quaternion.
        """
        q = np.asarray(quat_wxyz, dtype=np.float64).reshape(-1)
        if q.shape != (4,) or not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-9:
            raise ValueError(f"quat_wxyz must be a non-zero quaternion (w, x, y, z), got {q!r}")
        mat = np.empty(9)
        mujoco.mju_quat2Mat(mat, q / np.linalg.norm(q))
        return cls(_vec3(pos, "pos"), mat.reshape(3, 3))

    @classmethod
    def default(cls) -> "FrameTransform":
        """The arm base pose of the simulated scene (:data:`DEFAULT_BASE_POS_SIM`, axes aligned)."""
        return cls.from_pos_quat(DEFAULT_BASE_POS_SIM, DEFAULT_BASE_QUAT_SIM)

    @classmethod
    def from_dict(cls, d: Mapping) -> "FrameTransform":
        """From ``{translation: {x, y, z}, rotation: {x, y, z, w}}`` (geometry_msgs/Transform, easy_handeye).

        Raises:
            ValueError: a key is missing or a value is not a number.
        """
        try:
            t = [float(d["translation"][k]) for k in "xyz"]
            r = d["rotation"]
            quat = [float(r["w"]), float(r["x"]), float(r["y"]), float(r["z"])]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("expected {translation: {x, y, z}, rotation: {x, y, z, w}} in metres and a "
                             f"unit quaternion, got {d!r}") from exc
        return cls.from_pos_quat(t, quat)

    def to_dict(self) -> dict:
        """Inverse of :meth:`from_dict` (plain floats, quaternion with w >= 0)."""
        q = np.empty(4)
        mujoco.mju_mat2Quat(q, self.rotation.reshape(-1))
        q = q if q[0] >= 0 else -q
        return {"translation": dict(zip("xyz", map(float, self.translation))),
                "rotation": {"x": float(q[1]), "y": float(q[2]), "z": float(q[3]), "w": float(q[0])}}

    def to_sim(self, p_base) -> np.ndarray:
        """Point (3,) or points (N, 3) from the base frame to the sim frame, m."""
        return np.asarray(p_base, dtype=np.float64) @ self.rotation.T + self.translation

    def to_base(self, p_sim) -> np.ndarray:
        """Point (3,) or points (N, 3) from the sim frame to the base frame, m."""
        return (np.asarray(p_sim, dtype=np.float64) - self.translation) @ self.rotation

    def rotation_to_sim(self, rot_base) -> np.ndarray:
        """Orientation (3, 3) from the base frame to the sim frame."""
        return self.rotation @ np.asarray(rot_base, dtype=np.float64)

    def rotation_to_base(self, rot_sim) -> np.ndarray:
        """Orientation (3, 3) from the sim frame to the base frame."""
        return self.rotation.T @ np.asarray(rot_sim, dtype=np.float64)


#: The Sawyer's finger servo in Meta-World targets ``a[3]`` metres of finger travel (ctrl range [-1, 1]) on a
#: 0.04 m stroke: a <= 0 is open, a >= 0.04 fully closed. The 2F-85 closing fraction reproduces that.
METAWORLD_FINGER_STROKE_M = 0.04


def tcp_from_ee(ee_position_sim, ee_offset_m: float = METAWORLD_EE_OFFSET_M) -> np.ndarray:
    """(3,) TCP in the sim frame, m, from the observation's ee point (observation[0:3], sim frame, m).

    The gripper is held top-down (Sim2Real's target orientation :data:`sim2real.kinematics.TOP_DOWN_ROT`, given in
    the sim frame), so the TCP lies ``ee_offset_m`` along its approach axis from the ee point. This is what a node
    holding only the observation (the task sequencer) judges success tests with.

    Raises:
        ValueError: not a finite 3-vector.
    """
    return _vec3(ee_position_sim, "ee_position_sim") + float(ee_offset_m) * TOP_DOWN_ROT[:, 2]


def gripper_fraction(effort: float) -> float:
    """2F-85 closing fraction in [0, 1] for a Meta-World gripper action ``a[3]`` in [-1, 1].

    Meta-World's Sawyer fingers (``r_close``/``l_close`` position servos, ``sawyer_xyz`` XMLs) are open for
    a <= 0 and fully closed from a = 0.04 (their stroke, in metres); the fraction is clip(a / 0.04, 0, 1), so a
    policy or scripted expert that holds a at 0 keeps the gripper open, as on the Sawyer.

    Raises:
        ValueError: not a finite number.
    """
    a = float(effort)
    if not np.isfinite(a):
        raise ValueError(f"gripper effort must be a finite number in [-1, 1], got {effort!r}")
    return float(np.clip(a / METAWORLD_FINGER_STROKE_M, 0.0, 1.0))


@dataclass(frozen=True)
class CartesianCommand:
    """What the policy asks of the robot for one control step, before the safety filter and IK.

    Attributes:
        position_base: (3,) TCP target in the base frame, m (the ee target moved to the fingertips).
        gripper: closing fraction in [0, 1] (0 open, 1 closed).
        stamp: time of the action, s.
    """

    position_base: np.ndarray
    gripper: float
    stamp: float


class Sim2Real:
    """Policy action -> Cartesian command (Meta-World mocap semantics) -> joint targets (IK).

    Args:
        frame: T_sim<-base; default :meth:`FrameTransform.default`.
        action_scale_m: TCP displacement per action unit per step, m (Meta-World: 0.01).
        workspace_low_sim, workspace_high_sim: (3,) box the target is clipped to in the sim frame, m
            (Meta-World's mocap bounds by default); ``None`` for both disables clipping.
        target_rot_sim: TCP orientation kept by IK, in the sim frame (default: top-down, fingers along y).
        kinematics: IK/FK model; default :func:`sim2real.kinematics.default_kinematics`.
        ik_iterations: DLS iteration budget per command (warm-started).
        ee_offset_m: ee point behind the TCP along the approach axis, m (default Meta-World's hand, 0.045).

    Inputs and outputs are TCP positions (the measured TCP for :meth:`reset`, the TCP target in each
    command); the accumulated target inside is the ee point, as Meta-World's mocap holds the hand.
    Call :meth:`reset` with the measured TCP (``Real2Sim.tcp_position``) before the first :meth:`command`.
    """

    def __init__(self, frame: FrameTransform | None = None, action_scale_m: float = ACTION_SCALE_M,
                 workspace_low_sim: Sequence[float] | None = METAWORLD_HAND_LOW,
                 workspace_high_sim: Sequence[float] | None = METAWORLD_HAND_HIGH,
                 target_rot_sim=TOP_DOWN_ROT, kinematics: ArmKinematics | None = None, ik_iterations: int = 20,
                 ee_offset_m: float = METAWORLD_EE_OFFSET_M):
        if not (np.isfinite(action_scale_m) and 0.0 < action_scale_m <= 0.1):
            raise ValueError(f"action_scale_m must lie in (0, 0.1] m per step, got {action_scale_m}")
        if (workspace_low_sim is None) != (workspace_high_sim is None):
            raise ValueError("give both workspace_low_sim and workspace_high_sim, or neither")
        self.frame = frame or FrameTransform.default()
        self.action_scale_m = float(action_scale_m)
        self.workspace_low = None if workspace_low_sim is None else _vec3(workspace_low_sim, "workspace_low_sim")
        self.workspace_high = None if workspace_high_sim is None else _vec3(workspace_high_sim, "workspace_high_sim")
        if self.workspace_low is not None and np.any(self.workspace_low >= self.workspace_high):
            raise ValueError(f"workspace_low_sim {self.workspace_low} must be below workspace_high_sim "
                             f"{self.workspace_high} on every axis")
        if not (np.isfinite(ee_offset_m) and 0.0 <= ee_offset_m <= 0.3):
            raise ValueError(f"ee_offset_m must lie in [0, 0.3] m, got {ee_offset_m}")
        self.target_rot_base = self.frame.rotation_to_base(target_rot_sim)
        # ee point -> TCP: ee_offset_m further along the approach axis (the TCP's z axis)
        self._ee_to_tcp_base = float(ee_offset_m) * self.target_rot_base[:, 2]
        self._ee_to_tcp_sim = self.frame.rotation @ self._ee_to_tcp_base
        self.kinematics = kinematics or default_kinematics()
        self.ik_iterations = int(ik_iterations)
        self._target_sim: np.ndarray | None = None

    @property
    def target_sim(self) -> np.ndarray:
        """(3,) accumulated ee-point target in the sim frame, m (a copy)."""
        self._require_reset()
        return self._target_sim.copy()

    def _require_reset(self) -> None:
        if self._target_sim is None:
            raise RuntimeError("Sim2Real.reset(tcp_position_sim) must be called before the first command")

    def reset(self, tcp_position_sim) -> None:
        """Start from the measured TCP (sim frame, m; ``Real2Sim.tcp_position`` of the measured joints).

        The accumulated target starts at the ee point above it, as Meta-World's mocap starts at the hand.
        Call it at every episode start and after a HOLD (re-anchors the target on the robot).
        """
        self._target_sim = self._clip(_vec3(tcp_position_sim, "tcp_position_sim") - self._ee_to_tcp_sim)

    def _clip(self, p: np.ndarray) -> np.ndarray:
        return p if self.workspace_low is None else np.clip(p, self.workspace_low, self.workspace_high)

    def command(self, action, stamp: float | None = None) -> CartesianCommand:
        """Advance the target by one action (Meta-World's ``set_xyz_action``) and return the command.

        Args:
            action: (4,) policy action; a[:3] ee displacement in action units (clipped to [-1, 1],
                times ``action_scale_m``, sim axes), a[3] gripper effort in [-1, 1], > 0 closes.
            stamp: time of the action, s; default ``time.time()``.

        Returns:
            :class:`CartesianCommand` in the base frame, gripper fraction (clip(a[3]) + 1) / 2.

        Raises:
            ValueError: action is not 4 finite numbers.
            RuntimeError: :meth:`reset` was not called.
        """
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (4,) or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be 4 finite numbers (dx, dy, dz, gripper) in [-1, 1], got {a!r}")
        self._require_reset()
        a = np.clip(a, -1.0, 1.0)
        self._target_sim = self._clip(self._target_sim + self.action_scale_m * a[:3])
        return CartesianCommand(position_base=self.frame.to_base(self._target_sim) + self._ee_to_tcp_base,
                                gripper=gripper_fraction(a[3]),
                                stamp=time.time() if stamp is None else float(stamp))

    def joint_targets(self, command: CartesianCommand, q_seed) -> IKResult:
        """IK for an (approved) command: joint targets within the limits, warm-started from ``q_seed``.

        Args:
            command: the Cartesian command (after the safety filter).
            q_seed: (7,) last commanded or measured joint positions, rad.

        Returns:
            :class:`sim2real.kinematics.IKResult`; check ``converged`` (False: target unreachable,
            ``q`` is the closest configuration found, still within the limits).
        """
        return self.kinematics.solve_ik(command.position_base, q_seed, self.target_rot_base,
                                        max_iterations=self.ik_iterations)


class Real2Sim:
    """Robot state and perception -> the policy's 12-d sim-frame observation.

    Args:
        frame: T_sim<-base; default :meth:`FrameTransform.default`.
        kinematics: FK model; default :func:`sim2real.kinematics.default_kinematics`.
        joint_names: driver joint names in A1..A7 order (e.g. ``lbr_A1``..``lbr_A7`` for lbr_fri_ros2_stack);
            used by :meth:`joint_positions` to reorder ``sensor_msgs/JointState``.
        ee_offset_m: ee point behind the TCP along the approach axis, m (default Meta-World's hand, 0.045).
        observation_layout: the layout :meth:`observation` builds, a key of
            :data:`sim2real.observation.OBS_LAYOUTS`: the deployed checkpoint's (``LegionPolicy.observation_layout``).

    Raises:
        ValueError: bad joint names, an ee offset outside [0, 0.3] m or an unknown observation layout.
    """

    def __init__(self, frame: FrameTransform | None = None, kinematics: ArmKinematics | None = None,
                 joint_names: Sequence[str] = JOINT_NAMES, ee_offset_m: float = METAWORLD_EE_OFFSET_M,
                 observation_layout: str = "paper"):
        if len(joint_names) != 7 or len(set(joint_names)) != 7:
            raise ValueError(f"joint_names must be 7 distinct names in A1..A7 order, got {list(joint_names)}")
        if not (np.isfinite(ee_offset_m) and 0.0 <= ee_offset_m <= 0.3):
            raise ValueError(f"ee_offset_m must lie in [0, 0.3] m, got {ee_offset_m}")
        self.ee_offset_m = float(ee_offset_m)
        self.observation_layout = check_layout(observation_layout)
        self.frame = frame or FrameTransform.default()
        self.kinematics = kinematics or default_kinematics()
        self.joint_names = list(joint_names)
        #: (3,) sim frame, m: subtracted from every point of :meth:`observation`, so that a skill whose object set
        #: stands elsewhere than where it was trained sees the scene where it was trained (the paper's Real2Sim maps
        #: the real scene into the skill's frame). Zeros: none. Actions are displacements and need no mapping.
        self.workspace_offset_sim = np.zeros(3)

    def joint_positions(self, names: Sequence[str], positions: Sequence[float]) -> np.ndarray:
        """Reorder a JointState (``name``, ``position``) into (7,) A1..A7 positions, rad.

        Raises:
            ValueError: lengths differ, a configured joint is missing, or a position is not finite.
        """
        if len(names) != len(positions):
            raise ValueError(f"JointState has {len(names)} names but {len(positions)} positions")
        index = {n: i for i, n in enumerate(names)}
        missing = [n for n in self.joint_names if n not in index]
        if missing:
            raise ValueError(f"JointState lacks joints {missing}; it has {list(names)}. "
                             "Set Real2Sim(joint_names=...) to the driver's names.")
        q = np.array([positions[index[n]] for n in self.joint_names], dtype=np.float64)
        if not np.all(np.isfinite(q)):
            raise ValueError(f"JointState positions must be finite, got {q}")
        return q

    def tcp_position(self, q) -> np.ndarray:
        """TCP (3,) in the sim frame, m, by FK of joint positions q (7,) rad."""
        return self.frame.to_sim(self.kinematics.forward_kinematics(q)[0])

    def ee_position(self, q) -> np.ndarray:
        """ee point (3,) in the sim frame, m: ``ee_offset_m`` behind the TCP along its approach (z) axis."""
        pos, rot = self.kinematics.forward_kinematics(q)
        return self.frame.to_sim(pos - self.ee_offset_m * rot[:, 2])

    def observation(self, q, object_position, goal_position, frame: str = "sim",
                    knuckle_rad: float | None = None) -> np.ndarray:
        """The 12-d observation s_t (:func:`sim2real.observation.build_observation`) in :attr:`observation_layout`,
        ee point from FK, every point minus :attr:`workspace_offset_sim`.

        Args:
            q: (7,) joint positions, rad.
            object_position: (3,) object position, m (e.g. from AprilTag perception).
            goal_position: (3,) goal position, m.
            frame: frame of object and goal positions, ``"sim"`` or ``"base"``.
            knuckle_rad: the 2F-85's measured knuckle position, rad (its driver's joint state); the ``"gripper"``
                layout's opening comes from it (:func:`sim2real.gripper.pad_distance`); the ``"paper"`` layout
                does not read it.

        Returns:
            (12,) float32, sim frame.

        Raises:
            ValueError: bad shapes, non-finite values, an unknown frame, or the gripper layout without a valid
                knuckle position.
        """
        if frame not in ("sim", "base"):
            raise ValueError(f"frame must be 'sim' or 'base', got {frame!r}")
        obj, goal = _vec3(object_position, "object_position"), _vec3(goal_position, "goal_position")
        if frame == "base":
            obj, goal = self.frame.to_sim(obj), self.frame.to_sim(goal)
        off = self.workspace_offset_sim
        gripper = None
        if self.observation_layout == "gripper":
            if knuckle_rad is None:
                raise ValueError("the 'gripper' observation layout needs the 2F-85's knuckle position (knuckle_rad, "
                                 "its driver's robotiq_85_left_knuckle_joint); none was given")
            gripper = gripper_opening(pad_distance(knuckle_rad))
        return build_observation(self.ee_position(q) - off, obj - off, goal - off, gripper)
