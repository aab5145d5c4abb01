"""Test harness for the node files of ros2_ws/src/legion_nodes on the real rclpy (ROS 2 Jazzy, Cyclone DDS).

:class:`Graph` is one rclpy context per test: the nodes under test, built from their files with parameter overrides
(as a launch file sets them), and a harness node ``legion_test_harness`` that publishes what a test delivers, calls
services, serves or calls actions, reads ``/rosout`` and publishes ``/clock``. Every message crosses real DDS.

* Time is ROS time: every node runs with ``use_sim_time`` and :meth:`Graph.set_time` publishes ``/clock``, so
  timers fire when their period of ROS time has passed, as they do under a simulator (no timer is called by hand).
* Each node has its own executor, and :meth:`Graph.pump` runs them in the order the nodes were made (the
  pipeline order of a test: plant, perception, real2sim, policy, ...) until nothing is left to run. Cyclone DDS
  hands a message to the readers of the same process while ``publish`` runs, so "nothing ready in any executor"
  (and no virtual camera frame rendering) means every message of the cycle has been handled.
* :meth:`Graph.sent` is what a node published, recorded at its publishers (the bytes it handed to rclpy, in order).

Run inside ``../shared/ros2/loopback.sh`` (scripts/test.sh does): DDS must not reach the network. Without ROS 2 the
tests that need it are skipped, with one reason (:func:`require`, :data:`NO_ROS`).
"""
from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from legion_runtime import graph
from legion_runtime import messages as m

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ros2_ws" / "src" / "legion_nodes"))  # the node package, as colcon installs it

CHECKPOINT = str(ROOT / "models" / "legion-reach-drawer")
NO_ROS = ("no ROS 2 Jazzy here (rclpy, launch): run under ../shared/ros2/loopback.sh with a prefix built by "
          "../shared/ros2/build.sh (scripts/test.sh does), or with a ROS 2 Jazzy sourced")
#: parameters every rclpy node declares itself (not the graph's)
RCLPY_PARAMETERS = {"use_sim_time", "start_type_description_service"}


def require(module: str = "rclpy"):
    """The ROS 2 Python module ``module`` (rclpy, launch_ros, ...), or skip the calling test, or module, with
    :data:`NO_ROS` (every such skip is reported on one line)."""
    return pytest.importorskip(module, reason=NO_ROS)


def node_class(key: str) -> type:
    """The LegionNode subclass defined in the node file of graph node ``key``."""
    from rclpy.node import Node

    module = importlib.import_module(f"legion_nodes.{graph.NODES[key].executable}")
    return next(v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__
                and issubclass(v, Node))


def _configured(cls: type, options: dict) -> type:
    """``cls`` whose rclpy ``Node.__init__`` gets ``options`` (context, parameter overrides) and whose publishers
    record what they publish (``node.recorded[topic]``, from the first message, even one sent in ``__init__``).

    The node classes call ``super().__init__(key)``; a class placed between LegionNode and rclpy's Node in the method
    resolution order forwards the keyword arguments a launch would give the node (its ``--ros-args``). Nothing of
    the node's own code is replaced.
    """
    from rclpy.node import Node

    class Options(Node):
        def __init__(self, node_name, **kwargs):
            self.recorded: dict[str, list] = {}
            super().__init__(node_name, **{**options, **kwargs})

        def create_publisher(self, msg_type, topic, *args, **kwargs):
            publisher = super().create_publisher(msg_type, topic, *args, **kwargs)
            record, publish = self.recorded.setdefault(publisher.topic_name, []), publisher.publish

            def recording_publish(msg):
                publish(msg)
                record.append(msg)

            publisher.publish = recording_publish
            return publisher

    return type(cls.__name__, (cls, Options), {"__module__": cls.__module__, "__doc__": cls.__doc__})


class Graph:
    """Real rclpy nodes of the LEGION graph in one context, driven by a test; use as a context manager.

    Args:
        timeout_s: longest wait, s, for anything DDS should do at once (a match, a callback, a service reply).
    """

    def __init__(self, timeout_s: float = 20.0):
        rclpy = require("rclpy")
        from rcl_interfaces.msg import Log
        from rclpy.context import Context
        from rclpy.qos import QoSProfile
        from rclpy.signals import SignalHandlerOptions
        from rosgraph_msgs.msg import Clock

        self.timeout_s = timeout_s
        self.context = Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.nodes: list = []  # nodes under test and helpers, in pump order
        self._executors: dict = {}
        self._taken: set[tuple[int, str]] = set()  # (id(node), topic) of subscription callbacks that ran
        self._publishers: dict[str, object] = {}
        self._clients: dict[str, object] = {}
        self._actions: list = []  # the harness's action servers and clients (kept alive)
        self.time_ns = 0
        self.rosout: list[tuple[str, int, str]] = []  # (logger name, level, text) from /rosout
        self.helper = rclpy.create_node("legion_test_harness", context=self.context)
        self._clock = self.helper.create_publisher(Clock, "/clock", QoSProfile(depth=10))
        self.helper.create_subscription(Log, "/rosout", lambda msg: self.rosout.append((msg.name, msg.level, msg.msg)),
                                        QoSProfile(depth=1000))
        self._add_executor(self.helper)

    def __enter__(self) -> Graph:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- nodes --------------------------------------------------------------------------------------------------
    def _add_executor(self, node) -> None:
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(node)
        self._executors[id(node)] = executor

    def make(self, key: str, **parameters):
        """Build graph node ``key`` from its node file, with parameter overrides (as a launch file sets them), on ROS
        time; it joins the graph at the current time, after the nodes made before it in :meth:`pump` order.

        Raises:
            whatever the node's constructor raises (e.g. a missing parameter file).
        """
        from rclpy.parameter import Parameter

        overrides = [Parameter("use_sim_time", value=True), *(Parameter(k, value=v) for k, v in parameters.items())]
        node = _configured(node_class(key), {"context": self.context, "parameter_overrides": overrides})()
        self.add(node)
        return node

    def add(self, node) -> None:
        """Drive ``node`` (a node of this context made by the test, e.g. a relay) in :meth:`pump`, after the nodes made
        so far; it gets the current ROS time if it uses simulation time."""
        self.nodes.append(node)
        self._add_executor(node)
        if self.time_ns:
            self.set_time(self.time_ns * 1e-9)
        else:
            self.pump()

    def destroy(self, node) -> None:
        """Destroy ``node`` (its process ended): it publishes and receives nothing more."""
        self.nodes.remove(node)
        self._executors.pop(id(node)).shutdown()
        node.destroy_node()

    def close(self) -> None:
        """Destroy every node and shut the context down."""
        import rclpy

        for node in list(self.nodes):
            self.destroy(node)
        self._executors.pop(id(self.helper)).shutdown()
        self.helper.destroy_node()
        rclpy.try_shutdown(context=self.context)

    # ---- spinning -----------------------------------------------------------------------------------------------
    def _run_ready(self, executor) -> int:
        """Run every callback of ``executor`` that is ready now (and what becomes ready meanwhile); how many ran."""
        from rclpy.executors import ShutdownException, TimeoutException
        from rclpy.subscription import Subscription

        ran = since_wait = 0
        while True:
            try:
                handler, entity, node = executor.wait_for_ready_callbacks(timeout_sec=0)
            except ShutdownException:
                return ran
            except TimeoutException:  # the end of one wait's batch: a timer the batch brought due is in the next one
                if not since_wait:
                    return ran
                since_wait = 0
                continue
            since_wait += 1
            handler()
            if handler.exception() is not None:
                raise handler.exception()
            if isinstance(entity, Subscription):
                self._taken.add((id(node), entity.topic_name))
            ran += 1

    def _rendering(self) -> bool:
        """Whether a plant node's virtual camera is rendering a frame on its own thread (it publishes when done)."""
        for node in self.nodes:
            stream = getattr(node, "camera", None)
            busy = getattr(stream, "busy", getattr(stream, "_busy", False))
            if busy is True:
                return True
        return False

    def pump(self) -> int:
        """Run every node's callbacks, in :meth:`pump` order, until none is ready and no camera frame is rendering;
        returns how many callbacks ran.

        Raises:
            AssertionError: still busy after ``timeout_s``.
        """
        deadline, total = time.monotonic() + self.timeout_s, 0
        while True:
            ran = sum(self._run_ready(self._executors[id(n)]) for n in (*self.nodes, self.helper))
            total += ran
            if ran:
                continue
            if not self._rendering():
                return total
            assert time.monotonic() < deadline, f"a camera frame still rendering after {self.timeout_s} s"
            time.sleep(0.001)

    def spin_until(self, condition: Callable[[], bool], what: str) -> None:
        """Run callbacks until ``condition()`` holds.

        Raises:
            AssertionError: naming ``what``, when it does not hold within ``timeout_s``.
        """
        deadline = time.monotonic() + self.timeout_s
        while not condition():
            if not self.pump():
                assert time.monotonic() < deadline, f"not within {self.timeout_s} s: {what}"
                time.sleep(0.001)

    def set_time(self, seconds: float) -> None:
        """Publish ROS time ``seconds`` on ``/clock`` and run what it brings due (timers whose period has passed).

        Each node takes the new time when its executor's turn comes in :meth:`pump` (its ``/clock`` subscription is
        its first), before it handles any message of that cycle.
        """
        from builtin_interfaces.msg import Time
        from rosgraph_msgs.msg import Clock

        self.time_ns = int(round(seconds * 1e9))
        self._clock.publish(Clock(clock=Time(sec=self.time_ns // 10**9, nanosec=self.time_ns % 10**9)))
        self.spin_until(lambda: all(n.get_clock().now().nanoseconds == self.time_ns for n in self.nodes
                                    if n.get_parameter("use_sim_time").value), f"every node at {seconds} s")
        self.pump()

    # ---- messages -----------------------------------------------------------------------------------------------
    def publisher(self, key: str, topic: str | None = None):
        """The harness's publisher on graph topic ``key`` (its type and QoS), named ``topic`` (default: the graph's)."""
        from rosidl_runtime_py.utilities import get_message

        from legion_nodes._ros import QOS

        spec = graph.TOPICS[key]
        topic = topic or spec.name
        if topic not in self._publishers:
            self._publishers[topic] = self.helper.create_publisher(get_message(spec.msgtype), topic, QOS[spec.qos])
        return self._publishers[topic]

    def deliver(self, node, key: str, msg) -> None:
        """Publish ``msg`` (rosbags dataclass, as CDR bytes) on ``node``'s topic of graph key ``key`` from the harness,
        run callbacks until ``node``'s subscription has taken it, then :meth:`pump`. Every other subscriber of that
        topic receives it too, as on a robot.

        Raises:
            AssertionError: ``node`` does not subscribe to that topic, or did not take the message in time.
        """
        topic = node.topic_name(key)
        assert any(s.topic_name == topic for s in node.subscriptions), f"{node.get_name()} does not subscribe to {topic}"
        publisher = self.publisher(key, topic)
        readers = sum(s.topic_name == topic for n in self.nodes for s in n.subscriptions)
        self.spin_until(lambda: publisher.get_subscription_count() >= readers, f"{readers} readers matched on {topic}")
        self._taken.discard((id(node), topic))
        publisher.publish(m.serialize(msg))
        self.spin_until(lambda: (id(node), topic) in self._taken, f"{node.get_name()} took a message on {topic}")
        self.pump()

    @staticmethod
    def sent(node, key: str) -> list:
        """Messages ``node`` published on graph topic ``key``, in order, deserialized (rosbags dataclasses)."""
        return [m.deserialize(bytes(b), graph.TOPICS[key].msgtype) for b in node.recorded.get(node.topic_name(key), [])]

    def logs(self, node) -> list[str]:
        """What ``node`` logged, as read on ``/rosout``."""
        self.pump()
        return [text for name, _, text in self.rosout if name == node.get_name()]

    # ---- services -----------------------------------------------------------------------------------------------
    def call(self, node, service: str):
        """Call graph service ``service`` (std_srvs/Trigger) of ``node`` through a real client; the response.

        Raises:
            AssertionError: ``node`` does not offer it, or no response in time.
        """
        from std_srvs.srv import Trigger

        name = graph.SERVICES[service].name
        assert name in [s.srv_name for s in node.services], f"{node.get_name()} does not serve {name}"
        if name not in self._clients:
            self._clients[name] = self.helper.create_client(Trigger, name)
        client = self._clients[name]
        self.spin_until(client.service_is_ready, f"service {name} available")
        future = client.call_async(Trigger.Request())
        self.spin_until(future.done, f"a response from {name}")
        self.pump()
        return future.result()

    # ---- actions ------------------------------------------------------------------------------------------------
    def serve_action(self, key: str, action_type) -> list:
        """A real action server for graph action ``key`` on the harness node: it accepts every goal and succeeds at
        once. Returns the list that collects the goal requests, in order."""
        from rclpy.action import ActionServer

        goals: list = []

        def execute(handle):
            goals.append(handle.request)
            handle.succeed()
            return action_type.Result()

        self._actions.append(ActionServer(self.helper, action_type, graph.ACTIONS[key].name, execute))
        self.pump()
        return goals

    def send_goal(self, key: str, action_type, goal) -> tuple[int, object]:
        """Send ``goal`` to graph action ``key`` through a real action client; (final status, result).

        Raises:
            AssertionError: no server, the goal was rejected, or no result in time.
        """
        from rclpy.action import ActionClient

        name = graph.ACTIONS[key].name
        client = ActionClient(self.helper, action_type, name)
        self._actions.append(client)
        self.spin_until(client.server_is_ready, f"action server {name}")
        sent = client.send_goal_async(goal)
        self.spin_until(sent.done, f"{name} answered the goal")
        handle = sent.result()
        assert handle.accepted, f"{name} rejected the goal"
        result = handle.get_result_async()
        self.spin_until(result.done, f"the result of {name}")
        return result.result().status, result.result().result

    # ---- the ROS graph ------------------------------------------------------------------------------------------
    def interface(self, node) -> dict[str, set]:
        """``node``'s endpoints as the ROS graph reports them to another node: ``publishers`` and ``subscriptions``
        ({(topic, type, (reliability, durability))}), ``services``, ``action_clients``, ``action_servers``
        ({(name, type)}). The topics and services an action is made of (``.../_action/...``) are left out."""
        from rclpy.action import get_action_client_names_and_types_by_node, get_action_server_names_and_types_by_node

        name, ns, h = node.get_name(), node.get_namespace(), self.helper

        def endpoints(names_and_types, infos_by_topic):
            return {(topic, info.topic_type, (info.qos_profile.reliability, info.qos_profile.durability))
                    for topic, _ in names_and_types(name, ns) if "/_action/" not in topic
                    for info in infos_by_topic(topic) if (info.node_name, info.node_namespace) == (name, ns)}

        def named(names_and_types):
            return {(n, t) for n, types in names_and_types for t in types if "/_action/" not in n}

        return {"publishers": endpoints(h.get_publisher_names_and_types_by_node, h.get_publishers_info_by_topic),
                "subscriptions": endpoints(h.get_subscriber_names_and_types_by_node,
                                           h.get_subscriptions_info_by_topic),
                "services": named(h.get_service_names_and_types_by_node(name, ns)),
                "action_clients": named(get_action_client_names_and_types_by_node(h, name, ns)),
                "action_servers": named(get_action_server_names_and_types_by_node(h, name, ns))}

    def eventually(self, value: Callable[[], object], expected) -> object:
        """Run callbacks until ``value()`` equals ``expected`` (discovery is asynchronous) or ``timeout_s`` passed;
        returns the last value, for the test to compare."""
        deadline = time.monotonic() + self.timeout_s
        while (got := value()) != expected and time.monotonic() < deadline:
            if not self.pump():
                time.sleep(0.005)
        return got
