"""Test double of rclpy.signals (see ../README.md)."""
import enum


class SignalHandlerOptions(enum.Enum):
    NO = 0
    SIGINT = 1
    SIGTERM = 2
    ALL = 3
