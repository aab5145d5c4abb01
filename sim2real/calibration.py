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
    """T_base<-camera (4, 4), the mean T_gripper<-tag (4, 4) and each sample's residual from it (m, deg)."""

    base_from_camera: np.ndarray
    translation_residuals_m: np.ndarray
    rotation_residuals_deg: np.ndarray
    method: str
    gripper_from_tag: np.ndarray


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
    tag = np.eye(4)
    tag[:3, :3], tag[:3, 3] = mean_r.as_matrix(), mean_t
    return HandEyeResult(T, np.linalg.norm(per_sample[:, :3, 3] - mean_t, axis=1),
                         np.degrees((mean_r.inv() * rotations).magnitude()), method, tag)


def easy_handeye_yaml(base_from_camera: np.ndarray, robot_base_frame: str = "base",
                      tracking_base_frame: str = "camera_color_optical_frame", robot_effector_frame: str = "tool0",
                      tracking_marker_frame: str = "calibration_tag") -> dict:
    """easy_handeye2's eye-on-base calibration dict for T_base<-camera (metres, unit quaternion x y z w)."""
    return {"parameters": {"calibration_type": "eye_on_base", "robot_base_frame": robot_base_frame,
                           "robot_effector_frame": robot_effector_frame, "tracking_base_frame": tracking_base_frame,
                           "tracking_marker_frame": tracking_marker_frame},
            "transform": _transform_dict(base_from_camera)}


def _transform_dict(T: np.ndarray) -> dict:
    from scipy.spatial.transform import Rotation

    return {"translation": dict(zip("xyz", map(float, T[:3, 3]))),
            "rotation": dict(zip("xyzw", map(float, Rotation.from_matrix(T[:3, :3]).as_quat())))}


def transform_from_dict(d, where) -> np.ndarray:
    """(4, 4) rigid transform from ``{translation: {x, y, z}, rotation: {x, y, z, w}}`` (m, unit quaternion).

    Raises:
        CalibrationError: non-finite values or a quaternion that is not unit (±1e-3); ``where`` names the source.
        KeyError, TypeError, ValueError: a missing key or a value that is not a number.
    """
    from scipy.spatial.transform import Rotation

    q = np.array([float(d["rotation"][k]) for k in "xyzw"])
    t = np.array([float(d["translation"][k]) for k in "xyz"])
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(t))) or abs(np.linalg.norm(q) - 1) > 1e-3:
        raise CalibrationError(f"{where}: translation must be finite and rotation a unit quaternion (x, y, z, w), "
                               f"got t={t}, q={q}")
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = Rotation.from_quat(q).as_matrix(), t
    return T


#: camera_link (x forward, y left, z up; REP-103 body frame) -> its optical frame (z forward, x right, y down).
LINK_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def camera_from_measurement(xyz_m, rpy_rad) -> np.ndarray:
    """T_base<-camera_color_optical_frame (4, 4) from a measured camera pose ("camera offset set-up").

    For a set-up without a hand-eye calibration: measure where the colour lens is in the robot base frame
    (``xyz_m``, m) and how the camera body is turned (``rpy_rad``: roll, pitch, yaw of camera_link about the
    base's fixed x, y, z axes, rad, REP-103). A camera level and looking along the base's +x is rpy (0, 0, 0).

    Raises:
        CalibrationError: not 3 finite numbers each.
    """
    from scipy.spatial.transform import Rotation

    xyz, rpy = np.asarray(xyz_m, dtype=np.float64), np.asarray(rpy_rad, dtype=np.float64)
    if xyz.shape != (3,) or rpy.shape != (3,) or not (np.all(np.isfinite(xyz)) and np.all(np.isfinite(rpy))):
        raise CalibrationError(f"a camera pose needs 3 finite coordinates (m) and 3 finite angles (rad), got {xyz_m}, {rpy_rad}")
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", rpy).as_matrix() @ LINK_FROM_OPTICAL
    T[:3, 3] = xyz
    return T


def write_extrinsics(path: str | Path, base_from_camera: np.ndarray, **frames) -> None:
    """Write T_base<-camera as easy_handeye2's YAML (folders are created)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(easy_handeye_yaml(base_from_camera, **frames), sort_keys=False))


def write_calibration(path: str | Path, result: HandEyeResult, **frames) -> None:
    """Write :func:`easy_handeye_yaml` of ``result`` to ``path`` (folders are created), plus our key
    ``tag_in_effector`` (the estimated T_gripper<-tag, which ``legion calibrate-check`` needs; easy_handeye2
    ignores it)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = easy_handeye_yaml(result.base_from_camera, **frames)
    data["tag_in_effector"] = _transform_dict(result.gripper_from_tag)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def write_samples(path: str | Path, base_from_gripper: np.ndarray, camera_from_tag: np.ndarray,
                  intrinsics=None, tag_size_m: float | None = None) -> None:
    """Write paired samples in the form :func:`load_samples` reads, with the camera intrinsics (px) and the
    calibration tag's edge (m) that ``legion calibrate-check`` needs for reprojection errors."""
    import yaml

    data = {"samples": [{"base_from_gripper": _transform_dict(a), "camera_from_tag": _transform_dict(b)}
                        for a, b in zip(base_from_gripper, camera_from_tag)]}
    if intrinsics is not None:
        data["intrinsics"] = {k: float(getattr(intrinsics, k)) for k in ("fx", "fy", "cx", "cy")} | \
            {"width": int(intrinsics.width), "height": int(intrinsics.height)}
    if tag_size_m is not None:
        data["tag_size_m"] = float(tag_size_m)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@dataclass(frozen=True)
class CheckResult:
    """Errors of a saved calibration on samples: per sample, RMS corner reprojection error (px) and the
    distance between the predicted and the measured tag position (m)."""

    reprojection_px: np.ndarray
    position_error_m: np.ndarray


def check_calibration(calibration: str | Path, samples: str | Path) -> CheckResult:
    """Predict each sample's tag pose from the robot pose and a saved calibration, and compare with the detection.

    Predicted T_camera<-tag = inv(T_base<-camera) T_base<-gripper T_gripper<-tag; its tag corners are projected
    with the samples' intrinsics and compared with the corners of the measured pose.

    Raises:
        CalibrationError: unreadable calibration (or one without ``tag_in_effector``) or samples without
            ``intrinsics`` and ``tag_size_m``.
    """
    import yaml

    try:
        cal = yaml.safe_load(Path(calibration).read_text())
        base_from_camera = transform_from_dict(cal["transform"], calibration)
        gripper_from_tag = transform_from_dict(cal["tag_in_effector"], calibration)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CalibrationError):
            raise
        raise CalibrationError(f"cannot read calibration {calibration}: {exc!r}; write it with legion calibrate") from exc
    A, B = load_samples(samples)
    try:
        meta = yaml.safe_load(Path(samples).read_text())
        i = meta["intrinsics"]
        K = np.array([[float(i["fx"]), 0, float(i["cx"])], [0, float(i["fy"]), float(i["cy"])], [0, 0, 1.0]])
        h = float(meta["tag_size_m"]) / 2
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"{samples} needs intrinsics {{fx, fy, cx, cy}} and tag_size_m for a check") from exc
    corners = np.array([[-h, h, 0.0], [h, h, 0.0], [h, -h, 0.0], [-h, -h, 0.0]])
    predicted = invert(base_from_camera)[None] @ A @ gripper_from_tag[None]

    def project(T):
        p = (K @ (T[:3, :3] @ corners.T + T[:3, 3:4])).T
        return p[:, :2] / p[:, 2:]

    px = np.array([np.sqrt(np.mean(np.sum((project(P) - project(M)) ** 2, axis=1))) for P, M in zip(predicted, B)])
    return CheckResult(px, np.linalg.norm(predicted[:, :3, 3] - B[:, :3, 3], axis=1))


def load_samples(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Paired samples from YAML: ``samples: [{base_from_gripper: T, camera_from_tag: T}, ...]``, each T as
    ``{translation: {x, y, z}, rotation: {x, y, z, w}}`` (m, unit quaternion). Returns two (N, 4, 4) arrays.

    Raises:
        CalibrationError: unreadable file, a missing key, or a quaternion that is not unit.
    """
    import yaml

    try:
        entries = yaml.safe_load(Path(path).read_text())["samples"]
        pairs = [(transform_from_dict(e["base_from_gripper"], path), transform_from_dict(e["camera_from_tag"], path))
                 for e in entries]
    except CalibrationError:
        raise
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise CalibrationError(f"cannot read samples {path}: {exc}; expected samples: [{{base_from_gripper: "
                               "{translation, rotation}, camera_from_tag: {translation, rotation}}, ...]") from exc
    return np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
