"""Eye-on-base hand-eye calibration: where the table-edge camera is in the robot base frame.

The paper's RealSense is fixed to the world and a tag rides on the gripper. For N robot poses, the robot
gives T_base<-gripper (forward kinematics) and the camera gives T_camera<-tag (AprilTag pose). The unknowns
are T_base<-camera and T_gripper<-tag. OpenCV's ``cv2.calibrateHandEye`` solves the eye-in-hand form
AX = XB; for a camera on the base it is given the inverted robot poses (T_gripper<-base) and returns
T_base<-camera (OpenCV documentation, "eye-to-hand" configuration). Methods: Tsai, Park, Horaud, Andreff,
Daniilidis.

Residuals: every sample gives its own estimate of the fixed T_gripper<-tag,
inv(T_base<-gripper_i) T_base<-camera T_camera<-tag_i. Their spread around the mean (translation in m,
rotation in degrees) measures how well the samples agree with one camera pose.

Results are written in easy_handeye2's YAML form (frames, ``transform: {translation: {x, y, z},
rotation: {x, y, z, w}}``), which :func:`sim2real.perception.load_extrinsics` reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

METHODS = ("tsai", "park", "horaud", "andreff", "daniilidis")


class CalibrationError(ValueError):
    """Unusable calibration input; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class HandEyeResult:
    """T_base<-camera (4, 4) and the per-sample residuals of the fixed gripper-to-tag transform (m, deg)."""

    base_from_camera: np.ndarray
    translation_residuals_m: np.ndarray
    rotation_residuals_deg: np.ndarray
    method: str


def _check(transforms, name: str) -> np.ndarray:
    T = np.asarray(transforms, dtype=np.float64)
    if T.ndim != 3 or T.shape[1:] != (4, 4) or not np.all(np.isfinite(T)):
        raise CalibrationError(f"{name} must be N finite 4x4 transforms, got shape {T.shape}")
    R = T[:, :3, :3]
    if not np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-6) or not np.allclose(np.linalg.det(R), 1, atol=1e-6):
        raise CalibrationError(f"{name} holds a rotation that is not orthonormal")
    return T


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms (..., 4, 4)."""
    out = np.zeros_like(T)
    R = T[..., :3, :3]
    out[..., :3, :3] = np.swapaxes(R, -1, -2)
    out[..., :3, 3] = -np.einsum("...ji,...j->...i", R, T[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def calibrate_eye_on_base(base_from_gripper, camera_from_tag, method: str = "park") -> HandEyeResult:
    """Solve T_base<-camera from N >= 3 paired samples (see the module docstring).

    Args:
        base_from_gripper: (N, 4, 4) T_base<-gripper from the robot, m.
        camera_from_tag: (N, 4, 4) T_camera<-tag from the detector, m.
        method: one of :data:`METHODS`.

    Raises:
        CalibrationError: fewer than 3 samples, mismatched counts, bad transforms or an unknown method.
    """
    import cv2

    A, B = _check(base_from_gripper, "base_from_gripper"), _check(camera_from_tag, "camera_from_tag")
    if len(A) != len(B) or len(A) < 3:
        raise CalibrationError(f"need >= 3 paired samples with rotations about different axes, got {len(A)} robot "
                               f"poses and {len(B)} tag poses")
    if method not in METHODS:
        raise CalibrationError(f"method must be one of {METHODS}, got {method!r}")
    flag = getattr(cv2, f"CALIB_HAND_EYE_{method.upper()}")
    gripper_from_base = invert(A)  # eye-to-hand: OpenCV takes the inverted robot poses
    R, t = cv2.calibrateHandEye(gripper_from_base[:, :3, :3], gripper_from_base[:, :3, 3], B[:, :3, :3], B[:, :3, 3],
                                method=flag)
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t.ravel()
    per_sample = invert(A) @ T @ B  # each sample's T_gripper<-tag
    mean_t = per_sample[:, :3, 3].mean(0)
    from scipy.spatial.transform import Rotation

    rotations = Rotation.from_matrix(per_sample[:, :3, :3])
    mean_r = rotations.mean()
    return HandEyeResult(T, np.linalg.norm(per_sample[:, :3, 3] - mean_t, axis=1),
                         np.degrees((mean_r.inv() * rotations).magnitude()), method)


def easy_handeye_yaml(base_from_camera: np.ndarray, robot_base_frame: str = "base",
                      tracking_base_frame: str = "camera_color_optical_frame", robot_effector_frame: str = "tool0",
                      tracking_marker_frame: str = "calibration_tag") -> dict:
    """easy_handeye2's eye-on-base calibration dict for T_base<-camera (metres, unit quaternion x y z w)."""
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(base_from_camera[:3, :3]).as_quat()
    t = base_from_camera[:3, 3]
    return {"parameters": {"calibration_type": "eye_on_base", "robot_base_frame": robot_base_frame,
                           "robot_effector_frame": robot_effector_frame, "tracking_base_frame": tracking_base_frame,
                           "tracking_marker_frame": tracking_marker_frame},
            "transform": {"translation": dict(zip("xyz", map(float, t))), "rotation": dict(zip("xyzw", map(float, q)))}}


def write_calibration(path: str | Path, result: HandEyeResult, **frames) -> None:
    """Write :func:`easy_handeye_yaml` of ``result`` to ``path`` (folders are created)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(easy_handeye_yaml(result.base_from_camera, **frames), sort_keys=False))


def load_samples(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Paired samples from YAML: ``samples: [{base_from_gripper: T, camera_from_tag: T}, ...]``, each T as
    ``{translation: {x, y, z}, rotation: {x, y, z, w}}`` (m, unit quaternion). Returns two (N, 4, 4) arrays.

    Raises:
        CalibrationError: unreadable file, a missing key, or a quaternion that is not unit.
    """
    import yaml
    from scipy.spatial.transform import Rotation

    def transform(d) -> np.ndarray:
        q = np.array([float(d["rotation"][k]) for k in "xyzw"])
        if abs(np.linalg.norm(q) - 1) > 1e-3:
            raise CalibrationError(f"{path}: rotation {q} is not a unit quaternion (x, y, z, w)")
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = Rotation.from_quat(q).as_matrix(), [float(d["translation"][k]) for k in "xyz"]
        return T

    try:
        entries = yaml.safe_load(Path(path).read_text())["samples"]
        pairs = [(transform(e["base_from_gripper"]), transform(e["camera_from_tag"])) for e in entries]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"cannot read samples {path}: {exc}; expected samples: [{{base_from_gripper: "
                               "{translation, rotation}, camera_from_tag: {translation, rotation}}, ...]") from exc
    return np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
