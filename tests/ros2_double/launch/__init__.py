"""Test double of ROS 2 `launch`: records the entities a launch file returns (see ../README.md)."""


class LaunchDescription:
    def __init__(self, entities=None):
        self.entities = list(entities or [])
