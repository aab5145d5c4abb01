"""rclpy nodes of the LEGION deployment: thin shells over legion_policy/, legion_language/, sim2real/ and legion_runtime/."""
