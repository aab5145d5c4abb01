"""Test harness for the ROS 2 node files without ROS 2: the rclpy test double on sys.path, node construction
with parameter overrides (as a launch file sets them), and an in-test bus that routes the CDR bytes nodes publish
to the subscriptions with the same topic name. Used by test_ros_nodes.py and test_fault_injection.py."""
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "ros2_double"), str(ROOT / "ros2_ws" / "src" / "legion_nodes")]

import rclpy.node  # noqa: E402  (the test double)
from std_srvs.srv import Trigger  # noqa: E402

from legion_runtime import graph  # noqa: E402
from legion_runtime import messages as m  # noqa: E402

CHECKPOINT = str(ROOT / "models" / "legion-reach-drawer")


def make(key: str, **overrides):
    """Construct the node of graph node ``key`` from its file, with parameter overrides (as a launch file sets)."""
    rclpy.node.PARAMETER_OVERRIDES.clear()
    rclpy.node.PARAMETER_OVERRIDES[key] = overrides
    module = importlib.import_module(f"legion_nodes.{graph.NODES[key].executable}")
    cls = next(v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__
               and issubclass(v, rclpy.node.Node))
    return cls()


def sent(node, key: str) -> list:
    """Messages ``node`` published on graph topic ``key``, deserialized."""
    pub = node._publishers_by_key[key]
    return [m.deserialize(b, graph.TOPICS[key].msgtype) for b in pub.sent]


def deliver(node, key: str, msg) -> None:
    """Hand ``msg`` (rosbags dataclass) to ``node``'s subscription on graph topic ``key``, as CDR bytes."""
    name = node.param(f"topics.{key}")
    subs = [s for s in node.subscriptions_ if s.topic == name]
    assert subs, f"{node.get_name()} does not subscribe to {name}"
    for s in subs:
        s.callback(m.serialize(msg))


class Bus:
    """Routes every published message to the subscriptions with the same topic name (bytes, as DDS would)."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.cursor = {}

    def pump(self) -> int:
        """Deliver everything published since the last pump; returns the number of deliveries."""
        moved = 0
        for node in self.nodes:
            for pub in node.declared_publishers:
                start = self.cursor.get(id(pub), 0)
                for data in pub.sent[start:]:
                    moved += self.route(pub.topic, data)
                self.cursor[id(pub)] = len(pub.sent)
        return moved

    def route(self, topic: str, data: bytes) -> int:
        """Hand one message to every subscription on ``topic``."""
        n = 0
        for node in self.nodes:
            for sub in node.subscriptions_:
                if sub.topic == topic:
                    sub.callback(data)
                    n += 1
        return n


def call(node, service: str):
    srv = next(s for s in node.services_ if s.name == graph.SERVICES[service].name)
    return srv.callback(Trigger.Request(), Trigger.Response())
