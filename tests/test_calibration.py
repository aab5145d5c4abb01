"""Eye-on-base hand-eye calibration (sim2real.calibration, OpenCV calibrateHandEye) on samples with known truth."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sim2real.calibration import (
    METHODS, CalibrationError, calibrate_eye_on_base, invert, write_calibration,
)
from sim2real.perception import load_extrinsics


def pose(rotvec, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = Rotation.from_rotvec(rotvec).as_matrix(), t
    return T


def samples(n=15, noise_m=0.0, noise_deg=0.0, seed=0):
    """Truth (T_base<-camera, T_gripper<-tag) and n paired (T_base<-gripper, T_camera<-tag) samples."""
    rng = np.random.default_rng(seed)
    base_from_camera = pose([0.4, -2.0, 0.3], [1.3, 0.1, 0.45])
    gripper_from_tag = pose([0.0, 0.0, 0.5], [0.0, 0.03, 0.08])
    A, B = [], []
    for _ in range(n):
        g = pose(rng.normal(0, 0.5, 3), [rng.uniform(0.4, 0.8), rng.uniform(-0.3, 0.3), rng.uniform(0.2, 0.5)])
        b = invert(base_from_camera) @ g @ gripper_from_tag
        b = pose(Rotation.from_matrix(b[:3, :3]).as_rotvec() + np.radians(noise_deg) * rng.normal(size=3),
                 b[:3, 3] + rng.normal(0, noise_m, 3))
        A.append(g)
        B.append(b)
    return base_from_camera, np.array(A), np.array(B)


def errors(T, truth):
    return (np.linalg.norm(T[:3, 3] - truth[:3, 3]),
            np.degrees(Rotation.from_matrix(T[:3, :3].T @ truth[:3, :3]).magnitude()))


@pytest.mark.parametrize("method", METHODS)
def test_exact_samples_recover_the_camera_pose(method):
    truth, A, B = samples()
    result = calibrate_eye_on_base(A, B, method)
    dt, dr = errors(result.base_from_camera, truth)
    assert dt < 1e-4 and dr < 0.01, (method, dt, dr)
    assert result.translation_residuals_m.max() < 1e-4


def test_noisy_detections_recover_the_camera_within_5_mm_and_half_a_degree(tmp_path):
    truth, A, B = samples(n=25, noise_m=0.002, noise_deg=0.3)  # detector noise at 1 m (test_perception's figures)
    result = calibrate_eye_on_base(A, B, "park")
    dt, dr = errors(result.base_from_camera, truth)
    print(f"park, 25 samples, 2 mm / 0.3 deg detector noise: camera error {dt * 1e3:.2f} mm, {dr:.3f} deg; "
          f"residuals median {np.median(result.translation_residuals_m) * 1e3:.1f} mm, "
          f"{np.median(result.rotation_residuals_deg):.2f} deg")
    assert dt < 0.005 and dr < 0.5
    write_calibration(tmp_path / "cal.yaml", result)
    np.testing.assert_allclose(load_extrinsics(tmp_path / "cal.yaml"), result.base_from_camera, atol=1e-9)


def test_bad_samples_are_refused_with_a_reason():
    _, A, B = samples(n=5)
    with pytest.raises(CalibrationError, match=">= 3 paired samples"):
        calibrate_eye_on_base(A[:2], B[:2])
    with pytest.raises(CalibrationError, match="paired"):
        calibrate_eye_on_base(A, B[:4])
    with pytest.raises(CalibrationError, match="method"):
        calibrate_eye_on_base(A, B, "magic")
    bad = A.copy()
    bad[0, :3, :3] *= 2
    with pytest.raises(CalibrationError, match="orthonormal"):
        calibrate_eye_on_base(bad, B)
    with pytest.raises(CalibrationError, match="finite"):
        calibrate_eye_on_base(np.full_like(A, np.nan), B)


def test_legion_calibrate_writes_the_calibration_the_perception_node_reads(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from legion_runtime.cli import app

    def as_dict(T):
        q = Rotation.from_matrix(T[:3, :3]).as_quat()
        return {"translation": dict(zip("xyz", map(float, T[:3, 3]))), "rotation": dict(zip("xyzw", map(float, q)))}

    truth, A, B = samples(n=12, noise_m=0.001, noise_deg=0.1)
    (tmp_path / "samples.yaml").write_text(yaml.safe_dump(
        {"samples": [{"base_from_gripper": as_dict(a), "camera_from_tag": as_dict(b)} for a, b in zip(A, B)]}))
    result = CliRunner().invoke(app, ["calibrate", "--samples", str(tmp_path / "samples.yaml"),
                                      "--out", str(tmp_path / "cal.yaml")])
    assert result.exit_code == 0, result.output
    assert "from 12 samples (park)" in result.output and "residuals" in result.output
    dt, dr = errors(load_extrinsics(tmp_path / "cal.yaml"), truth)
    assert dt < 0.005 and dr < 0.5
    (tmp_path / "bad.yaml").write_text("samples: [{base_from_gripper: {translation: {x: 0}}}]")
    result = CliRunner().invoke(app, ["calibrate", "--samples", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "x.yaml")])
    assert result.exit_code == 2 and "cannot read samples" in result.output and not (tmp_path / "x.yaml").exists()
