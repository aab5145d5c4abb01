"""Hand-eye calibration samples from the simulated scene: the robot shows its gripper tag to the virtual RealSense.

For each sample the arm is posed (kinematically: joint positions set, no dynamics) with its TCP at a random
point in front of the camera and the calibration tag turned towards it (random yaw and tilt), the camera
image is rendered and the tag detected with the perception stack. The robot side is the flange pose from
forward kinematics (T_base<-flange, what the driver's TF gives), as on the real robot.
"""
from __future__ import annotations

import cv2
import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from legion_sim.camera import CALIBRATION_TAG_ID, CALIBRATION_TAG_SIZE_M, REALSENSE_CAMERA
from legion_sim.plant import Q_NOMINAL, KukaPlant
from sim2real.kinematics import FLANGE_OFFSET_M, TOP_DOWN_ROT, ArmKinematics
from sim2real.perception import TagDetector, TagSpec


def sim_camera(plant, camera: str = REALSENSE_CAMERA):
    """The plant's virtual RealSense ``camera``: the single-task scene's (``realsense_color``) or one of the table's
    (``legion_sim.table_scene.TABLE_REALSENSES``).

    Raises:
        ValueError: the plant has no such camera (the message lists those it has).
    """
    cameras = {REALSENSE_CAMERA: plant.camera()}
    if hasattr(plant, "table_cameras"):
        cameras.update(plant.table_cameras())
    if camera not in cameras:
        raise ValueError(f"no simulated camera {camera!r}; the scene has {sorted(cameras)}")
    return cameras[camera]


def collect_samples(n: int = 20, seed: int = 0, max_tries: int = 400,
                    camera: str = REALSENSE_CAMERA) -> tuple[np.ndarray, np.ndarray, KukaPlant]:
    """Collect ``n`` paired samples for ``camera``: the reach-v3 KUKA scene's RealSense, or a table camera
    (``table_camera_right``, ``table_camera_left``: the table scene, objects at their anchors).

    Returns:
        (base_from_flange (n, 4, 4), camera_from_tag (n, 4, 4), the plant: :func:`true_base_from_camera` gives the
        true camera pose for checks). Units m.

    Raises:
        RuntimeError: fewer than ``n`` poses with a detected tag within ``max_tries`` attempts.
        ValueError: unknown camera.
    """
    from legion_sim.table_scene import TABLE_REALSENSES, TablePlant

    rng = np.random.default_rng(seed)
    plant = TablePlant(seed=seed) if camera in TABLE_REALSENSES else KukaPlant("reach-v3", seed=seed)
    camera = sim_camera(plant, camera)
    camera_pos = camera.pose_sim()[:3, 3]
    detector = TagDetector({CALIBRATION_TAG_ID: TagSpec(CALIBRATION_TAG_ID, "calibration_tag", CALIBRATION_TAG_SIZE_M)})
    tcp_kin, flange_kin = ArmKinematics(), ArmKinematics(tcp_offset_m=FLANGE_OFFSET_M)
    qadr = [plant.model.jnt_qposadr[plant.model.joint(j).id] for j in plant.joint_names]
    A, B = [], []
    for _ in range(max_tries):
        if len(A) == n:
            break
        target_sim = rng.uniform([-0.2, 0.45, 0.15], [0.2, 0.75, 0.4])
        # the tag looks along the adapter link's +x, which is -x of the sim frame in the top-down pose: yaw it
        # towards the camera, then turn and tilt at random
        to_camera = camera_pos[:2] - target_sim[:2]
        yaw = np.degrees(np.arctan2(-to_camera[1], -to_camera[0]))
        turn = Rotation.from_euler("zxy", [yaw + rng.uniform(-35, 35), rng.uniform(-25, 25), rng.uniform(-25, 25)],
                                   degrees=True)
        rot_base = plant.frame.rotation_to_base(turn.as_matrix() @ TOP_DOWN_ROT)
        ik = tcp_kin.solve_ik(plant.frame.to_base(target_sim), Q_NOMINAL, rot_base, max_iterations=300)
        if not ik.converged:
            continue
        plant.data.qpos[qadr] = ik.q
        mujoco.mj_forward(plant.model, plant.data)
        gray = cv2.cvtColor(camera.grab(), cv2.COLOR_RGB2GRAY)
        seen = [o for o in detector.detect(gray, camera.intrinsics)
                if o.decision_margin >= 30 and o.reprojection_px <= 2 and o.ambiguity <= 0.3]  # ObjectTracker's gates
        if not seen:
            continue
        p, R = flange_kin.forward_kinematics(ik.q)
        a, b = np.eye(4), np.eye(4)
        a[:3, :3], a[:3, 3] = R, p
        b[:3, :3], b[:3, 3] = seen[0].rotation, seen[0].translation
        A.append(a)
        B.append(b)
    if len(A) < n:
        raise RuntimeError(f"only {len(A)} of {n} calibration poses showed the tag in {max_tries} tries")
    return np.array(A), np.array(B), plant


def true_base_from_camera(plant: KukaPlant, camera: str = REALSENSE_CAMERA) -> np.ndarray:
    """(4, 4) true T_base<-camera_color_optical_frame of the plant's virtual RealSense ``camera``."""
    T_sim_cam = sim_camera(plant, camera).pose_sim()
    T = np.eye(4)
    T[:3, :3] = plant.frame.rotation_to_base(T_sim_cam[:3, :3])
    T[:3, 3] = plant.frame.to_base(T_sim_cam[:3, 3])
    return T
