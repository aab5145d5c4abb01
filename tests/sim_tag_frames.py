"""Rendered frames of the KUKA scene's puck tag at random visible poses, with the true tag pose (tests, benchmarks).

The puck (a free body) is moved so that its tag lies 0.5-1.2 m from the virtual RealSense, anywhere in the
image, turned by a random yaw and tilted up to 50 degrees from facing the camera. A pose counts as visible when
its four corners are at least 4 px inside the image and a ray from the camera to each corner meets nothing
before the tag (MuJoCo ``mj_ray``).
"""
import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from legion_sim.camera import FACE_UP, TAG_MOUNTS

PUCK_TAG = TAG_MOUNTS["reach-v3"][0]


def _pose(R, t):
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def random_visible_tag_frame(plant, rng, max_tries: int = 50):
    """Move the puck to a random visible pose; returns (RGB frame, true T_camera<-tag (4, 4), distance m)."""
    model, data, camera = plant.model, plant.data, plant.camera()
    K = camera.intrinsics
    qadr = model.jnt_qposadr[model.joint("objjoint").id]
    body = model.body("obj").id
    T_sim_cam = camera.pose_sim()
    tag_in_body = _pose(Rotation.from_quat(np.r_[FACE_UP[1:], FACE_UP[0]]).as_matrix(), PUCK_TAG.pos)
    h = PUCK_TAG.size_m / 2
    corners = np.array([[-h, -h, 0], [h, -h, 0], [h, h, 0], [-h, h, 0]])
    for _ in range(max_tries):
        depth = rng.uniform(0.5, 1.2)
        u, v = rng.uniform(60, K.width - 60), rng.uniform(60, K.height - 60)
        t = depth * np.array([(u - K.cx) / K.fx, (v - K.cy) / K.fy, 1.0])
        t *= depth / np.linalg.norm(t)  # distance from the camera, not depth
        # facing the camera (tag z along the viewing ray), then yawed and tilted
        z = t / np.linalg.norm(t)
        x = np.cross([0.0, 1.0, 0.0], z)
        x /= np.linalg.norm(x)
        R_face = np.column_stack([x, np.cross(z, x), z])
        R = R_face @ Rotation.from_euler("zx", [rng.uniform(-180, 180), rng.uniform(-50, 50)], degrees=True).as_matrix()
        T_cam_tag = _pose(R, t)
        T_sim_body = T_sim_cam @ T_cam_tag @ np.linalg.inv(tag_in_body)
        quat = Rotation.from_matrix(T_sim_body[:3, :3]).as_quat()
        data.qpos[qadr:qadr + 7] = np.r_[T_sim_body[:3, 3], quat[3], quat[:3]]
        mujoco.mj_forward(model, data)
        pixels = (K.matrix @ (R @ corners.T + t[:, None])).T
        pixels = pixels[:, :2] / pixels[:, 2:]
        if np.any(pixels < 4) or np.any(pixels[:, 0] > K.width - 4) or np.any(pixels[:, 1] > K.height - 4):
            continue
        if _occluded(model, data, T_sim_cam, T_sim_cam @ T_cam_tag, corners, body):
            continue
        return camera.grab(), T_cam_tag, float(np.linalg.norm(t))
    raise RuntimeError("no visible tag pose found")


def _occluded(model, data, T_sim_cam, T_sim_tag, corners, body) -> bool:
    origin = T_sim_cam[:3, 3]
    geomid = np.zeros(1, np.int32)
    for c in corners * 0.95:
        p = T_sim_tag[:3, :3] @ c + T_sim_tag[:3, 3]
        vec = p - origin
        dist = np.linalg.norm(vec)
        hit = mujoco.mj_ray(model, data, origin, vec / dist, None, 1, body, geomid)
        if 0 <= hit < dist - 1e-3:
            return True
    return False
