"""Test double of rclpy.node.Node: records declarations, holds callbacks, keeps published messages."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Parameter:
    name: str
    value: Any


@dataclass
class Publisher:
    msg_type: Any
    topic: str
    qos: Any
    sent: list = field(default_factory=list)

    def publish(self, msg) -> None:
        if not isinstance(msg, (bytes, self.msg_type)):  # rclpy raises TypeError for anything else
            raise TypeError(f"Expected {self.msg_type}, got {type(msg)}")
        self.sent.append(msg)


@dataclass
class Subscription:
    msg_type: Any
    topic: str
    callback: Callable
    qos: Any
    raw: bool


@dataclass
class Timer:
    period_s: float
    callback: Callable


@dataclass
class Service:
    srv_type: Any
    name: str
    callback: Callable


class _Logger:
    def __init__(self):
        self.records: list[tuple[str, str]] = []

    # rclpy's logging calls take keyword options (throttle_duration_sec, once, skip_first): accepted, recorded as is
    def _log(self, level, msg):
        self.records.append((level, str(msg)))

    def debug(self, msg, **options): self._log("debug", msg)
    def info(self, msg, **options): self._log("info", msg)
    def warning(self, msg, **options): self._log("warning", msg)
    def warn(self, msg, **options): self._log("warning", msg)
    def error(self, msg, **options): self._log("error", msg)
    def fatal(self, msg, **options): self._log("fatal", msg)


class _Time:
    def __init__(self, ns: int):
        self.nanoseconds = ns


class _Clock:
    """A clock the test sets: ``node.get_clock().set(seconds)``."""

    def __init__(self):
        self._ns = 0

    def now(self):
        return _Time(self._ns)

    def set(self, seconds: float) -> None:
        self._ns = int(round(seconds * 1e9))


class Node:
    def __init__(self, node_name: str, **kwargs):
        self.node_name = node_name
        self.parameter_overrides: dict[str, Any] = dict(kwargs.get("parameter_overrides_by_name", {}))
        self.parameters: dict[str, Parameter] = {}
        self.declared_publishers: list[Publisher] = []
        self.subscriptions_: list[Subscription] = []
        self.timers_: list[Timer] = []
        self.services_: list[Service] = []
        self.action_clients: list = []
        self.action_servers: list = []
        self._logger = _Logger()
        self._clock = _Clock()
        self.destroyed = False
        import rclpy.node as this
        overrides = this.PARAMETER_OVERRIDES.get(node_name, {})
        self.parameter_overrides.update(overrides)

    def get_name(self) -> str:
        return self.node_name

    def declare_parameter(self, name: str, value: Any = None, descriptor=None, ignore_override: bool = False):
        if name in self.parameters:
            raise RuntimeError(f"parameter {name!r} declared twice")  # rclpy: ParameterAlreadyDeclaredException
        p = Parameter(name, self.parameter_overrides.get(name, value))
        self.parameters[name] = p
        return p

    def get_parameter(self, name: str) -> Parameter:
        if name not in self.parameters:
            raise KeyError(f"parameter {name!r} not declared")  # rclpy: ParameterNotDeclaredException
        return self.parameters[name]

    def create_publisher(self, msg_type, topic: str, qos_profile, **kwargs) -> Publisher:
        pub = Publisher(msg_type, topic, qos_profile)
        self.declared_publishers.append(pub)
        return pub

    def create_subscription(self, msg_type, topic: str, callback, qos_profile, *, raw: bool = False, **kwargs):
        sub = Subscription(msg_type, topic, callback, qos_profile, raw)
        self.subscriptions_.append(sub)
        return sub

    def create_timer(self, timer_period_sec: float, callback, **kwargs) -> Timer:
        timer = Timer(timer_period_sec, callback)
        self.timers_.append(timer)
        return timer

    def create_service(self, srv_type, srv_name: str, callback, **kwargs) -> Service:
        srv = Service(srv_type, srv_name, callback)
        self.services_.append(srv)
        return srv

    def get_logger(self) -> _Logger:
        return self._logger

    def get_clock(self) -> _Clock:
        return self._clock

    def destroy_node(self) -> None:
        self.destroyed = True


#: node name -> {parameter: value}: what a launch file's parameters would set (tests fill it)
PARAMETER_OVERRIDES: dict[str, dict[str, Any]] = {}
