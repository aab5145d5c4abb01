"""Forward and inverse kinematics of the KUKA LBR iiwa 14 R820 with a Robotiq 2F-85 TCP.

The arm model is the iiwa 14 URDF shipped by pybullet (``pybullet_data/kuka_iiwa/model.urdf``, joints
``lbr_iiwa_joint_1..7``; link lengths 0.36/0.42/0.40/0.126 m), loaded by MuJoCo. A ``tcp`` site is added
on link 7 at the 2F-85's TCP: the midpoint between the two fingertip pads with the gripper closed
(the grasp point). The simulated plant (``legion_sim``) mounts the gripper with the same constants, so
FK here and the plant's pad midpoint agree: exactly when closed, 3 mm higher half open, 1.4 cm higher
fully open (the pads travel along the approach axis as the 4-bar linkage closes).

IK is damped least squares (Wampler 1986; Buss, "Introduction to IK with Jacobian transpose, pseudoinverse
and damped least squares", 2009) on MuJoCo's ``mj_jacSite``, on position and orientation together,
with joint clamping: joints that reach their (margin-shrunk) limits are locked and the step is re-solved
with the remaining joints, so IK never returns joint targets outside the limits.

All positions and rotations are in the robot **base** frame (``lbr_link_0`` / URDF ``lbr_iiwa_link_0``),
REP-103 units (m, rad). No ROS and no torch here.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import NamedTuple

import mujoco
import numpy as np

#: URDF joint names, base to flange.
JOINT_NAMES: tuple[str, ...] = tuple(f"lbr_iiwa_joint_{i}" for i in range(1, 8))
#: Position limits, rad (KUKA iiwa 14 datasheet, ``/work/shared/docs/robot.md``): +-170, 120, 170, 120, 170, 120, 175 deg.
JOINT_LIMITS_RAD = np.deg2rad(np.array([170.0, 120.0, 170.0, 120.0, 170.0, 120.0, 175.0]))
#: Velocity limits, rad/s (same source): 85, 85, 100, 75, 130, 135, 135 deg/s.
JOINT_VELOCITY_LIMITS_RAD_S = np.deg2rad(np.array([85.0, 85.0, 100.0, 75.0, 130.0, 135.0, 135.0]))
#: Link-7 frame to the media flange along link 7's z axis, m (iiwa 14: joint 6 axis to flange 0.126 = 0.081 + 0.045).
FLANGE_OFFSET_M = 0.045
#: 2F-85 mounting face to the midpoint of the fingertip pads, gripper closed (0.7929 rad), m (robosuite's
#: 2F-85 model; 0.1303 m open, 0.1416 m half closed).
GRIPPER_TCP_DEPTH_M = 0.1443
#: Link-7 frame to TCP along link 7's z axis, m.
TCP_OFFSET_M = FLANGE_OFFSET_M + GRIPPER_TCP_DEPTH_M
#: Top-down TCP orientation (columns = TCP x, y, z axes in the base frame): approach axis z points down,
#: fingers close along the base y axis, as the Sawyer's fingers close along Meta-World's y axis.
TOP_DOWN_ROT = np.diag([-1.0, 1.0, -1.0])
#: Default clearance kept from every position limit by IK, rad: 7 deg, 2 deg more than the safety filter's band
#: (sim2real.safety.SafetyLimits.joint_position_margin, 5 deg). IK never proposes a target the filter must refuse,
#: and the servo's tracking error near a limit (under 2 deg) does not carry the measured joint out of the band,
#: which the filter answers with a HOLD: with equal margins a drawer push held every cycle at A4's limit.
DEFAULT_LIMIT_MARGIN_RAD = np.deg2rad(7.0)


def iiwa14_urdf_path() -> str:
    """Path of the iiwa 14 R820 URDF in the installed ``pybullet_data`` package.

    Raises:
        FileNotFoundError: pybullet is not installed (``pip install pybullet==3.2.7``).
    """
    try:
        import pybullet_data  # noqa: PLC0415  (only needed to locate files)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise FileNotFoundError("the iiwa 14 URDF ships with pybullet: pip install pybullet==3.2.7") from exc
    path = os.path.join(pybullet_data.getDataPath(), "kuka_iiwa", "model.urdf")
    if not os.path.isfile(path):  # pragma: no cover
        raise FileNotFoundError(f"iiwa 14 URDF not found at {path}; reinstall pybullet==3.2.7")
    return path


@lru_cache(maxsize=1)
def _parsed_iiwa14_spec() -> mujoco.MjSpec:
    # Parsed once per process. The URDF's <visual>/<collision> elements are unnamed, which makes MuJoCo's
    # parser warn once per geom; naming them first keeps the console clean without hiding other warnings.
    path = iiwa14_urdf_path()
    with open(path) as f:
        urdf = f.read()
    count = iter(range(10_000))
    urdf = re.sub(r"<(visual|collision)>", lambda m: f'<{m.group(1)} name="{m.group(1)}_{next(count)}">', urdf)
    spec = mujoco.MjSpec.from_string(urdf)
    spec.meshdir = os.path.join(os.path.dirname(path), "meshes")
    return spec


def load_iiwa14_spec() -> mujoco.MjSpec:
    """The iiwa 14 arm as a MuJoCo spec, from :func:`iiwa14_urdf_path`, meshes resolved.

    MuJoCo's URDF import keeps only the collision meshes (STL) and strips their directory; the mesh
    directory is set here. Each call returns a fresh copy that may be edited (the plant attaches a gripper).
    """
    return _parsed_iiwa14_spec().copy()


class IKResult(NamedTuple):
    """Outcome of :func:`solve_ik`.

    Attributes:
        q: (7,) float64 joint positions, rad; always inside the limits shrunk by the margin, also
            when not converged (then it is the closest configuration found).
        converged: both tolerances were met.
        pos_error_m: remaining TCP position error, m.
        rot_error_rad: remaining TCP orientation error (angle of the residual rotation), rad.
        iterations: DLS iterations used.
    """

    q: np.ndarray
    converged: bool
    pos_error_m: float
    rot_error_rad: float
    iterations: int


def _as_joint_vector(q, name: str = "q") -> np.ndarray:
    q = np.asarray(q, dtype=np.float64).reshape(-1)
    if q.shape != (7,) or not np.all(np.isfinite(q)):
        raise ValueError(f"{name} must be 7 finite joint positions in rad (iiwa joints A1..A7), got {q!r}")
    return q


def _rotation_error(rot_target: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Rotation vector (3,) that turns ``rot`` into ``rot_target``, expressed in the base frame, rad."""
    r_err = rot_target @ rot.T
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, r_err.reshape(-1))
    vel = np.empty(3)
    mujoco.mju_quat2Vel(vel, quat, 1.0)
    return vel


class ArmKinematics:
    """FK and DLS IK of the iiwa 14 + 2F-85 TCP on an arm-only MuJoCo model.

    Args:
        tcp_offset_m: link-7 frame to TCP along link 7's z axis, m (default :data:`TCP_OFFSET_M`).
        limit_margin_rad: clearance IK keeps from each position limit, rad, in [0, 0.2].

    Attributes:
        joint_names: the 7 URDF joint names.
        lower, upper: (7,) position limits used by IK (datasheet limits shrunk by the margin), rad.

    One instance owns one ``MjData``: use one instance per thread.
    """

    def __init__(self, tcp_offset_m: float = TCP_OFFSET_M, limit_margin_rad: float = DEFAULT_LIMIT_MARGIN_RAD):
        if not 0.0 <= limit_margin_rad <= 0.2:
            raise ValueError(f"limit_margin_rad must lie in [0, 0.2] rad, got {limit_margin_rad}")
        if not np.isfinite(tcp_offset_m) or not 0.0 <= tcp_offset_m <= 0.5:
            raise ValueError(f"tcp_offset_m must be a distance in [0, 0.5] m, got {tcp_offset_m}")
        spec = load_iiwa14_spec()
        spec.body("lbr_iiwa_link_7").add_site(name="tcp", pos=[0.0, 0.0, tcp_offset_m])
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self.joint_names = list(JOINT_NAMES)
        self._qadr = np.array([self.model.joint(n).qposadr[0] for n in JOINT_NAMES])
        self._site = self.model.site("tcp").id
        self.lower = -JOINT_LIMITS_RAD + limit_margin_rad
        self.upper = JOINT_LIMITS_RAD - limit_margin_rad
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))

    def _update(self, q: np.ndarray) -> None:
        self.data.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)  # cdof, needed by mj_jacSite

    def forward_kinematics(self, q) -> tuple[np.ndarray, np.ndarray]:
        """TCP pose in the base frame.

        Args:
            q: (7,) joint positions, rad.

        Returns:
            pos (3,) m and rot (3, 3) rotation matrix (columns = TCP axes), float64, base frame.

        Raises:
            ValueError: q is not 7 finite numbers.
        """
        self._update(_as_joint_vector(q))
        return self.data.site_xpos[self._site].copy(), self.data.site_xmat[self._site].reshape(3, 3).copy()

    def solve_ik(self, target_pos, q_seed, target_rot=TOP_DOWN_ROT, max_iterations: int = 100,
                 pos_tolerance_m: float = 1e-4, rot_tolerance_rad: float = 1e-3, damping: float = 0.05,
                 max_step_rad: float = 0.3) -> IKResult:
        """Joint positions that put the TCP at ``target_pos`` with orientation ``target_rot``.

        Damped least squares, dq = J^T (J J^T + damping^2 I)^-1 e with e = [position error; rotation
        vector error], warm-started from ``q_seed``; joints reaching the limits are clamped and
        locked, and the step is re-solved with the other joints.

        Args:
            target_pos: (3,) TCP position in the base frame, m.
            q_seed: (7,) start configuration, rad (the current or last commanded joints); clipped into the limits.
            target_rot: (3, 3) TCP orientation in the base frame; default :data:`TOP_DOWN_ROT`.
            max_iterations: DLS iteration budget (about 10 suffice for a warm start at 20 Hz).
            pos_tolerance_m, rot_tolerance_rad: convergence thresholds.
            damping: DLS damping factor lambda (m-equivalent); larger is more robust near singularities, slower.
            max_step_rad: largest joint change per iteration.

        Returns:
            :class:`IKResult`; ``converged`` is False when the target is unreachable (outside the
            workspace or past a joint limit) or the budget ran out: callers must check it.

        Raises:
            ValueError: a non-finite or wrongly shaped input, or ``target_rot`` not a rotation matrix.
        """
        target_pos = np.asarray(target_pos, dtype=np.float64).reshape(-1)
        if target_pos.shape != (3,) or not np.all(np.isfinite(target_pos)):
            raise ValueError(f"target_pos must be a finite 3-vector in metres (base frame), got {target_pos!r}")
        target_rot = np.asarray(target_rot, dtype=np.float64)
        if target_rot.shape != (3, 3) or not np.allclose(target_rot @ target_rot.T, np.eye(3), atol=1e-6) \
                or np.linalg.det(target_rot) < 0:
            raise ValueError(f"target_rot must be a 3x3 rotation matrix (orthonormal, det +1), got {target_rot!r}")
        if max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
        q = np.clip(_as_joint_vector(q_seed, "q_seed"), self.lower, self.upper)
        lam2 = damping ** 2
        err = np.empty(6)
        iterations = 0
        while True:
            self._update(q)
            err[:3] = target_pos - self.data.site_xpos[self._site]
            err[3:] = _rotation_error(target_rot, self.data.site_xmat[self._site].reshape(3, 3))
            pos_err, rot_err = float(np.linalg.norm(err[:3])), float(np.linalg.norm(err[3:]))
            if (pos_err <= pos_tolerance_m and rot_err <= rot_tolerance_rad) or iterations >= max_iterations:
                break
            iterations += 1
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self._site)
            jac = np.vstack((self._jacp, self._jacr))[:, :7]
            free = np.ones(7, dtype=bool)
            dq = np.zeros(7)
            for _ in range(8):  # each pass locks at least one more joint, or ends
                rest = err - jac[:, ~free] @ dq[~free]  # what the locked joints' moves leave to do
                jf = jac[:, free]
                dq[free] = jf.T @ np.linalg.solve(jf @ jf.T + lam2 * np.eye(6), rest)
                dq *= max_step_rad / max(max_step_rad, np.abs(dq).max())
                hit = free & (((q + dq) < self.lower) | ((q + dq) > self.upper))
                if not hit.any():
                    break
                # lock joints that would pass a limit at that limit, re-solve the step with the others
                dq[hit] = np.clip(q + dq, self.lower, self.upper)[hit] - q[hit]
                free &= ~hit
                if not free.any():
                    break
            q = np.clip(q + dq, self.lower, self.upper)
        converged = pos_err <= pos_tolerance_m and rot_err <= rot_tolerance_rad
        return IKResult(q.copy(), converged, pos_err, rot_err, iterations)


@lru_cache(maxsize=1)
def default_kinematics() -> ArmKinematics:
    """A shared :class:`ArmKinematics` with default TCP and margin (single-threaded use)."""
    return ArmKinematics()


def forward_kinematics(q) -> tuple[np.ndarray, np.ndarray]:
    """TCP pose (pos (3,) m, rot (3, 3)) in the base frame; see :meth:`ArmKinematics.forward_kinematics`."""
    return default_kinematics().forward_kinematics(q)


def solve_ik(target_pos_base, q_seed, target_rot=TOP_DOWN_ROT, **kwargs) -> IKResult:
    """DLS IK on the default model; see :meth:`ArmKinematics.solve_ik` for arguments and errors."""
    return default_kinematics().solve_ik(target_pos_base, q_seed, target_rot=target_rot, **kwargs)
