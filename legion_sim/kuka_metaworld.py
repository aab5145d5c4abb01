"""KUKA Meta-World: Meta-World v3's own task classes with the iiwa 14 + Robotiq 2F-85 in place of the Sawyer.

:func:`kuka_env_class` derives, from a Meta-World v3 env class (e.g. ``SawyerReachEnvV3``), a class whose
MuJoCo model is :func:`legion_sim.kuka_scene.build_kuka_scene` of the same task XML. Everything else is
Meta-World's code, unchanged: object placement (``reset_model``), observation (39-d), rewards and success
tests (``evaluate_state``), action scale (1 cm per unit per step) and bounds. To make that possible the KUKA
carries the names Meta-World's code reads:

* body ``hand``: the ee point (4.5 cm behind the TCP, as the Sawyer's hand behind its ``tcp_center``),
  oriented so that Meta-World's mocap orientation (quaternion (1, 0, 1, 0)) is the top-down grasp;
* sites ``rightEndEffector``/``leftEndEffector`` at the fixed TCP (their midpoint is ``tcp_center``);
* bodies ``leftclaw``/``rightclaw``/``leftpad``/``rightpad`` at the fingertip pads' centres (left = +y, as on the
  Sawyer) and a pad geom per side renamed ``leftpad_geom``/``rightpad_geom`` (grasp tests use their contacts);
* the Sawyer's 9 joints kept as an inert placeholder so ``qpos[9:]`` is still the first object.

Two control modes (``control``):

* ``"mocap"`` (training speed, as Meta-World): a weld pulls ``hand`` to the mocap body that the action moves;
  the arm joints are passive (damped, gravity-compensated), 12.5 ms per step (Meta-World's ``frame_skip`` 5).
* ``"joint"`` (as deployed): no weld; the action goes through :class:`sim2real.transforms.Sim2Real`
  (accumulated target, Meta-World's mocap bounds) and damped-least-squares IK to the 7 joint position servos,
  50 ms per step (the robot's 20 Hz; ``control_dt`` changes it).

The gripper action sets the 2F-85 knuckle target as Meta-World's Sawyer fingers respond to it: open for a <= 0,
closed from a = 0.04 (:func:`sim2real.transforms.gripper_fraction`).
"""
from __future__ import annotations

from functools import lru_cache

import mujoco
import numpy as np

from legion_sim.camera import add_perception_rig
from legion_sim.kuka_scene import (
    GRIPPER_CLOSED_RAD, GRIPPER_PREFIX, SceneConfig, build_kuka_scene,
)
from sim2real.kinematics import GRIPPER_TCP_DEPTH_M, JOINT_NAMES, TOP_DOWN_ROT, ArmKinematics
from sim2real.transforms import METAWORLD_EE_OFFSET_M, FrameTransform, Sim2Real, gripper_fraction

#: Control modes of the KUKA Meta-World environments.
CONTROL_MODES = ("mocap", "joint")
#: Meta-World's physics step (2.5 ms) times its frame_skip (5): one mocap-mode step, s.
METAWORLD_STEP_S = 0.0125
#: One joint-mode step: the deployed control period (20 Hz), s.
JOINT_STEP_S = 0.05
#: Adapter frame -> Meta-World ``hand`` frame: hand x = approach (adapter z), hand y = finger axis (adapter y).
#: With the top-down adapter orientation this makes Meta-World's mocap quaternion (1, 0, 1, 0) the grasp pose.
_HAND_QUAT_IN_ADAPTER = np.array([np.sqrt(0.5), 0.0, -np.sqrt(0.5), 0.0])
#: Start configuration for the reset IK (elbow up, flange down), rad.
_Q_NOMINAL = np.deg2rad([90.0, 30.0, 0.0, -90.0, 0.0, 60.0, 0.0])


def build_kuka_metaworld_spec(task_xml: str, config: SceneConfig = SceneConfig(),
                              ee_offset_m: float = METAWORLD_EE_OFFSET_M) -> mujoco.MjSpec:
    """The KUKA scene of a Meta-World task XML with the Sawyer's names for Meta-World's code (module docstring).

    Args:
        task_xml: a Meta-World v3 task XML (an env's ``model_name``).
        config: robot placement and gains.
        ee_offset_m: ``hand`` behind the TCP along the approach axis, m.

    Returns:
        An uncompiled spec with a ``mocap`` body welded to ``hand`` (weld ``mocap_weld``).
    """
    spec = build_kuka_scene(task_xml, config, keep_qpos_layout=True)
    adapter = spec.body(GRIPPER_PREFIX + "robotiq_85_adapter_link")
    hand = adapter.add_body(name="hand", pos=[0.0, 0.0, GRIPPER_TCP_DEPTH_M - ee_offset_m],
                            quat=list(_HAND_QUAT_IN_ADAPTER))
    for name in ("rightEndEffector", "leftEndEffector"):  # the fixed TCP, ee_offset_m along the hand's x axis
        hand.add_site(name=name, pos=[ee_offset_m, 0.0, 0.0], size=[0.005] * 3, rgba=[1, 0, 0, 0])
    # the pad on the hand's +y side is Meta-World's left (+y) at the grasp pose
    gripper = config.gripper_model
    for side, metaworld_side in enumerate(("left", "right")):
        finger = spec.body(GRIPPER_PREFIX + gripper.pad_bodies[side])
        for body in (metaworld_side + "claw", metaworld_side + "pad"):
            finger.add_body(name=body, pos=list(gripper.pad_centres[side]))
        spec.geom(GRIPPER_PREFIX + gripper.pad_geoms[side][0]).name = metaworld_side + "pad_geom"
    spec.add_equality(type=mujoco.mjtEq.mjEQ_WELD, name="mocap_weld", name1="mocap", name2="hand",
                      objtype=mujoco.mjtObj.mjOBJ_BODY, solref=[0.02, 1.0])
    return spec


class _KukaArm:
    """Mixin that puts the KUKA into a Meta-World v3 task class (see :func:`kuka_env_class`)."""

    def __init__(self, *args, control: str = "mocap", scene_config: SceneConfig | None = None,
                 control_dt: float | None = None, perception_rig: str | None = None, **kwargs):
        if control not in CONTROL_MODES:
            raise ValueError(f"control must be one of {CONTROL_MODES}, got {control!r}")
        self.control = control
        self.perception_rig = perception_rig
        self.scene_config = scene_config or SceneConfig()
        super().__init__(*args, **kwargs)
        m = self.model
        self._arm_qpos = np.array([m.jnt_qposadr[m.joint(n).id] for n in JOINT_NAMES])
        self._arm_dof = np.array([m.jnt_dofadr[m.joint(n).id] for n in JOINT_NAMES])
        self._arm_act = np.array([m.actuator(n + "_servo").id for n in JOINT_NAMES])
        self._grip_act = m.actuator("gripper_servo").id
        self._weld = m.equality("mocap_weld").id
        self._frame = FrameTransform.from_pos_quat(self.scene_config.base_pos, self.scene_config.base_quat)
        self._kinematics = ArmKinematics()
        self._sim2real: Sim2Real | None = None
        self._command = None
        # Meta-World's start hand, or the nearest reachable point ahead of it (start_pose)
        self.metaworld_hand_init_pos = np.asarray(self.hand_init_pos, dtype=np.float64).copy()
        self.hand_init_pos = start_pose(tuple(np.round(self.metaworld_hand_init_pos, 6)), self.scene_config)[0]
        if control == "mocap":
            m.actuator_gainprm[self._arm_act, 0] = 0.0  # passive arm, pulled by the weld
            m.actuator_biasprm[self._arm_act, :3] = 0.0
        else:
            m.eq_active0[self._weld] = 0
            self.data.eq_active[self._weld] = 0
            self._sim2real = Sim2Real(self._frame, workspace_low_sim=self.mocap_low, workspace_high_sim=self.mocap_high,
                                      kinematics=self._kinematics)
        step = control_dt if control_dt is not None else (METAWORLD_STEP_S if control == "mocap" else JOINT_STEP_S)
        self.frame_skip = int(round(step / m.opt.timestep))
        if self.frame_skip < 1 or abs(self.frame_skip * m.opt.timestep - step) > 1e-9:
            raise ValueError(f"control_dt must be a positive multiple of the physics step {m.opt.timestep} s, got {step}")

    # -- model ------------------------------------------------------------------------------------
    def _initialize_simulation(self):
        spec = build_kuka_metaworld_spec(self.fullpath, self.scene_config)
        if self.perception_rig is not None:  # the virtual RealSense and the task's tags (legion_sim.camera)
            add_perception_rig(spec, self.perception_rig, GRIPPER_PREFIX + "robotiq_85_adapter_link")
        model = spec.compile()
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    # -- actuation (Meta-World calls these) --------------------------------------------------------
    def set_xyz_action(self, action) -> None:
        """Mocap: Meta-World's (move the mocap). Joint: advance the Sim2Real target (the mocap body shows it)."""
        if self.control == "mocap":
            return super().set_xyz_action(action)
        self._command = self._sim2real.command(np.r_[np.asarray(action, dtype=np.float64)[:3], -1.0], stamp=0.0)
        self.data.mocap_pos[0] = self._sim2real.target_sim

    def do_simulation(self, ctrl, n_frames) -> None:
        """Meta-World's Sawyer finger commands ``[a, -a]`` -> 2F-85 knuckle target; joint mode adds IK targets."""
        grip = gripper_fraction(np.asarray(ctrl, dtype=np.float64).reshape(-1)[0])
        self.data.ctrl[self._grip_act] = grip * GRIPPER_CLOSED_RAD
        if self.control == "joint" and self._command is not None:
            q = self.data.qpos[self._arm_qpos]
            self.data.ctrl[self._arm_act] = self._sim2real.joint_targets(self._command, q).q
            self._command = None
        mujoco.mj_step(self.model, self.data, nstep=n_frames)
        mujoco.mj_rnePostConstraint(self.model, self.data)

    def _reset_hand(self, steps: int = 50) -> None:
        """Arm at ``hand_init_pos`` top-down by IK, gripper open, then Meta-World's settling time (steps x 12.5 ms)."""
        q = start_pose(tuple(np.round(self.hand_init_pos, 6)), self.scene_config)[1]
        self.data.qpos[self._arm_qpos] = q
        self.data.qvel[self._arm_dof] = 0.0
        self.data.ctrl[self._arm_act] = q
        self.data.mocap_pos[0] = self.hand_init_pos
        self.data.mocap_quat[0] = np.array([1.0, 0.0, 1.0, 0.0])
        self.data.ctrl[self._grip_act] = 0.0
        mujoco.mj_forward(self.model, self.data)
        mujoco.mj_step(self.model, self.data, nstep=steps * 5)
        self.init_tcp = self.tcp_center
        if self._sim2real is not None:
            self._sim2real.reset(self.tcp_center)
            self._command = None

    # -- robot state -------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        """(7,) arm joint positions A1..A7, rad."""
        return self.data.qpos[self._arm_qpos].copy()


@lru_cache(maxsize=None)
def start_pose(hand_pos: tuple[float, float, float], config: SceneConfig = SceneConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Start hand position and joints: Meta-World's ``hand_init_pos``, or the nearest reachable point ahead of it.

    Four tasks (faucet-open, button-press-topdown, window-open/close) start the Sawyer's hand at y = 0.4 m,
    0.3 m in front of the iiwa's base: top-down there needs joint 4 past its limit. Those start 1 cm steps
    further along +y (away from the base), at the first point IK reaches (0.55 m for the default base).

    Args:
        hand_pos: Meta-World's ``hand_init_pos`` (sim frame, m).
        config: robot placement.

    Returns:
        ((3,) hand start in the sim frame, m; (7,) joints, rad).

    Raises:
        RuntimeError: nothing within 0.3 m ahead is reachable from the configured base.
    """
    frame = FrameTransform.from_pos_quat(config.base_pos, config.base_quat)
    rot = frame.rotation_to_base(TOP_DOWN_ROT)
    kinematics = ArmKinematics()
    for dy in np.arange(0.0, 0.301, 0.01):
        hand = np.asarray(hand_pos, dtype=np.float64) + [0.0, dy, 0.0]
        ik = kinematics.solve_ik(frame.to_base(hand) + METAWORLD_EE_OFFSET_M * rot[:, 2], _Q_NOMINAL, rot,
                                 max_iterations=300)
        if ik.converged:
            return hand, ik.q
    raise RuntimeError(f"Meta-World's start hand {hand_pos} (sim) and 0.3 m ahead of it are not reachable top-down "
                       f"from the arm base at {config.base_pos}")


@lru_cache(maxsize=None)
def kuka_env_class(metaworld_class: type) -> type:
    """The KUKA variant of a Meta-World v3 env class (same constructor, plus ``control``, ``scene_config``,
    ``control_dt`` and ``perception_rig`` keyword arguments); e.g. ``kuka_env_class(SawyerReachEnvV3)(control="joint")``.

    ``perception_rig``: a Meta-World task name whose AprilTags, virtual RealSense and calibration tag
    (:func:`legion_sim.camera.add_perception_rig`) are added to the scene; None (default): none."""
    name = metaworld_class.__name__.replace("Sawyer", "Kuka", 1)
    return type(name, (_KukaArm, metaworld_class), {"__doc__": f"{metaworld_class.__name__} with the KUKA iiwa 14 "
                                                                 "+ Robotiq 2F-85 (legion_sim.kuka_metaworld)."})
