"""control_msgs/action/GripperCommand and ParallelGripperCommand goals, as rclpy generates them.

GripperCommand.Goal: control_msgs/GripperCommand command (float64 position, float64 max_effort).
ParallelGripperCommand.Goal: sensor_msgs/JointState command (name[], position[], velocity[], effort[]).
"""


class _GripperCommandMsg:
    def __init__(self):
        self.position = 0.0
        self.max_effort = 0.0


class _JointStateMsg:
    def __init__(self):
        self.name, self.position, self.velocity, self.effort = [], [], [], []


class GripperCommand:
    ros_type = "control_msgs/action/GripperCommand"

    class Goal:
        def __init__(self):
            self.command = _GripperCommandMsg()

    class Result:
        def __init__(self):
            self.position, self.effort, self.stalled, self.reached_goal = 0.0, 0.0, False, False


class ParallelGripperCommand:
    ros_type = "control_msgs/action/ParallelGripperCommand"

    class Goal:
        def __init__(self):
            self.command = _JointStateMsg()

    class Result:
        def __init__(self):
            self.state, self.stalled, self.reached_goal = _JointStateMsg(), False, False
