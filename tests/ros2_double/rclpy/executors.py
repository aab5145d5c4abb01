"""Test double of rclpy.executors (see ../README.md)."""


class ExternalShutdownException(Exception):
    """rclpy's: the context was shut down from outside (a signal) while spinning."""
