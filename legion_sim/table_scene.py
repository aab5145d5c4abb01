"""The "clean the table" scene: the objects of seven Meta-World v3 tasks on one table, with the KUKA iiwa 14 + 2F-85.

Built at run time with ``mujoco.MjSpec`` from installed packages only: :func:`legion_sim.kuka_scene.build_kuka_scene`
on push-v3's XML gives the table, walls, arm, gripper and servos (push-v3's own puck and goal site are removed);
then, for each task of :data:`TABLE_TASKS`, the task's Meta-World XML is loaded and its object bodies (not its
Sawyer, mocap, table, walls, floor, lights, cameras or world sites) are attached under a frame at the task's
anchor, every name prefixed with ``"<task>/"`` (``"drawer-close/drawer_link"``); MuJoCo copies the meshes,
textures, materials and default classes they use. Push and pick-place get visual-only mocap goal markers
(``push_goal``, ``place_goal``) that carry the goal site of their task (``push/goal``, ``pick-place/goal``).

Layout: the anchor of a task is where its main body (the body Meta-World's ``reset_model`` places) stands in the
sim frame (= Meta-World's world frame); each reset adds a seeded uniform offset of +-:data:`JITTER_M` in x and
y. The anchors are Meta-World's placements moved apart so that the seven sets do not touch at rest (the button box
is 1 cm lower than Meta-World's, sunk into the table top, so that its top point stays below z = 0.3 m).
Every set's object point is reachable and its reference controller succeeds at every tested reset
(tests/test_table_scene.py). Each set carries AprilTags that the two table cameras see (tests/test_table_tags.py).

Points, goals and success tests are those of Meta-World v3's task classes (``_get_pos_objects``,
``_target_pos`` from ``reset_model``, ``evaluate_state``; metaworld/envs/sawyer_<task>_v3.py), stated once in
:data:`TABLE_TASKS` as element names of the task's XML plus offsets, so the same definition can be evaluated on
Meta-World's own env (the test does, to 1e-6 m).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import mujoco
import numpy as np

from legion_sim.camera import D435_COLOR_1280x720, VirtualRealSense, add_perception_rig, add_realsense
from legion_sim.kuka_metaworld import start_pose
from legion_sim.kuka_scene import CAMERA_NAME, GRIPPER_PREFIX, SceneConfig, build_kuka_scene
from legion_sim.plant import KukaPlant, _metaworld_env
from sim2real.transforms import METAWORLD_EE_OFFSET_M

#: Start hand (Meta-World's ``hand_init_pos`` of push, pick-place, drawer-close and peg-unplug-side), sim frame, m.
HAND_INIT_POS = np.array([0.0, 0.6, 0.2])
#: Per-reset placement offset of every object set: uniform in +-JITTER_M along x and y, m.
JITTER_M = 0.025
#: Sim2Real's clip box for the hand (Meta-World's hand bounds, z capped), sim frame, m: (low, high).
HAND_BOX = (np.array([-0.525, 0.348, -np.inf]), np.array([0.525, 1.025, 0.3]))
#: A subtask's start stays this far inside :data:`HAND_BOX`, m.
START_MARGIN_M = 0.01
#: A start moved into the box hovers this far above its set's highest point, m (:meth:`TablePlant.skill_starts`).
START_CLEARANCE_M = 0.01
#: Meta-World's minimum distance in the table plane between a puck and its goal (push/pick-place reset_model), m.
MIN_GOAL_DISTANCE_M = 0.15

Reader = Callable[[str, str], np.ndarray]  # (kind "body" | "site", name in the task XML) -> (3,) world position


@dataclass(frozen=True)
class Point:
    """A point of a task's state: a body's position (``kind="body"``: ``data.xpos``, which is what gymnasium's
    ``get_body_com`` returns) or a site's (``kind="site"``), named as in the task's Meta-World XML, plus a
    world-frame offset (m)."""

    kind: str
    name: str
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def resolve(self, read: Reader) -> np.ndarray:
        """(3,) the point, given a reader of positions by (kind, name) on a scene."""
        return np.asarray(read(self.kind, self.name), dtype=np.float64) + self.offset


@dataclass(frozen=True)
class GoalMarker:
    """A visual-only mocap body that carries the task's goal site (push, pick-place).

    Placed at the puck + ``offset`` (Meta-World's goal-box centre minus its object-box centre) + the jitter, at
    the puck's height (push: ``reset_model`` sets the goal's z to the puck's) or uniform in ``z_range`` (pick-place's
    goal box), redrawn until it is :data:`MIN_GOAL_DISTANCE_M` from the puck in the plane, like ``reset_model``.
    """

    body: str
    offset: tuple[float, float]
    z_range: tuple[float, float] | None = None
    rgba: tuple[float, float, float, float] = (0.0, 0.8, 0.0, 1.0)


@dataclass(frozen=True)
class TableTask:
    """One task's object set on the table.

    Attributes:
        env_id: Meta-World v3 env name.
        object_name: the task library's name of its object (``legion_language/data/task_library.yaml``).
        root: the body ``reset_model`` places (at ``anchor`` + jitter here); its name in the task XML.
        anchor: (3,) where ``root`` stands in this scene before the jitter, sim frame, m.
        point: Meta-World's ``_get_pos_objects()``.
        goal: Meta-World's ``_target_pos``, read at the initial state.
        success: Meta-World's ``evaluate_state`` success test on (tcp, object point, goal), (3,) each, m.
        free: other free bodies attached with ``root`` and placed at root + offset (m), identity orientation.
        joints: initial positions of the set's joints (rad or m) as ``reset_model`` sets them; others at 0.
        quat: the element of observation[7:11] (``_get_quat_objects``): ("geom", name): its orientation as
            (x, y, z, w); ("body", name): its ``xquat`` as MuJoCo stores it (w, x, y, z); None: zeros.
        marker: goal marker (push, pick-place), None for goals fixed to the object set.
    """

    env_id: str
    object_name: str
    root: str
    anchor: tuple[float, float, float]
    point: Point
    goal: Point
    success: Callable[[np.ndarray, np.ndarray, np.ndarray], bool]
    free: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    joints: dict[str, float] = field(default_factory=dict)
    quat: tuple[str, str] | None = None
    marker: GoalMarker | None = None

    @property
    def prefix(self) -> str:
        """Name prefix of the set's elements in the scene, e.g. ``"drawer-close/"``."""
        return self.env_id.removesuffix("-v3") + "/"

    def metaworld_default(self) -> np.ndarray:
        """(3,) Meta-World's mean placement of ``root``: the centre of its object reset box (``_random_reset_space``)."""
        space = _metaworld_env(self.env_id)._random_reset_space
        return (0.5 * (space.low + space.high))[:3]


def _within(threshold: float, shift=(0.0, 0.0, 0.0)):
    """Success when |object point + shift - goal| <= threshold (m)."""
    return lambda tcp, obj, goal: bool(np.linalg.norm(obj + shift - goal) <= threshold)


#: The seven tasks of "clean the table" (legion_language/data/task_library.yaml), Meta-World v3 sources in comments.
TABLE_TASKS: tuple[TableTask, ...] = (
    # sawyer_push_v3: obj = get_body_com("obj"); goal = marker at the puck's height; success |obj-goal| <= 0.05
    TableTask("push-v3", "push_puck", "obj", (0.2, 0.58, 0.02), Point("body", "obj"), Point("site", "goal"),
              _within(0.05), quat=("geom", "objGeom"), marker=GoalMarker("push_goal", (0.0, 0.2))),
    # sawyer_pick_place_v3: as push, goal in the air (0.05..0.3 m); success |obj-goal| <= 0.07
    TableTask("pick-place-v3", "place_puck", "obj", (-0.25, 0.50, 0.02), Point("body", "obj"), Point("site", "goal"),
              _within(0.07), quat=("geom", "objGeom"),
              marker=GoalMarker("place_goal", (0.0, 0.2), (0.05, 0.3), (0.0, 0.0, 0.8, 1.0))),
    # sawyer_drawer_close_v3: obj = drawer_link + (0, -0.16, 0.05); goal = drawer + (0, -0.16, 0.09); pulled out
    # maxDist = 0.15; success |obj-goal| <= TARGET_RADIUS + 0.015
    TableTask("drawer-close-v3", "drawer_handle", "drawer", (0.0, 0.9, 0.0),
              Point("body", "drawer_link", (0.0, -0.16, 0.05)), Point("body", "drawer", (0.0, -0.16, 0.09)),
              _within(0.065), joints={"goal_slidey": -0.15}),
    # sawyer_button_press_topdown_v3: obj = button + (0, 0, 0.193); goal = site "hole" (button up);
    # success |goal_z - obj_z| <= 0.024
    TableTask("button-press-topdown-v3", "button", "box", (0.42, 0.48, 0.105),
              Point("body", "button", (0.0, 0.0, 0.193)), Point("site", "hole"),
              lambda tcp, obj, goal: bool(abs(goal[2] - obj[2]) <= 0.024), quat=("body", "button")),
    # sawyer_peg_unplug_side_v3: plug1 at box + (0.044, 0, 0.131); obj = site "pegEnd"; goal = plug + (0.15, 0, 0);
    # success |obj-goal| <= 0.07
    TableTask("peg-unplug-side-v3", "peg", "box", (-0.45, 0.45, 0.0), Point("site", "pegEnd"),
              Point("body", "plug1", (0.15, 0.0, 0.0)), _within(0.07), free={"plug1": (0.044, 0.0, 0.131)},
              quat=("body", "plug1")),
    # sawyer_window_close_v3: obj = site "handleCloseStart"; goal = window position; opened window_slide = 0.2;
    # success |obj_x - goal_x| <= TARGET_RADIUS (0.05)
    TableTask("window-close-v3", "window_handle", "window", (-0.45, 0.85, 0.2), Point("site", "handleCloseStart"),
              Point("body", "window"), lambda tcp, obj, goal: bool(abs(obj[0] - goal[0]) <= 0.05),
              joints={"window_slide": 0.2}),
    # sawyer_faucet_open_v3: obj = site "handleStartOpen" + (0, 0, -0.01); goal = faucetBase + (0.175, 0, 0.125);
    # success |obj + (-0.04, 0, 0.03) - goal| <= 0.07 (compute_reward's shifted handle point)
    TableTask("faucet-open-v3", "faucet_handle", "faucetBase", (0.3, 0.85, 0.0),
              Point("site", "handleStartOpen", (0.0, 0.0, -0.01)), Point("body", "faucetBase", (0.175, 0.0, 0.125)),
              _within(0.07, (-0.04, 0.0, 0.03)), quat=("body", "faucetBase")),
)
TASKS_BY_ID = {t.env_id: t for t in TABLE_TASKS}
#: Fixed camera of :meth:`TablePlant.render`: front right, above the arm, looking at the table's centre.
TABLE_CAMERA_POS = (0.9, -0.35, 1.35)
TABLE_CAMERA_LOOK_AT = (0.0, 0.68, 0.05)
#: The table's two RealSense D435s on the 1280 x 720 colour stream: camera name -> (position, look-at point), sim
#: frame, m. Right-far sees the +x faces of the sets, left-near (over the arm's left shoulder) the faces towards the
#: robot and the -x faces; chosen by benchmarks/bench_table_camera_views.py (docs/long-horizon.md).
TABLE_REALSENSES = {"table_camera_right": ((0.801, 0.998, 0.736), (0.25, 0.68, 0.1)),
                    "table_camera_left": ((-0.568, 0.129, 0.736), (-0.25, 0.68, 0.1))}


def build_table_scene(config: SceneConfig = SceneConfig(), tasks: tuple[TableTask, ...] = TABLE_TASKS) -> mujoco.MjSpec:
    """The table with the object sets of ``tasks`` at their anchors, the KUKA + 2F-85, goal markers and cameras.

    Returns:
        An uncompiled spec; names as the module docstring says, the render camera is ``kuka_view`` (moved to
        :data:`TABLE_CAMERA_POS`), plus the virtual RealSense, calibration tag and the table's object tags
        (``TAG_MOUNTS["clean-the-table"]``) of :func:`legion_sim.camera.add_perception_rig`, and the two
        1280 x 720 RealSenses of :data:`TABLE_REALSENSES`.
    """
    spec = build_kuka_scene(_metaworld_env("push-v3").model_name, config)
    spec.detach_body(spec.body("obj"))  # push-v3's own puck and goal: every set is attached below, alike
    spec.site("goal").delete()
    for task in tasks:
        child = _object_set_spec(task)
        frame = spec.worldbody.add_frame(pos=list(np.subtract(task.anchor, child.body(task.root).pos)))
        spec.attach(child, frame=frame, prefix=task.prefix)
        if task.marker is not None:
            marker = spec.worldbody.add_body(name=task.marker.body, mocap=True, pos=list(task.anchor))
            marker.add_site(name=task.prefix + task.goal.name, size=[0.02, 0.0, 0.0], rgba=list(task.marker.rgba))
    add_perception_rig(spec, "clean-the-table", GRIPPER_PREFIX + "robotiq_85_adapter_link")
    for name, (pos, look_at) in TABLE_REALSENSES.items():
        add_realsense(spec, pos, look_at, D435_COLOR_1280x720, name=name)
    spec.camera(CAMERA_NAME).delete()
    forward = np.subtract(TABLE_CAMERA_LOOK_AT, TABLE_CAMERA_POS)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    up = np.cross(right, forward)
    spec.worldbody.add_camera(name=CAMERA_NAME, pos=list(TABLE_CAMERA_POS),
                              xyaxes=np.r_[right / np.linalg.norm(right), up / np.linalg.norm(up)])
    return spec


def _object_set_spec(task: TableTask) -> mujoco.MjSpec:
    """The task's Meta-World XML reduced to its object set: only ``root`` and the ``free`` bodies stay in the world
    body (no Sawyer, mocap, table, walls, floor, lights, cameras, world sites), no actuators or equalities (the
    Sawyer's), no assets that nothing uses.

    Raises:
        ValueError: the XML lacks ``root`` or a ``free`` body.
    """
    spec = mujoco.MjSpec.from_file(_metaworld_env(task.env_id).model_name)
    keep = {task.root, *task.free}
    if missing := keep - {b.name for b in spec.worldbody.bodies}:
        raise ValueError(f"{task.env_id}: no world bodies {sorted(missing)} in {spec.modelfiledir}")
    for body in list(spec.worldbody.bodies):
        if body.name not in keep:
            spec.detach_body(body)
    world = spec.worldbody
    for element in (list(world.geoms) + list(world.sites) + list(world.lights) + list(world.cameras)
                    + list(spec.actuators) + list(spec.equalities)):
        element.delete()
    used = {g.meshname for g in spec.geoms}
    for mesh in list(spec.meshes):
        if mesh.name not in used:
            mesh.delete()
    return spec


class _PlacedTask:
    """A :class:`TableTask` bound to the compiled scene: placement, object point, goal and success.

    Offers what :class:`legion_sim.plant.KukaPlant` asks of its task (``object_position``, ``goal``, ``success``,
    ``quaternion``).
    """

    def __init__(self, task: TableTask, model: mujoco.MjModel):
        self.task, self.model = task, model
        p = task.prefix
        self.root = model.body(p + task.root).id
        self.root_free = model.body_jntnum[self.root] > 0
        self.free = {model.body(p + n).id: np.asarray(off) for n, off in task.free.items()}
        self.joints = {model.jnt_qposadr[model.joint(p + n).id]: v for n, v in task.joints.items()}
        self.marker = None if task.marker is None else int(model.body_mocapid[model.body(task.marker.body).id])
        self.goal = np.zeros(3)
        self.placement = np.asarray(task.anchor, dtype=np.float64)

    def read(self, data: mujoco.MjData) -> Reader:
        p = self.task.prefix
        return lambda kind, name: data.xpos[self.model.body(p + name).id] if kind == "body" \
            else data.site_xpos[self.model.site(p + name).id]

    def place(self, data: mujoco.MjData, rng: np.random.Generator, jitter_m: float = JITTER_M) -> None:
        """Put the set at its anchor + a jitter of up to ``jitter_m`` (m) in its Meta-World initial state (goal:
        :meth:`record_goal`)."""
        jitter = np.r_[rng.uniform(-jitter_m, jitter_m, 2), 0.0]
        self.placement = np.asarray(self.task.anchor, dtype=np.float64) + jitter
        if self.root_free:
            _set_free(self.model, data, self.root, self.placement)
        else:
            self.model.body_pos[self.root] = self.placement
        for body, offset in self.free.items():
            _set_free(self.model, data, body, self.placement + offset)
        for qadr, value in self.joints.items():
            data.qpos[qadr] = value
        marker = self.task.marker
        if marker is not None:
            while True:
                xy = self.placement[:2] + marker.offset + rng.uniform(-jitter_m, jitter_m, 2)
                if np.linalg.norm(xy - self.placement[:2]) >= MIN_GOAL_DISTANCE_M:
                    break
            z = self.placement[2] if marker.z_range is None else rng.uniform(*marker.z_range)
            data.mocap_pos[self.marker] = np.r_[xy, z]

    def record_goal(self, data: mujoco.MjData) -> None:
        """Read the goal off the initial state (after ``mj_forward``), as ``reset_model`` sets ``_target_pos``."""
        self.goal = self.task.goal.resolve(self.read(data))

    def object_position(self, data: mujoco.MjData) -> np.ndarray:
        return self.task.point.resolve(self.read(data))

    def boxes(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """The set's colliding geoms' bounding boxes now: ((N, 3) low, (N, 3) high corners), sim frame, m."""
        return _boxes(self.model, data, lambda name: name.startswith(self.task.prefix))

    def success(self, data: mujoco.MjData, tcp: np.ndarray) -> bool:
        return self.task.success(tcp, self.object_position(data), self.goal)

    def quaternion(self, data: mujoco.MjData) -> np.ndarray:
        if self.task.quat is None:
            return np.zeros(4)
        kind, name = self.task.quat
        if kind == "body":
            return data.xquat[self.model.body(self.task.prefix + name).id].copy()
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, data.geom_xmat[self.model.geom(self.task.prefix + name).id])
        return np.r_[quat[1:], quat[0]]


def _boxes(model: mujoco.MjModel, data: mujoco.MjData, body_named: Callable[[str], bool]) -> tuple[np.ndarray, np.ndarray]:
    """Bounding boxes ((N, 3) low, (N, 3) high corners, sim frame, m) of the colliding geoms of the bodies
    ``body_named`` accepts, each from the geom's own box (``geom_aabb``) in its current pose."""
    low, high = [], []
    for g in range(model.ngeom):
        if not (model.geom_contype[g] or model.geom_conaffinity[g]) or not body_named(model.body(model.geom_bodyid[g]).name):
            continue
        rot = data.geom_xmat[g].reshape(3, 3)
        centre = data.geom_xpos[g] + rot @ model.geom_aabb[g][:3]
        half = np.abs(rot) @ model.geom_aabb[g][3:]
        low.append(centre - half)
        high.append(centre + half)
    return np.array(low), np.array(high)


def _set_free(model: mujoco.MjModel, data: mujoco.MjData, body: int, pos: np.ndarray) -> None:
    """Put a free body at ``pos`` (sim frame, m), identity orientation, at rest (Meta-World's ``_set_obj_xyz``)."""
    joint = model.body_jntadr[body]
    qadr, dadr = model.jnt_qposadr[joint], model.jnt_dofadr[joint]
    data.qpos[qadr:qadr + 7] = np.r_[pos, 1.0, 0.0, 0.0, 0.0]
    data.qvel[dadr:dadr + 6] = 0.0


class TablePlant(KukaPlant):
    """The KUKA iiwa 14 + 2F-85 at the "clean the table" scene: a :class:`legion_runtime.runner.Plant`.

    Driven like :class:`KukaPlant` (7 joint targets + gripper fraction, 50 ms per :meth:`step`; ``joint_state``,
    ``tcp_position``, ``ee_position``, ``render``, ``camera``, ``metaworld_observation``, ``close`` are its).
    ``object_position``, ``goal_position``, ``success`` and the observation refer to the active subtask
    (:meth:`select`).

    Args:
        seed: seed of the placement RNG (``numpy.random.default_rng``); None draws fresh entropy.
        active: the active subtask, a key of :data:`TASKS_BY_ID`.
        render: create the renderer now (fails fast without a GL backend).
        config: robot placement and servo gains.
        ee_offset_m: the policy's ee point behind the TCP along the approach axis, m.
        jitter_m: each set's placement offset per reset, uniform in +-jitter_m along x and y, m.

    Raises:
        ValueError: unknown ``active`` task.
    """

    def __init__(self, seed: int | None = None, active: str = "drawer-close-v3", render: bool = False,
                 config: SceneConfig | None = None, ee_offset_m: float = METAWORLD_EE_OFFSET_M,
                 jitter_m: float = JITTER_M):
        config = config or SceneConfig()
        self.jitter_m = float(jitter_m)
        model = build_table_scene(config).compile()
        self._bind(model, mujoco.MjData(model), config, ee_offset_m, seed)
        self._tasks = {t.env_id: _PlacedTask(t, self.model) for t in TABLE_TASKS}
        self.select(active)
        if render:
            self._renderer(320, 240)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """New episode: every object set at its anchor + a seeded jitter in its Meta-World initial state (drawer
        pulled out, window open, faucet closed, peg plugged in, button up, pucks on the table, markers placed),
        goals recorded, arm at rest with the ee point at :data:`HAND_INIT_POS`, top-down, gripper open.
        ``seed`` and errors as :meth:`KukaPlant.reset`.
        """
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        mujoco.mj_resetData(self.model, self.data)
        for task in self._tasks.values():
            task.place(self.data, self._rng, self.jitter_m)
        mujoco.mj_forward(self.model, self.data)
        for task in self._tasks.values():
            task.record_goal(self.data)
        self.rest_at(HAND_INIT_POS)
        mujoco.mj_forward(self.model, self.data)
        # the open top-down gripper's colliding parts around the ee point: the same wherever the ee point is
        low, high = _boxes(self.model, self.data, lambda name: name.startswith(GRIPPER_PREFIX))
        self._gripper_bounds = (low.min(0) - self.ee_position(), high.max(0) - self.ee_position())

    def select(self, env_id: str) -> None:
        """Make ``env_id`` the active subtask (object, goal, success and observation refer to it).

        Raises:
            ValueError: not one of :data:`TASKS_BY_ID`.
        """
        if env_id not in self._tasks:
            raise ValueError(f"unknown subtask {env_id!r}; the table has {sorted(self._tasks)}")
        self.task = env_id
        self._task = self._tasks[env_id]
        if self._prev_obs18 is not None:
            self._prev_obs18 = self._obs18()

    def evaluate(self, action: np.ndarray) -> tuple[float, bool]:
        """Not offered: the table's object sets are not Meta-World's scenes, so their rewards are not defined here.

        Raises:
            NotImplementedError: always (record demonstrations on :class:`legion_sim.plant.KukaPlant`).
        """
        raise NotImplementedError("the table scene has no task rewards; record demonstrations on KukaPlant(task)")

    def table_cameras(self) -> dict[str, VirtualRealSense]:
        """The table's RealSenses (:data:`TABLE_REALSENSES`, 1280 x 720 colour stream), by camera name; each renders
        on its own GL context, created on its first ``grab``."""
        if not hasattr(self, "_table_cameras"):
            self._table_cameras = {name: VirtualRealSense(self.model, self.data, D435_COLOR_1280x720, name)
                                   for name in TABLE_REALSENSES}
        return self._table_cameras

    def close(self) -> None:
        """Free every renderer's GL context (:meth:`KukaPlant.close` and the table cameras')."""
        for camera in getattr(self, "_table_cameras", {}).values():
            camera.close()
        super().close()

    def objects(self) -> dict[str, np.ndarray]:
        """Every object point (task library names) and goal marker (``push_goal``, ``place_goal``): (3,), sim frame, m."""
        out = {t.task.object_name: t.object_position(self.data) for t in self._tasks.values()}
        for t in self._tasks.values():
            if t.marker is not None:
                out[t.task.marker.body] = self.data.mocap_pos[t.marker].copy()
        return out

    def goals(self) -> dict[str, np.ndarray]:
        """Every subtask's goal recorded at the last reset, by env id: (3,), sim frame, m."""
        return {env_id: t.goal.copy() for env_id, t in self._tasks.items()}

    def workspace_offsets(self) -> dict[str, np.ndarray]:
        """Per subtask env id, (3,) sim frame, m: where its set stands at the last reset minus where Meta-World places
        it (the centre of its reset box, :meth:`TableTask.metaworld_default`): the shift under which each skill sees
        the table as it saw Meta-World's scene in training (``ControlLoop.run_subtask(workspace_offset=...)``)."""
        return {env_id: t.placement - t.task.metaworld_default() for env_id, t in self._tasks.items()}

    def skill_starts(self) -> dict[str, np.ndarray]:
        """Per subtask env id, (3,) ee point, sim frame, m: where the subtask starts so that its skill starts as it
        did in training.

        That is the skill's training start (the KUKA env's hand start: Meta-World's ``hand_init_pos`` or the nearest
        reachable point ahead of it, :func:`legion_sim.kuka_metaworld.start_pose`) plus the set's
        :meth:`workspace_offsets`. Where that point lies outside :data:`HAND_BOX` less :data:`START_MARGIN_M`, it is
        moved into the box and raised to :data:`START_CLEARANCE_M` above the set's highest point: further along the
        skill's way to its object, over the set as the skill is when it arrives (the button set stands 0.37 m nearer
        the robot than Meta-World's, so its start would lie 0.17 m behind the box's near edge; moved, LEGION's skill
        pressed it 10/10 from 0.29 or 0.31 m high, 0/5 from 0.24 m). Where the open gripper there would stand on
        another set (window-close's start over the peg set, faucet-open's over the button set), the start rises
        until the gripper clears it by :data:`START_CLEARANCE_M`. Every start stays below the box's top, and one
        that is not reachable top-down moves along +y until it is, as ``start_pose`` does.
        """
        low, high = HAND_BOX[0] + START_MARGIN_M, HAND_BOX[1] - START_MARGIN_M
        gripper_low, gripper_high = self._gripper_bounds
        starts = {}
        for env_id, offset in self.workspace_offsets().items():
            hand = _metaworld_env(env_id).hand_init_pos
            start = start_pose(tuple(np.round(hand, 6)), self.config)[0] + offset
            inside = np.clip(start, low, high)
            if not np.allclose(inside, start):
                inside[2] = max(inside[2], self._tasks[env_id].boxes(self.data)[1][:, 2].max() + START_CLEARANCE_M)
            for other, task in self._tasks.items():  # the open gripper clears every other set's parts below it
                lows, highs = task.boxes(self.data)
                below = np.all(inside[:2] + gripper_high[:2] > lows[:, :2], axis=1) \
                    & np.all(inside[:2] + gripper_low[:2] < highs[:, :2], axis=1)
                if other != env_id and below.any():
                    inside[2] = max(inside[2], highs[below, 2].max() - gripper_low[2] + START_CLEARANCE_M)
            inside[2] = min(inside[2], high[2])
            starts[env_id] = start_pose(tuple(np.round(inside, 6)), self.config)[0]
        return starts

    def placements(self) -> dict[str, np.ndarray]:
        """Every set's root position at the last reset (anchor + jitter), by env id: (3,), sim frame, m."""
        return {env_id: t.placement.copy() for env_id, t in self._tasks.items()}

    def __enter__(self) -> "TablePlant":
        return self


#: Where a skill is trained (``legion train --layout``): ``"metaworld"``, Meta-World's placements and hand starts (the
#: table then maps each set into that frame, :meth:`TablePlant.workspace_offsets`), or ``"table"``, the table's own.
LAYOUTS = ("metaworld", "table")


@lru_cache(maxsize=None)
def _anchor_starts() -> dict[str, tuple[float, float, float]]:
    plant = TablePlant(seed=0, jitter_m=0.0)
    starts = {env_id: tuple(float(v) for v in start) for env_id, start in plant.skill_starts().items()}
    plant.close()
    return starts


def layout_start(env_id: str) -> np.ndarray:
    """(3,) hand start of ``env_id`` at the table's layout, sim frame, m: its subtask start
    (:meth:`TablePlant.skill_starts`) with every set at its anchor. A skill trained with layout ``"table"`` starts
    every training episode here, and the table starts its subtask here.

    Raises:
        ValueError: ``env_id`` has no set on the table.
    """
    if env_id not in TASKS_BY_ID:
        raise ValueError(f"{env_id!r} has no object set on the table; the table layout has {sorted(TASKS_BY_ID)}")
    return np.array(_anchor_starts()[env_id])


def layout_spaces(env_id: str, reset_low, reset_high, goal_low, goal_high) -> tuple[np.ndarray, ...]:
    """Meta-World's random-reset box of ``env_id`` (``_random_reset_space``: object root position, then the goal's
    where the task draws one) and its goal box (``goal_space``, which also bounds the goal in the observation and
    the reward) moved to the table. The root is uniform in its anchor +-:data:`JITTER_M` (x, y) at the anchor's
    height, as :meth:`TablePlant.reset` places it; a drawn goal keeps its offset from the root's box centre and spreads
    +-2 :data:`JITTER_M` (the table's marker: the root's jitter plus its own); the goal box moves with the root and
    widens by 2 :data:`JITTER_M`; heights unchanged.

    Args:
        env_id: a task of :data:`TABLE_TASKS`.
        reset_low, reset_high: (3,) or (6,) the reset box's corners, sim frame, m.
        goal_low, goal_high: (3,) the goal box's corners, sim frame, m.

    Returns:
        (reset_low, reset_high, goal_low, goal_high), each of its argument's shape.

    Raises:
        ValueError: ``env_id`` has no set on the table, or a box has another length.
    """
    if env_id not in TASKS_BY_ID:
        raise ValueError(f"{env_id!r} has no object set on the table; the table layout has {sorted(TASKS_BY_ID)}")
    low, high = np.asarray(reset_low, dtype=np.float64).copy(), np.asarray(reset_high, dtype=np.float64).copy()
    goal_low, goal_high = np.asarray(goal_low, dtype=np.float64), np.asarray(goal_high, dtype=np.float64)
    if low.shape not in ((3,), (6,)) or high.shape != low.shape or goal_low.shape != (3,) or goal_high.shape != (3,):
        raise ValueError(f"reset box corners must be 3 (object) or 6 (object, goal) long and goal box corners 3, got "
                         f"{low.shape}, {high.shape}, {goal_low.shape}, {goal_high.shape}")
    anchor = np.asarray(TASKS_BY_ID[env_id].anchor, dtype=np.float64)
    shift = np.r_[anchor[:2] - 0.5 * (low[:2] + high[:2]), 0.0]
    spread = np.array([JITTER_M, JITTER_M, 0.0])
    low[:3], high[:3] = np.r_[anchor[:2], anchor[2]] - spread, np.r_[anchor[:2], anchor[2]] + spread
    if low.size == 6:
        centre = 0.5 * (low[3:] + high[3:]) + shift
        low[3:5], high[3:5] = centre[:2] - 2 * spread[:2], centre[:2] + 2 * spread[:2]
    return low, high, goal_low + shift - 2 * spread, goal_high + shift + 2 * spread
