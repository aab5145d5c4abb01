"""Synthetic camera images of real tag36h11 tags at known poses (for perception tests).

Tag bit patterns come from OpenCV's AprilTag dictionary (``legion_sim.camera.tag_image``); each tag is warped
into a 640 x 480 image through the exact homography of a pinhole camera, so the true pose of every tag is known.
"""
import cv2
import numpy as np

from legion_sim.camera import tag_image
from sim2real.perception import Intrinsics

#: RealSense D435 colour stream at 640 x 480 (typical factory intrinsics)
D435 = Intrinsics(fx=615.0, fy=615.0, cx=320.0, cy=240.0, width=640, height=480)
_CELL = 24


def tag_texture(tag_id: int) -> np.ndarray:
    """(10 c, 10 c) uint8 tag with its quiet zone, upright (the same image the MuJoCo scene's tags carry)."""
    return tag_image(tag_id, _CELL)


def render(tags: list[tuple[int, float, np.ndarray, np.ndarray]], intrinsics: Intrinsics = D435,
           background: int = 110, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Grey image of tags ``(id, size_m, R_cam_tag (3,3), t_cam_tag (3,) m)``; size = edge of the black square.

    Tag frame as AprilTag's: x right, y down, z into the tag.
    """
    image = np.full((intrinsics.height, intrinsics.width), background, np.uint8)
    for tag_id, size, R, t in tags:
        tex = tag_texture(tag_id)
        h = size / 2 * 10 / 8  # the texture includes the white quiet zone
        corners = np.array([[-h, -h, 0], [h, -h, 0], [h, h, 0], [-h, h, 0]])
        p = (intrinsics.matrix @ (R @ corners.T + np.asarray(t)[:, None])).T
        dst = (p[:, :2] / p[:, 2:]).astype(np.float32)
        src = np.array([[0, 0], [tex.shape[1], 0], [tex.shape[1], tex.shape[0]], [0, tex.shape[0]]], np.float32)
        warped = cv2.warpPerspective(tex, cv2.getPerspectiveTransform(src, dst), (intrinsics.width, intrinsics.height),
                                     flags=cv2.INTER_AREA, borderValue=0)
        mask = cv2.warpPerspective(np.full_like(tex, 255), cv2.getPerspectiveTransform(src, dst),
                                   (intrinsics.width, intrinsics.height), flags=cv2.INTER_NEAREST, borderValue=0)
        image[mask > 0] = warped[mask > 0]
    if noise:
        image = np.clip(image + np.random.default_rng(seed).normal(0, noise, image.shape), 0, 255).astype(np.uint8)
    return image


def facing_camera(yaw: float = 0.0, tilt: float = 0.0) -> np.ndarray:
    """R_cam_tag of a tag facing the camera (tag z along camera z), turned by ``yaw`` and tilted by ``tilt`` rad."""
    return cv2.Rodrigues(np.array([tilt, 0.0, 0.0]))[0] @ cv2.Rodrigues(np.array([0.0, 0.0, yaw]))[0]
