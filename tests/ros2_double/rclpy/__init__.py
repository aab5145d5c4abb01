"""Test double of rclpy's module functions (see ../README.md)."""
_ok = False


def init(args=None, context=None, **_options):
    global _ok
    _ok = True


def ok(context=None):
    return _ok


def shutdown(context=None):
    global _ok
    _ok = False


def spin(node, executor=None):
    raise RuntimeError("the rclpy test double cannot spin; call the node's callbacks from the test")


def try_shutdown(context=None):
    shutdown(context)
