"""std_srvs/srv/Trigger (request: empty; response: bool success, string message), as rclpy generates it."""


class Trigger:
    ros_type = "std_srvs/srv/Trigger"

    class Request:
        pass

    class Response:
        def __init__(self, success: bool = False, message: str = ""):
            self.success, self.message = success, message
