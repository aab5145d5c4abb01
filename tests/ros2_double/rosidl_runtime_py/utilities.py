"""Test double of rosidl_runtime_py.utilities.get_message: a marker class named after the ROS type."""
_CLASSES: dict[str, type] = {}


def get_message(identifier: str) -> type:
    parts = identifier.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        raise ValueError(f"'{identifier}' is not a message type (expected pkg/msg/Name)")
    if identifier not in _CLASSES:
        _CLASSES[identifier] = type(parts[2], (), {"ros_type": identifier})
    return _CLASSES[identifier]
