"""Test double of rclpy.action: ActionClient records goals; ActionServer holds its execute callback."""
from __future__ import annotations


class _Future:
    def __init__(self, result=None):
        self._result = result
        self._callbacks = []

    def result(self):
        return self._result

    def done(self) -> bool:
        return True

    def add_done_callback(self, fn) -> None:
        fn(self)


class ActionClient:
    def __init__(self, node, action_type, action_name: str, **kwargs):
        self.action_type, self.action_name = action_type, action_name
        self.goals: list = []
        self.server_ready = True
        node.action_clients.append(self)

    def wait_for_server(self, timeout_sec: float | None = None) -> bool:
        return self.server_ready

    def server_is_ready(self) -> bool:
        return self.server_ready

    def send_goal_async(self, goal, feedback_callback=None):
        self.goals.append(goal)
        return _Future()


class ActionServer:
    def __init__(self, node, action_type, action_name: str, execute_callback, **kwargs):
        self.action_type, self.action_name, self.execute_callback = action_type, action_name, execute_callback
        node.action_servers.append(self)


class ServerGoalHandle:
    """What an execute callback receives: the goal request; ``succeed()`` marks it done."""

    def __init__(self, request):
        self.request = request
        self.status = "executing"

    def succeed(self) -> None:
        self.status = "succeeded"

    def abort(self) -> None:
        self.status = "aborted"
