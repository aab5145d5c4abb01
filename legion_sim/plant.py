"""The simulated plant: KUKA iiwa 14 + Robotiq 2F-85 in a Meta-World v3 task, driven like the real robot.

The plant is driven only through 7 arm joint-position targets and a gripper closing fraction (no
mocap), at 20 Hz: one :meth:`KukaPlant.step` is 50 ms of physics (20 steps of Meta-World's 2.5 ms).
The scene and the task are Meta-World's own: the plant holds the KUKA variant of the task's Meta-World env class
(:mod:`legion_sim.kuka_metaworld`, joint mode, with the virtual RealSense and the task's AprilTags), whose
``reset_model`` places the objects and goal per reset (seeded), whose ``_get_pos_objects``/``_target_pos`` are the
object and goal, and whose ``evaluate_state`` is the success test. The joint-mode training environment
(``MetaWorldTaskEnv(robot="kuka", control="joint")``) is the same model and task code, stepped through Sim2Real and
IK inside the environment; the plant is stepped by joint targets from outside, as the robot is.

Two points of the hand (see :mod:`sim2real.transforms`): the TCP, midpoint of the fingertip pads,
plays Meta-World's ``tcp_center`` (success tests); the ee point, 4.5 cm behind it on the gripper
body, plays the Sawyer's ``hand`` (observation[0:3] and the start posture at ``hand_init_pos``).

Headless rendering needs ``MUJOCO_GL=egl`` set before MuJoCo is first imported; importing any ``legion_sim``
module sets it when there is no display (:mod:`legion_sim.gl`).
"""
from __future__ import annotations

from functools import lru_cache

import mujoco
import numpy as np

from legion_sim.camera import GOAL_MARKER_BODY, VirtualRealSense
from legion_sim.kuka_scene import CAMERA_NAME, GRIPPER_CLOSED_RAD, GRIPPER_PREFIX, PAD_SITES, SceneConfig
from legion_sim.metaworld_env import PAPER_TASKS, MetaWorldTaskEnv
from sim2real.kinematics import (
    GRIPPER_TCP_DEPTH_M, JOINT_LIMITS_RAD, JOINT_NAMES, TOP_DOWN_ROT, ArmKinematics,
)
from sim2real.transforms import METAWORLD_EE_OFFSET_M, FrameTransform

CONTROL_DT = 0.05  # s, 20 Hz
#: Start configuration for the reset IK (elbow up, flange down, arm pointing along +y of the base).
Q_NOMINAL = np.deg2rad([90.0, 30.0, 0.0, -90.0, 0.0, 60.0, 0.0])


@lru_cache(maxsize=None)
def _metaworld_env(task: str):
    """One instance of Meta-World's env class for ``task``: the source of its XML, spaces and constants."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS  # noqa: PLC0415 (slow import, only when needed)

    return ALL_V3_ENVIRONMENTS[task]()


#: Tasks the plant runs: the paper's ten Meta-World v3 tasks (``legion_sim.metaworld_env.PAPER_TASKS``).
TASKS = PAPER_TASKS


class _MetaWorldTask:
    """Meta-World's own task code on the plant's scene: placement (``reset_model``), object point
    (``_get_pos_objects``), quaternion (``_get_quat_objects``), goal (``_target_pos``) and success (``evaluate_state``)
    of the KUKA variant of the task's env class (:mod:`legion_sim.kuka_metaworld`)."""

    def __init__(self, env):
        self.env = env
        self.hand_init_pos = np.asarray(env.hand_init_pos, dtype=np.float64).copy()

    @property
    def goal(self) -> np.ndarray:
        return np.asarray(self.env._target_pos, dtype=np.float64)

    def reset(self, seed: int) -> None:
        """Meta-World's reset with its placement stream seeded by ``seed``: objects placed, arm at the start pose."""
        self.env.seed(seed)
        self.env.reset()

    def object_position(self, data: mujoco.MjData) -> np.ndarray:
        return np.asarray(self.env._get_pos_objects(), dtype=np.float64)[:3].copy()

    def quaternion(self, data: mujoco.MjData) -> np.ndarray:
        return np.asarray(self.env._get_quat_objects(), dtype=np.float64)[:4].copy()

    def evaluate(self, action: np.ndarray) -> tuple[float, bool]:
        reward, info = self.env.evaluate_state(self.env._get_obs(), np.asarray(action, dtype=np.float64))
        return float(reward), bool(info["success"])

    def success(self, data: mujoco.MjData, tcp: np.ndarray) -> bool:
        return self.evaluate(np.zeros(4))[1]


class KukaPlant:
    """MuJoCo KUKA iiwa 14 + Robotiq 2F-85 in a Meta-World v3 task (sim frame = Meta-World's world frame).

    Args:
        task: one of :data:`TASKS`, the paper's ten Meta-World v3 tasks (``"reach-v3"``, ``"push-v3"``, ...).
        seed: seed of the placement RNG (``numpy.random.default_rng``, which seeds Meta-World's placement stream at
            every reset); None draws fresh entropy.
        render: create the renderer now (fails fast without a GL backend); :meth:`render` works either way.
        config: robot placement and servo gains (default: base at (0, 0.1, 0), axes aligned).
        ee_offset_m: the policy's ee point behind the TCP along the approach axis, m (default: Meta-World's
            hand, 0.045; see :mod:`sim2real.transforms`).

    Attributes:
        joint_names: the 7 arm joint names (URDF ``lbr_iiwa_joint_1..7`` = driver A1..A7).
        dt: control period, 0.05 s.
        frame: T_sim<-base of this scene, for :class:`sim2real.transforms.Sim2Real`/``Real2Sim``.
        ee_offset_m: as the argument.
        model, data: the MuJoCo model and data (read-only use, please).

    Raises:
        ValueError: unknown task (the message lists the ten).
    """

    def __init__(self, task: str = "reach-v3", seed: int | None = None, render: bool = False,
                 config: SceneConfig | None = None, ee_offset_m: float = METAWORLD_EE_OFFSET_M,
                 layout: str = "metaworld"):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; the KUKA plant runs the paper's ten tasks: {', '.join(TASKS)}")
        self.task = task
        config = config or SceneConfig()
        # Meta-World's env class of the task with the KUKA and the perception rig: its model is this plant's
        # scene, its task code places the objects and tests success; its step() is never called.
        self._gym = MetaWorldTaskEnv(task, robot="kuka", control="joint", layout=layout,
                                     kuka_options={"scene_config": config, "perception_rig": task})
        self.layout = layout
        env = self._gym.unwrapped_metaworld
        self._bind(env.model, env.data, config, ee_offset_m, seed)
        self._task = _MetaWorldTask(env)
        if render:
            self._renderer(320, 240)
        self.reset()

    def _bind(self, model: mujoco.MjModel, data: mujoco.MjData, config: SceneConfig, ee_offset_m: float,
              seed: int | None) -> None:
        """Take a compiled scene of :func:`build_kuka_scene` and its data: robot indices, RNG, kinematics, no
        renderer yet (shared with :class:`legion_sim.table_scene.TablePlant`)."""
        self.config = config
        self.frame = FrameTransform.from_pos_quat(config.base_pos, config.base_quat)
        self.model, self.data = model, data
        self.joint_names = list(JOINT_NAMES)
        self.dt = CONTROL_DT
        self.ee_offset_m = float(ee_offset_m)
        self.n_substeps = int(round(CONTROL_DT / self.model.opt.timestep))
        self._qadr = np.array([self.model.jnt_qposadr[self.model.joint(n).id] for n in JOINT_NAMES])
        self._dadr = np.array([self.model.jnt_dofadr[self.model.joint(n).id] for n in JOINT_NAMES])
        gripper = config.gripper_model
        self._grip_qadr = self.model.jnt_qposadr[self.model.joint(GRIPPER_PREFIX + gripper.knuckle_joint).id]
        self._pads = [self.model.site(n).id for n in PAD_SITES]
        # every collision geom of the two fingertip pads (contacts with a grasped object); Meta-World's scene renamed
        # one per side (legion_sim.kuka_metaworld)
        names = [GRIPPER_PREFIX + g for side in gripper.pad_geoms for g in side] + ["leftpad_geom", "rightpad_geom"]
        ids = (mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in names)
        self.gripper_pad_geoms = [i for i in ids if i >= 0]
        self._hand = self.model.body(GRIPPER_PREFIX + "robotiq_85_adapter_link").id
        marker = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, GOAL_MARKER_BODY)
        self._goal_marker = int(self.model.body_mocapid[marker]) if marker >= 0 else None
        self._camera: VirtualRealSense | None = None
        self._kinematics = ArmKinematics()
        self._rng = np.random.default_rng(seed)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._prev_obs18: np.ndarray | None = None

    # ----------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """New episode: objects and goal placed by Meta-World's ``reset_model`` (seeded), arm at the start posture.

        The start posture puts the ee point (Meta-World's hand) at the task's ``hand_init_pos`` (or the nearest
        reachable point ahead of it, :func:`legion_sim.kuka_metaworld.start_pose`), top-down, by IK from
        :data:`Q_NOMINAL`; the gripper is open and the arm at rest.

        Args:
            seed: reseed the placement RNG first (None: continue the current stream).

        Raises:
            RuntimeError: the start pose is not reachable from this arm base pose.
        """
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._task.reset(int(self._rng.integers(2**31)))
        self.data.time = 0.0  # the episode starts now; Meta-World's settling of the objects came before
        if self._goal_marker is not None:
            self.data.mocap_pos[self._goal_marker] = self._task.goal
        self.rest_at(self._task.hand_init_pos)

    def rest_at(self, hand_init_pos: np.ndarray) -> None:
        """Arm at rest with the ee point at ``hand_init_pos`` (sim frame, m), top-down, by IK from
        :data:`Q_NOMINAL`; gripper open. Raises RuntimeError when that pose is not reachable."""
        rot = self.frame.rotation_to_base(TOP_DOWN_ROT)
        tcp = self.frame.to_base(hand_init_pos) + self.ee_offset_m * rot[:, 2]
        start = self._kinematics.solve_ik(tcp, Q_NOMINAL, rot, max_iterations=300)
        if not start.converged:
            raise RuntimeError(f"start hand {hand_init_pos} (sim) is not reachable top-down from the arm "
                               f"base at {self.config.base_pos}: IK error {start.pos_error_m:.4f} m")
        self.data.qpos[self._qadr] = start.q
        self.data.qvel[self._dadr] = 0.0
        self.data.ctrl[:7] = start.q
        self.data.ctrl[7] = 0.0
        mujoco.mj_forward(self.model, self.data)
        self._prev_obs18 = self._obs18()

    def step(self, q_target: np.ndarray, gripper: float) -> None:
        """Advance 0.05 s with joint position targets and a gripper command.

        Args:
            q_target: (7,) arm joint targets, rad, within the position limits.
            gripper: closing fraction in [0, 1] (0 open, 1 closed), mapped linearly to the knuckle
                target 0 .. 0.7929 rad.

        Raises:
            ValueError: q_target not 7 finite numbers or outside the joint limits (the real driver's
                command guard rejects those too), gripper not a finite number in [0, 1].
            RuntimeError: the physics diverged.
        """
        q = np.asarray(q_target, dtype=np.float64).reshape(-1)
        if q.shape != (7,) or not np.all(np.isfinite(q)):
            raise ValueError(f"q_target must be 7 finite joint positions in rad, got {q_target!r}")
        if np.any(np.abs(q) > JOINT_LIMITS_RAD + 1e-9):
            raise ValueError(f"q_target {np.rad2deg(q).round(2)} deg exceeds the iiwa 14 limits "
                             f"+-{np.rad2deg(JOINT_LIMITS_RAD).round(0)} deg")
        g = float(gripper)
        if not (np.isfinite(g) and 0.0 <= g <= 1.0):
            raise ValueError(f"gripper must be a closing fraction in [0, 1], got {gripper!r}")
        self._prev_obs18 = self._obs18()
        self.data.ctrl[:7] = q
        self.data.ctrl[7] = g * GRIPPER_CLOSED_RAD
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        if self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number > 0 or not np.all(np.isfinite(self.data.qpos)):
            raise RuntimeError("physics diverged (bad joint accelerations); reset() the plant")

    # ----------------------------------------------------------------------------------------------
    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Arm joint positions q (7,) rad and velocities qd (7,) rad/s, A1..A7."""
        return self.data.qpos[self._qadr].copy(), self.data.qvel[self._dadr].copy()

    def gripper_position(self) -> float:
        """Knuckle joint position, rad (0 open .. ~0.79 closed), as the 2F-85 driver reports it."""
        return float(self.data.qpos[self._grip_qadr])

    def object_position(self) -> np.ndarray:
        """(3,) task object position in the sim frame, m (Meta-World's ``_get_pos_objects``)."""
        return np.asarray(self._task.object_position(self.data), dtype=np.float64)

    def goal_position(self) -> np.ndarray:
        """(3,) goal position in the sim frame, m (Meta-World's ``_target_pos``)."""
        return self._task.goal.copy()

    def tcp_position(self) -> np.ndarray:
        """(3,) ground-truth TCP in the sim frame, m: the tool point fixed on the gripper body at the
        closed-gripper fingertip midpoint (the usual fixed-TCP convention; FK's ``tcp`` site).

        Meta-World's ``tcp_center`` stays 4.5 cm below the Sawyer's hand at any opening, because its pads
        slide sideways; the 2F-85's pads rise up to 1.4 cm as they open (:meth:`pad_midpoint`). A fixed
        TCP keeps Meta-World's hand → TCP geometry, and so its success tests, whatever the opening.
        """
        return self.data.xpos[self._hand] + GRIPPER_TCP_DEPTH_M * self.data.xmat[self._hand].reshape(3, 3)[:, 2]

    def pad_midpoint(self) -> np.ndarray:
        """(3,) midpoint of the two fingertip pads in the sim frame, m (moves with the opening)."""
        return 0.5 * (self.data.site_xpos[self._pads[0]] + self.data.site_xpos[self._pads[1]])

    def ee_position(self) -> np.ndarray:
        """(3,) ground-truth ee point in the sim frame, m: fixed on the gripper body, ``ee_offset_m`` behind
        the closed-gripper TCP along the approach axis (rigid, like the Sawyer's ``hand``; equals
        ``Real2Sim.ee_position`` of the measured joints)."""
        depth = GRIPPER_TCP_DEPTH_M - self.ee_offset_m
        return self.data.xpos[self._hand] + depth * self.data.xmat[self._hand].reshape(3, 3)[:, 2]

    def success(self) -> bool:
        """Meta-World's success test of the task, on the current state."""
        return self._task.success(self.data, self.tcp_position())

    def evaluate(self, action: np.ndarray) -> tuple[float, bool]:
        """(reward, success): Meta-World's ``evaluate_state`` of the task on the current state and the 4-d ``action``
        that led to it (``reward_function_version`` v2, reward 0..10; some rewards score the gripper command), as its
        training environment gives them."""
        return self._task.evaluate(action)

    def metaworld_observation(self) -> np.ndarray:
        """(39,) Meta-World v3 observation built from the plant, for Meta-World's scripted policies.

        [0:3] ee point (the Sawyer's hand), [3] pad distance / 0.1 clipped to [0, 1], [4:7] object,
        [7:11] object quaternion (x, y, z, w; zeros for the drawer, as Meta-World), [11:18] zeros,
        [18:36] the same 18 values one step earlier, [36:39] goal.
        """
        return np.concatenate([self._obs18(), self._prev_obs18, self.goal_position()])

    def _obs18(self) -> np.ndarray:
        obs = np.zeros(18)
        obs[0:3] = self.ee_position()
        pads = self.data.site_xpos[self._pads]
        obs[3] = np.clip(np.linalg.norm(pads[0] - pads[1]) / 0.1, 0.0, 1.0)
        obs[4:7] = self.object_position()
        obs[7:11] = self._task.quaternion(self.data)
        return obs

    # ----------------------------------------------------------------------------------------------
    def _renderer(self, width: int, height: int) -> mujoco.Renderer:
        key = (width, height)
        if key not in self._renderers:
            try:
                self._renderers[key] = mujoco.Renderer(self.model, height=height, width=width)
            except Exception as exc:  # noqa: BLE001 - GL back-ends raise assorted types
                raise RuntimeError(f"cannot create a MuJoCo renderer ({exc}); headless machines need "
                                   "MUJOCO_GL=egl set before mujoco is first imported") from exc
        return self._renderers[key]

    def render(self, width: int = 320, height: int = 240) -> np.ndarray:
        """RGB image (height, width, 3) uint8 from the fixed camera ``kuka_view``, upright.

        Raises:
            ValueError: size not in 16..1280 x 16..960 pixels.
            RuntimeError: no GL back-end (see the module docstring).
        """
        if not (isinstance(width, (int, np.integer)) and isinstance(height, (int, np.integer))
                and 16 <= width <= 1280 and 16 <= height <= 960):
            raise ValueError(f"render size must be integers within 16..1280 x 16..960 pixels, got {width}x{height}")
        renderer = self._renderer(int(width), int(height))
        renderer.update_scene(self.data, camera=CAMERA_NAME)
        return renderer.render().copy()

    def camera(self) -> VirtualRealSense:
        """The virtual RealSense at the table edge (640 x 480 colour stream, D435 intrinsics)."""
        if self._camera is None:
            self._camera = VirtualRealSense(self.model, self.data)
        return self._camera

    def close(self) -> None:
        """Free the renderers' GL contexts (do it before exit: EGL may be torn down before the GC runs)."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        if self._camera is not None:
            self._camera.close()

    def __enter__(self) -> "KukaPlant":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
