"""rclpy nodes of the LEGION deployment: thin shells over legion_policy/, sim2real/ and legion_runtime/."""
