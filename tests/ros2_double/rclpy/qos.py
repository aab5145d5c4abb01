"""Test double of rclpy.qos: the profiles the nodes use, with rclpy's field names and values."""
from dataclasses import dataclass
from enum import Enum


class ReliabilityPolicy(Enum):
    RELIABLE = 1
    BEST_EFFORT = 2


class HistoryPolicy(Enum):
    KEEP_LAST = 1
    KEEP_ALL = 2


class DurabilityPolicy(Enum):
    TRANSIENT_LOCAL = 1
    VOLATILE = 2


@dataclass
class QoSProfile:
    depth: int = 10
    reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE
    history: HistoryPolicy = HistoryPolicy.KEEP_LAST
    durability: DurabilityPolicy = DurabilityPolicy.VOLATILE


# rclpy: qos_profile_sensor_data = best effort, keep last 5, volatile (rmw_qos_profile_sensor_data)
qos_profile_sensor_data = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
