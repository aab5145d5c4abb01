"""Arm-driver adapters: what differs between the ROS 2 drivers of the iiwa 14 (../shared/docs/robot.md).

Both drivers take joint targets on a ros2_controllers joint_trajectory_controller topic
(trajectory_msgs/msg/JointTrajectory), which interpolates up to the controller rate; they differ in
joint names and topics (and controller rate: 100 Hz and 225 Hz, which the controllers handle). The topic is a parameter of the safety node (``topics.joint_targets``),
set per driver by ``launch/config/<driver>.yaml``; the joint names come from here.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DriverAdapter:
    """One arm driver: ``joint_names`` A1..A7, its trajectory-controller topic and its joint-state topic."""

    name: str
    joint_names: tuple[str, ...]
    joint_trajectory_topic: str
    joint_states_topic: str


DRIVERS: dict[str, DriverAdapter] = {d.name: d for d in (
    DriverAdapter("lbr_fri_ros2_stack", tuple(f"lbr_A{i}" for i in range(1, 8)),
                  "/lbr/joint_trajectory_controller/joint_trajectory", "/lbr/joint_states"),  # controller at 100 Hz
    DriverAdapter("iiwa_ros2", tuple(f"joint_a{i}" for i in range(1, 8)),
                  "/iiwa_arm_controller/joint_trajectory", "/joint_states"),  # controller at 225 Hz
)}


def driver(name: str) -> DriverAdapter:
    """The adapter called ``name``. Raises ValueError listing the known drivers."""
    if name not in DRIVERS:
        raise ValueError(f"unknown arm driver {name!r}; known: {sorted(DRIVERS)}")
    return DRIVERS[name]
