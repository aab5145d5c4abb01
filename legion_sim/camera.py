"""A virtual RealSense and real tag36h11 AprilTags in the MuJoCo scene, for perception in the loop.

* :func:`tag_image`: the tag's bit pattern from OpenCV's AprilTag dictionary (``DICT_APRILTAG_36h11``, the
  family pupil-apriltags detects), turned upright and framed by its white quiet zone.
* :func:`add_tag`: a thin visual-only plate textured with that image on any body (no mass, no contacts, so the
  physics is unchanged), and a site at the tag frame as AprilTag defines it (x right, y down, z into the tag):
  the site's pose is the tag's true pose.
* :func:`add_realsense`: a MuJoCo camera with a D435 colour sensor's pinhole intrinsics at 640 x 480
  (``focal_pixel``, ``principal_pixel``, ``resolution``).
* :class:`VirtualRealSense`: renders that camera and reports its true pose T_sim<-camera_color_optical_frame.
* :func:`add_perception_rig`: the KUKA scene's camera at the side edge of the table, the task objects' tags,
  the gripper's calibration tag and an occluder card.

MuJoCo cameras look along their -z with y up; the optical frame (REP-103 ``*_optical_frame``) looks along +z
with y down: R_optical = R_mujoco diag(1, -1, -1).
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim2real.perception import Intrinsics

#: Colour stream of an Intel RealSense D435 at 640 x 480: the factory intrinsics of one unit, as
#: ``rs2_intrinsics`` reports them (fx, fy, ppx, ppy in px; the colour stream is undistorted, model "none").
D435_COLOR_640x480 = Intrinsics(fx=615.37, fy=615.51, cx=321.84, cy=238.12, width=640, height=480)
#: The same unit's colour stream at 1280 x 720 (16:9, the full 69 deg field): the 640 x 480 mode is the central
#: 960 x 720 of it scaled by 2/3, so f and c scale by 1.5 and cx gains 160 px.
D435_COLOR_1280x720 = Intrinsics(fx=1.5 * 615.37, fy=1.5 * 615.51, cx=1.5 * 321.84 + 160.0, cy=1.5 * 238.12,
                                 width=1280, height=720)
#: Camera name in the scene (the real camera's frame is ``camera_color_optical_frame``).
REALSENSE_CAMERA = "realsense_color"
#: Pixels per tag cell of the texture (8 cells of tag + 1 quiet-zone cell each side).
_CELL = 16
_OPTICAL_FROM_MUJOCO = np.diag([1.0, -1.0, -1.0])


def tag_image(tag_id: int, cell_px: int = _CELL) -> np.ndarray:
    """(10 c, 10 c) uint8 image of tag36h11 ``tag_id``: 8 x 8 cells (black border + 6 x 6 data), 1-cell white margin.

    Row 0 is the top of the tag as AprilTag draws it: image x, y run along the tag frame's x (right) and y (down).

    Raises:
        ValueError: ``tag_id`` outside 0..586 (tag36h11 has 587 codes).
    """
    import cv2

    if not 0 <= int(tag_id) <= 586:
        raise ValueError(f"tag36h11 ids are 0..586, got {tag_id}")
    marker = cv2.aruco.generateImageMarker(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_APRILTAG_36h11),
                                           int(tag_id), 8 * cell_px)
    # OpenCV draws the code turned 180 degrees from AprilTag's upright tag (pupil-apriltags' pose of OpenCV's
    # image is R_z(pi) off, measured), so turn it back.
    marker = cv2.rotate(marker, cv2.ROTATE_180)
    return cv2.copyMakeBorder(marker, cell_px, cell_px, cell_px, cell_px, cv2.BORDER_CONSTANT, value=255)


def add_tag(spec: mujoco.MjSpec, body: mujoco.MjsBody, name: str, tag_id: int, size_m: float,
            pos=(0.0, 0.0, 0.0), quat=(1.0, 0.0, 0.0, 0.0)) -> mujoco.MjsSite:
    """Add a textured tag plate to ``body``.

    Args:
        spec: the scene being built.
        body: the body that carries the tag (``spec.worldbody`` for a fixed tag).
        name: geom name (the texture, material and mesh are named after it).
        tag_id: tag36h11 id.
        size_m: edge of the tag's black square, m (the plate adds the white quiet zone: 10/8 of it).
        pos, quat: tag frame in the body frame (m; w, x, y, z). Tag frame: x right, y down, z into the tag,
            so the printed face looks along -z.

    Returns:
        The site ``name`` at the tag frame (its pose is the tag's true pose). The plate is the geom
        ``name + "_plate"``: a 0.5 mm thick box mesh, visual only (contype = conaffinity = 0, density 0). MuJoCo
        moves a mesh geom's frame to the mesh's inertial frame, hence the site.
    """
    img = tag_image(tag_id)
    h, w = img.shape
    tex = spec.add_texture(name=name + "_texture", type=mujoco.mjtTexture.mjTEXTURE_2D, width=w, height=h, nchannel=3)
    tex.data = np.repeat(img[:, :, None], 3, axis=2).tobytes()
    mat = spec.add_material(name=name + "_material")
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name
    half = size_m / 2 * 10 / 8
    # front face at z = 0 (looking along -z), back face 0.5 mm behind; texcoords put image (0, 0) at the
    # tag's (-x, -y) corner.
    vert, uv = [], []
    for z in (0.0, 0.0005):
        for x, y in ((-half, -half), (half, -half), (half, half), (-half, half)):
            vert += [x, y, z]
            uv += [(x + half) / (2 * half), (y + half) / (2 * half)]
    faces = [0, 2, 1, 0, 3, 2,  # front, normal -z
             4, 5, 6, 4, 6, 7,  # back
             0, 1, 5, 0, 5, 4, 1, 2, 6, 1, 6, 5, 2, 3, 7, 2, 7, 6, 3, 0, 4, 3, 4, 7]
    mesh = spec.add_mesh(name=name + "_mesh", uservert=vert, usertexcoord=uv, userface=faces,
                         userfacetexcoord=faces)
    geom = body.add_geom(name=name + "_plate", type=mujoco.mjtGeom.mjGEOM_MESH, meshname=mesh.name,
                         material=mat.name, pos=list(pos), quat=list(quat), density=0.0)
    geom.contype, geom.conaffinity, geom.group = 0, 0, 1
    return body.add_site(name=name, pos=list(pos), quat=list(quat), size=[0.002, 0.0, 0.0], group=5)


def add_realsense(spec: mujoco.MjSpec, pos_sim, look_at_sim, intrinsics: Intrinsics = D435_COLOR_640x480,
                  name: str = REALSENSE_CAMERA) -> mujoco.MjsCamera:
    """Add a fixed camera with ``intrinsics`` at ``pos_sim`` looking at ``look_at_sim`` (sim frame, m), image x level.

    MuJoCo places the principal point at (W/2 - principal_pixel_x, H/2 + principal_pixel_y) (measured with a
    projected sphere in tests/test_sim_camera.py), hence the signs below.
    """
    pos, target = np.asarray(pos_sim, float), np.asarray(look_at_sim, float)
    forward = (target - pos) / np.linalg.norm(target - pos)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    cam = spec.worldbody.add_camera(name=name, pos=list(pos))
    cam.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
    cam.alt.xyaxes = list(right) + list(up)
    cam.resolution = [intrinsics.width, intrinsics.height]
    cam.focal_pixel = [intrinsics.fx, intrinsics.fy]
    cam.principal_pixel = [intrinsics.width / 2 - intrinsics.cx, intrinsics.cy - intrinsics.height / 2]
    cam.sensor_size = [intrinsics.width * 1e-5, intrinsics.height * 1e-5]  # any size: only the ratios matter
    spec.visual.global_.offwidth = max(spec.visual.global_.offwidth, intrinsics.width)
    spec.visual.global_.offheight = max(spec.visual.global_.offheight, intrinsics.height)
    return cam


@dataclass
class VirtualRealSense:
    """Renders the scene camera ``name`` as the real camera's colour stream.

    Args:
        model, data: the compiled scene and its state.
        intrinsics: the intrinsics the camera was added with.
        name: camera name.
    """

    model: mujoco.MjModel
    data: mujoco.MjData
    intrinsics: Intrinsics = D435_COLOR_640x480
    name: str = REALSENSE_CAMERA

    def __post_init__(self):
        self._id = self.model.camera(self.name).id
        self._renderer: mujoco.Renderer | None = None
        self._option = mujoco.MjvOption()
        self._option.sitegroup[:] = 0  # Meta-World's goal spheres are drawings, not things a camera sees

    def grab(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of the current state (call after ``mj_forward``/``mj_step``).

        Raises:
            RuntimeError: no GL back-end (headless machines need ``MUJOCO_GL=egl``).
        """
        if self._renderer is None:
            try:
                self._renderer = mujoco.Renderer(self.model, height=self.intrinsics.height, width=self.intrinsics.width)
            except Exception as exc:  # noqa: BLE001 - GL back-ends raise assorted types
                raise RuntimeError(f"cannot render the virtual RealSense ({exc}); set MUJOCO_GL=egl") from exc
        self.update_scene(self._renderer)
        return self._renderer.render().copy()

    def update_scene(self, renderer: mujoco.Renderer) -> None:
        """Copy the current state into ``renderer``'s scene as this camera sees it (``mjv_updateScene``; no GL).

        Shadows and reflections are off: with software GL they cost 30 % of a 640 x 480 frame (54 -> 38 ms on one
        core here), and the tags, which are all perception reads, look the same without them.
        """
        renderer.update_scene(self.data, camera=self._id, scene_option=self._option)
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False

    def pose_sim(self) -> np.ndarray:
        """(4, 4) true T_sim<-camera_color_optical_frame."""
        T = np.eye(4)
        T[:3, :3] = self.data.cam_xmat[self._id].reshape(3, 3) @ _OPTICAL_FROM_MUJOCO
        T[:3, 3] = self.data.cam_xpos[self._id]
        return T

    def close(self) -> None:
        """Free the GL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


# --------------------------------------------------------------------------------------------------
# The perception rig of the KUKA scene: where the camera stands and which tags ride on what.

#: Camera at the side edge of the table (+x), looking across it (sim frame, m): 0.8-1.1 m from the objects.
#: From the far edge (facing the robot) the goal marker and the gripper on its way to the goal hid the puck
#: in 8 of 20 reach episodes; from the side they stand beside it.
CAMERA_POS_SIM = (0.7, 0.65, 0.7)
CAMERA_LOOK_AT_SIM = (0.0, 0.7, 0.05)
#: Tag frame of a tag lying face up (x along +x, y along -y, z down): quaternion (w, x, y, z).
FACE_UP = (0.0, 1.0, 0.0, 0.0)
#: Tag frame of an upright tag facing +x (x along +y, y down, z along -x).
FACE_PLUS_X = (0.5, -0.5, -0.5, 0.5)
#: Mocap body that carries the goal marker tag of tasks whose goal is a point in space (reach).
GOAL_MARKER_BODY = "goal_marker"
#: Mocap body with a 20 x 20 cm grey card (visual only), parked under the floor; move it to occlude a tag.
OCCLUDER_BODY = "occluder"
OCCLUDER_PARKED_POS = (0.0, 0.0, -2.0)
#: Calibration tag on the gripper (tag36h11 id, edge m), on the side of the 2F-85 base facing along +x of the
#: adapter link, and its frame in the adapter link's frame (the true T_gripper<-tag, for tests).
CALIBRATION_TAG_ID = 10
CALIBRATION_TAG_SIZE_M = 0.05
CALIBRATION_TAG_SITE = "calibration_tag"
CALIBRATION_TAG_POS = (0.047, 0.0, 0.045)
CALIBRATION_TAG_QUAT = FACE_PLUS_X  # on the adapter link: tag x = +y, tag y = -z, tag z = -x


def face_quat(normal, up=(0.0, 0.0, 1.0)) -> tuple[float, float, float, float]:
    """Tag frame (w, x, y, z) in a body frame for a tag whose printed face looks along ``normal`` (body frame).

    The tag's z points into the tag (-``normal``). On an upright face its y points down (-``up``); on a face that
    looks along ``up`` its x follows the body's x (as :data:`FACE_UP`).
    """
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    up = np.asarray(up, float) / np.linalg.norm(up)
    z = -n
    if abs(n @ up) < 0.9:
        y = -(up - (up @ n) * n)
        y /= np.linalg.norm(y)
        x = np.cross(y, z)
    else:
        x = np.array([1.0, 0.0, 0.0]) - z[0] * z
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.c_[x, y, z].flatten())
    return tuple(float(v) for v in quat)


@dataclass(frozen=True)
class TagMount:
    """A tag in the scene: id, edge (m), carrying body, tag frame in the body frame (m; w, x, y, z)."""

    tag_id: int
    size_m: float
    body: str
    pos: tuple[float, float, float]
    quat: tuple[float, float, float, float] = FACE_UP


#: Tags on the objects of each task; ids, sizes and object offsets match legion_sim/data/sim_tag_map.yaml.
TAG_MOUNTS: dict[str, tuple[TagMount, ...]] = {
    # the puck (cylinder, 2 cm half height) with its tag on top; the goal marker floats at the goal
    "reach-v3": (TagMount(0, 0.04, "obj", (0.0, 0.0, 0.0205)), TagMount(1, 0.04, GOAL_MARKER_BODY, (0.0, 0.0, 0.0))),
    # upright on the drawer's outer side wall facing the camera (+x), near its front: it slides with the handle,
    # stays outside the case until the drawer is nearly shut, and the gripper, working above the drawer, never
    # comes between it and the camera (a tag on top was hidden by the drawer's walls or the wrist)
    "drawer-close-v3": (TagMount(2, 0.04, "drawer_link", (0.128, -0.07, 0.008), FACE_PLUS_X),),
    # The table ("clean the table", legion_sim/table_scene.py): the faces its two cameras see while the arm works
    # on each set (benchmarks/bench_table_camera_views.py; docs/long-horizon.md). Pucks: 3 cm tags on the sides
    # the 2F-85 does not close on (it closes along y); drawer: both outer side walls near the front and the front
    # panel; button: a tab off its cap (the fingertips press the cap's centre); plug: the ball's tip, its top and
    # its -y side; window: the sash's glass facing the robot; faucet: the lever's hub (it turns with the lever).
    "clean-the-table": (
        TagMount(3, 0.03, "push/obj", (0.0205, 0.0, 0.0), face_quat((1, 0, 0))),
        TagMount(4, 0.03, "push/obj", (-0.0205, 0.0, 0.0), face_quat((-1, 0, 0))),
        TagMount(19, 0.03, "push/obj", (0.0, 0.0, 0.0205), face_quat((0, 0, 1))),
        TagMount(5, 0.03, "pick-place/obj", (0.0205, 0.0, 0.0), face_quat((1, 0, 0))),
        TagMount(24, 0.03, "pick-place/obj", (-0.0205, 0.0, 0.0), face_quat((-1, 0, 0))),
        TagMount(6, 0.03, "pick-place/obj", (0.0, 0.0, 0.0205), face_quat((0, 0, 1))),
        # the pick-place puck's -x and +-y sides too: held at its goal, the hand hides its top and the fingers its +-y
        # sides, and the left camera sees its -x side; at the start pose the plug and the hand leave the +-y sides
        # the only faces in view at some resets
        TagMount(20, 0.03, "pick-place/obj", (0.0, 0.0205, 0.0), face_quat((0, 1, 0))),
        TagMount(21, 0.03, "pick-place/obj", (0.0, -0.0205, 0.0), face_quat((0, -1, 0))),
        TagMount(7, 0.05, "drawer-close/drawer_link", (0.101, -0.05, 0.01), face_quat((1, 0, 0))),
        TagMount(8, 0.05, "drawer-close/drawer_link", (-0.101, -0.05, 0.01), face_quat((-1, 0, 0))),
        # drawer front panel (faces the robot and the left camera), above the handle on its -x side: the only face
        # still outside the case when the drawer is shut, and the hand pushing the handle's middle does not hide it
        TagMount(18, 0.04, "drawer-close/drawer_link", (-0.05, -0.0905, 0.035), face_quat((0, -1, 0))),
        # button: a tab at the cap's top level reaching past its rim towards the right camera (+x +y, centre 6.2 cm
        # from the cap's axis): a tag on the cap itself is covered by the fingertips while they press (the button
        # body's local -y is world up, local z world +y)
        TagMount(9, 0.03, "button-press-topdown/button", (0.0438, -0.2015, 0.0438), face_quat((0, -1, 0), (0, -1, 0))),
        TagMount(11, 0.03, "peg-unplug-side/plug", (0.1005, 0.0, 0.0), face_quat((1, 0, 0))),
        TagMount(12, 0.03, "peg-unplug-side/plug", (0.045, 0.0, 0.0405), face_quat((0, 0, 1))),
        TagMount(13, 0.03, "peg-unplug-side/plug", (0.045, -0.0405, 0.0), face_quat((0, -1, 0))),
        TagMount(14, 0.06, "window-close/windowb_a", (-0.104, -0.0265, 0.05), face_quat((0, -1, 0))),
        TagMount(15, 0.03, "faucet-open/faucet_link2", (0.0, 0.0, 0.033), face_quat((0, 0, 1))),
        # goal markers (legion_sim/table_scene.py): push's is a printed sheet flat on the table with three tags around
        # its goal point, 8 cm to +x and 3 cm to -y, 8 cm to +y and 8 cm to -y (the marker body is at the puck's
        # centre height, 2 cm up; under the goal point the faucet's lever hid a tag from the right camera at every
        # reset, and each of the three alone is hidden by the faucet at some); pick-place's floats face up at its goal
        TagMount(16, 0.05, "push_goal", (0.08, -0.03, -0.0195), FACE_UP),
        TagMount(22, 0.05, "push_goal", (0.0, 0.08, -0.0195), FACE_UP),
        TagMount(23, 0.05, "push_goal", (0.0, -0.08, -0.0195), FACE_UP),
        TagMount(17, 0.05, "place_goal", (0.0, 0.0, 0.0), FACE_UP),
    ),
}


def sim_tag_map_path() -> str:
    """Path of the tag map of the simulated scene (``sim2real.perception.load_tag_map`` format)."""
    import os

    return os.path.join(os.path.dirname(__file__), "data", "sim_tag_map.yaml")


def add_perception_rig(spec: mujoco.MjSpec, task: str, gripper_body: str) -> None:
    """Add the virtual RealSense, the task's object tags, the gripper's calibration tag and an occluder card.

    Args:
        spec: the scene of ``task`` (:func:`legion_sim.kuka_scene.build_kuka_scene`).
        task: Meta-World v3 task name; tasks without an entry in :data:`TAG_MOUNTS` get the camera and the
            calibration tag only.
        gripper_body: name of the 2F-85 adapter link in the scene.
    """
    add_realsense(spec, CAMERA_POS_SIM, CAMERA_LOOK_AT_SIM)
    mounts = TAG_MOUNTS.get(task, ())
    if any(m.body == GOAL_MARKER_BODY for m in mounts):
        spec.worldbody.add_body(name=GOAL_MARKER_BODY, mocap=True)
    for m in mounts:
        add_tag(spec, spec.body(m.body), f"tag{m.tag_id}", m.tag_id, m.size_m, m.pos, m.quat)
    occluder = spec.worldbody.add_body(name=OCCLUDER_BODY, mocap=True, pos=list(OCCLUDER_PARKED_POS))
    card = occluder.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.1, 0.1, 0.002], density=0.0,
                             rgba=[0.5, 0.5, 0.5, 1.0])
    card.contype, card.conaffinity, card.group = 0, 0, 1
    add_tag(spec, spec.body(gripper_body), CALIBRATION_TAG_SITE, CALIBRATION_TAG_ID, CALIBRATION_TAG_SIZE_M,
            CALIBRATION_TAG_POS, CALIBRATION_TAG_QUAT)
