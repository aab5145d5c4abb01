"""What every LEGION node shares: its interface declared from ``legion_runtime.graph``, messages as CDR.

A node subclasses :class:`LegionNode` with its key in ``legion_runtime.graph.NODES``; the base class
declares every parameter of the graph (own parameters and ``topics.<key>`` names), and creates each
publisher and subscription with the topic's type and QoS from the graph. Messages cross the rclpy
boundary as serialized CDR bytes (``Publisher.publish(bytes)``, ``create_subscription(..., raw=True)``)
and are converted with ``legion_runtime.messages`` (rosbags' ROS 2 Jazzy definitions), the same
functions the in-process runner and its rosbag2 recorder use, so a node file holds no message code.
"""
from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from rosidl_runtime_py.utilities import get_message

from legion_runtime import graph
from legion_runtime import messages as m

#: graph QoS name -> rclpy profile (reliable keep-last-10 is rclpy's default for a depth of 10; "latched": the
#: last message is kept for late joiners, so a restarted node learns the running subtask at once)
QOS = {"reliable": QoSProfile(depth=10), "sensor_data": qos_profile_sensor_data,
       "latched": QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)}


class LegionNode(Node):
    """An rclpy node whose parameters, publishers and subscriptions come from ``graph.NODES[key]``.

    Args:
        key: node key in ``legion_runtime.graph.NODES`` (also the ROS node name).

    Raises:
        KeyError: ``key`` is not a node of the graph.
    """

    def __init__(self, key: str):
        self.spec = graph.NODES[key]
        super().__init__(self.spec.name)
        for name, default in graph.node_parameters(self.spec).items():
            self.declare_parameter(name, default)
        self._publishers_by_key = {}
        for k in self.spec.publishes:
            topic = graph.TOPICS[k]
            self._publishers_by_key[k] = self.create_publisher(get_message(topic.msgtype), self.topic_name(k),
                                                               QOS[topic.qos])

    def param(self, name: str) -> Any:
        """Value of a declared parameter."""
        return self.get_parameter(name).value

    def topic_name(self, key: str) -> str:
        """Topic name of graph topic ``key`` (parameter ``topics.<key>``)."""
        return self.param(f"topics.{key}")

    def publish(self, key: str, msg: Any) -> None:
        """Publish a ``legion_runtime.messages`` message (rosbags dataclass) on graph topic ``key``."""
        self._publishers_by_key[key].publish(m.serialize(msg))

    def subscribe(self, key: str, callback: Callable[[Any], None]) -> None:
        """Subscribe ``callback(msg)`` to graph topic ``key``; ``msg`` is the deserialized rosbags dataclass.

        A message that does not deserialize (wrong type on the topic) is logged and dropped.
        """
        topic = graph.TOPICS[key]

        def on_bytes(data: bytes) -> None:
            try:
                msg = m.deserialize(bytes(data), topic.msgtype)
            except Exception as exc:  # noqa: BLE001 - a bad message must not stop the node
                self.get_logger().error(f"dropped a message on {self.topic_name(key)}: {exc}")
                return
            callback(msg)

        self.create_subscription(get_message(topic.msgtype), self.topic_name(key), on_bytes, QOS[topic.qos], raw=True)

    def now_s(self) -> float:
        """ROS time now, s."""
        return self.get_clock().now().nanoseconds * 1e-9


def _stop_on_first_signal(signum, _frame) -> None:
    """SIGINT / SIGTERM: ignore any further one (Ctrl-C on `ros2 launch` reaches a node twice, from the terminal and
    from launch), then end the spin with KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run(node_class: type[LegionNode] | tuple[type[LegionNode], ...], args: list[str] | None = None) -> None:
    """Entry point body: init rclpy, spin ``node_class`` (or several in one process and one executor) until SIGINT /
    SIGTERM, clean up without a traceback.

    rclpy's own signal handlers are off: a second SIGINT arriving while the first unwinds (``ros2 launch`` sends
    one, a terminal's Ctrl-C another) raised KeyboardInterrupt inside clean-up code and printed a traceback. Here
    the first signal ignores the rest and stops the spin; the node is destroyed and rclpy shut down in order.

    The executor spins on a thread of its own with no timeout until the main thread, woken by a signal, completes
    ``stop``; then the thread is joined before anything is destroyed. Spinning in the main thread needed short
    timeouts for Python to run the signal handler, and every timed wait costs rclpy a new timer (joint state ->
    joint target p99 24.6 -> 16.9 ms with the camera off). ``Executor.shutdown`` is not used to stop the spin: it
    destroys the executor's guard condition while the spinning thread may still wait on it (the process aborted,
    "terminate called without an active exception"). An exception in a callback ends the spin and is raised here,
    as it was in the main thread.
    """
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions
    from rclpy.task import Future

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, _stop_on_first_signal)
    signal.signal(signal.SIGTERM, _stop_on_first_signal)
    classes = node_class if isinstance(node_class, tuple) else (node_class,)
    nodes: list[LegionNode] = []
    executor = thread = None
    stop, done = Future(), threading.Event()
    failed: list[BaseException] = []

    def spin() -> None:
        try:
            executor.spin_until_future_complete(stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            failed.append(exc)
        finally:
            done.set()

    try:
        for cls in classes:
            nodes.append(cls())
        # what the node loaded (torch, models, scenes) is never garbage: frozen, a full collection no longer walks it.
        # With the policy loaded one full collection took 242 ms, almost five control periods (bench_control_cycle.py)
        gc.freeze()
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        thread = threading.Thread(target=spin, name="executor", daemon=True)
        thread.start()
        done.wait()  # a signal interrupts it with KeyboardInterrupt
        if failed:
            raise failed[0]
    except KeyboardInterrupt:
        pass
    finally:
        if thread is not None:
            if not stop.done():
                stop.set_result(None)  # wakes the executor, which returns after the callback it may be running
            thread.join(timeout=5.0)
        if executor is not None and (thread is None or not thread.is_alive()):
            executor.shutdown()
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown()
