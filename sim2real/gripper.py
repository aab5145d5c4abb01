"""The Robotiq 2F-85's opening from its joint state: knuckle angle (rad) -> distance between the fingertip pads (m).

The 2F-85 driver (PickNikRobotics/ros2_robotiq_gripper) reports one joint, ``robotiq_85_left_knuckle_joint``, 0 rad
open .. 0.7929 rad closed; the observation's gripper opening (:func:`sim2real.observation.gripper_opening`) is the
pads' distance, Meta-World's obs[3]. The linkage maps one to the other. :data:`KNUCKLE_TO_PAD_DISTANCE` was measured
on the default simulated gripper (MuJoCo Menagerie's ``robotiq_2f85``, :mod:`legion_sim.kuka_scene`), the knuckle
servoed to 17 angles without contact: the pads' distance falls from 93.2 mm to 6.8 mm, nearly linearly (-0.109 m/rad).
Against the pads' measured distance while a puck is grasped the map is off by at most 0.9 mm (the fingertips' give);
``tests/test_transforms.py`` re-measures both on the real scene.
"""
from __future__ import annotations

import numpy as np

#: The 2F-85 driver's joint (ros2_robotiq_gripper): its joint states and ParallelGripperCommand goals name it.
KNUCKLE_JOINT = "robotiq_85_left_knuckle_joint"
#: (knuckle rad, pad distance m) of the Menagerie 2F-85 (module docstring), knuckle increasing.
KNUCKLE_TO_PAD_DISTANCE = np.array([
    (0.0026, 0.09316), (0.0524, 0.08859), (0.1024, 0.08383), (0.1523, 0.07892), (0.2023, 0.07385),
    (0.2522, 0.06864), (0.3022, 0.06331), (0.3521, 0.05787), (0.4021, 0.05232), (0.4520, 0.04669),
    (0.5020, 0.04098), (0.5519, 0.03521), (0.6019, 0.02939), (0.6518, 0.02354), (0.7018, 0.01767),
    (0.7517, 0.01179), (0.7946, 0.00675)])
#: The knuckle's joint limits, rad (the driver's URDF: 0 .. 0.8); a reading outside is a sensor fault.
KNUCKLE_LIMITS_RAD = (0.0, 0.8)
#: Readings this far outside the limits still count as at the limit (encoder noise), rad.
KNUCKLE_TOLERANCE_RAD = 0.02


def pad_distance(knuckle_rad: float) -> float:
    """Distance between the 2F-85's fingertip pads, m, at a knuckle angle, rad (linear interpolation of
    :data:`KNUCKLE_TO_PAD_DISTANCE`, held constant past its ends).

    Raises:
        ValueError: the angle is not finite or lies outside the joint's 0 .. 0.8 rad by more than
            :data:`KNUCKLE_TOLERANCE_RAD` (a joint state that is not the 2F-85's knuckle, or a sensor fault).
    """
    k = float(knuckle_rad)
    low, high = KNUCKLE_LIMITS_RAD
    if not np.isfinite(k) or not low - KNUCKLE_TOLERANCE_RAD <= k <= high + KNUCKLE_TOLERANCE_RAD:
        raise ValueError(f"2F-85 knuckle position must be a finite angle in [{low}, {high}] rad "
                         f"(robotiq_85_left_knuckle_joint: 0 open, 0.7929 closed), got {knuckle_rad!r}")
    return float(np.interp(k, KNUCKLE_TO_PAD_DISTANCE[:, 0], KNUCKLE_TO_PAD_DISTANCE[:, 1]))
