"""Record and read rosbag2 bags (mcap or sqlite3) without ROS, with rosbags' rosbag2 writer.

A bag is a folder holding ``metadata.yaml`` and one storage file (``<name>.mcap`` or ``.db3``) with
the messages as CDR and their ROS 2 Jazzy definitions embedded, so ``ros2 bag info/play`` and
Foxglove open it. Messages come from :mod:`legion_runtime.messages`.

Example::

    with BagRecorder("runs/001/bag", {"/legion/command": "std_msgs/msg/String"}) as bag:
        bag.write("/legion/command", command_to_msg("reach the goal"), stamp_ns=0)
    for topic, msgtype, stamp_ns, msg in read_bag("runs/001/bag"):
        ...
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from numbers import Integral
from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer

from legion_runtime.messages import TYPESTORE, serialize

_STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class BagRecorder:
    """Write ROS 2 messages on fixed topics into a new rosbag2 folder (context manager).

    Args:
        path: bag folder to create. It must not exist, or be an empty folder: a run is never
            overwritten.
        topics: topic name (absolute, e.g. ``/lbr/joint_states``) -> message type
            (e.g. ``sensor_msgs/msg/JointState``), all in the Jazzy typestore.
        storage: ``"mcap"`` (default; Jazzy's default) or ``"sqlite3"``.

    Raises:
        FileExistsError: ``path`` exists and is a file or a non-empty folder.
        ValueError: bad storage name, empty ``topics``, a relative topic name, or an unknown type.

    The bag is finalised (metadata.yaml written) on leaving the ``with`` block, also when it is left
    by an exception, so a crashed run keeps what it recorded.
    """

    def __init__(self, path: str | Path, topics: Mapping[str, str], storage: str = "mcap") -> None:
        self.path = Path(path)
        if storage not in _STORAGE:
            raise ValueError(f"storage must be one of {sorted(_STORAGE)}, got {storage!r}")
        if not topics:
            raise ValueError("topics is empty: give at least one {topic: msgtype}")
        for topic, msgtype in topics.items():
            if not topic.startswith("/"):
                raise ValueError(f"topic {topic!r} must be an absolute ROS 2 name, e.g. '/{topic}'")
            if msgtype not in TYPESTORE.types:
                raise ValueError(f"topic {topic!r}: unknown message type {msgtype!r} "
                                 "(use the ROS 2 form 'pkg/msg/Name', e.g. 'std_msgs/msg/String')")
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise FileExistsError(f"{self.path} already exists and is not an empty folder; "
                                  "refusing to overwrite a recording: choose a new path")
        self.topics = dict(topics)
        self.storage = storage
        self._writer: Writer | None = None
        self._connections: dict[str, Any] = {}

    def open(self) -> BagRecorder:
        """Create the bag folder and register the topics. Called by ``with``."""
        if self._writer is not None:
            raise RuntimeError(f"bag {self.path} is already open")
        if self.path.is_dir():  # checked empty in __init__; rosbags wants to create it itself
            self.path.rmdir()
        writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=_STORAGE[self.storage])
        writer.open()
        self._connections = {t: writer.add_connection(t, m, typestore=TYPESTORE) for t, m in self.topics.items()}
        self._writer = writer
        return self

    def write(self, topic: str, msg: Any, stamp_ns: int) -> None:
        """Append ``msg`` on ``topic`` with receive time ``stamp_ns`` (integer ns, the bag's timeline).

        Raises:
            RuntimeError: the bag is not open.
            ValueError: unknown topic, message of the wrong type, or a bad stamp.
        """
        if self._writer is None:
            raise RuntimeError(f"bag {self.path} is not open: use `with BagRecorder(...) as bag:`")
        if topic not in self._connections:
            raise ValueError(f"topic {topic!r} was not declared; declared topics: {sorted(self._connections)}")
        msgtype = getattr(msg, "__msgtype__", type(msg).__name__)
        if msgtype != self.topics[topic]:
            raise ValueError(f"topic {topic!r} carries {self.topics[topic]}, got a {msgtype}")
        if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, Integral) or stamp_ns < 0:
            raise ValueError(f"stamp_ns must be a non-negative integer (nanoseconds), got {stamp_ns!r}")
        self._writer.write(self._connections[topic], int(stamp_ns), serialize(msg))

    def close(self) -> None:
        """Write the storage index and metadata.yaml. Safe to call twice."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def __enter__(self) -> BagRecorder:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def read_bag(path: str | Path) -> Iterator[tuple[str, str, int, Any]]:
    """Yield ``(topic, msgtype, stamp_ns, msg)`` for every message of a rosbag2 folder, in time order.

    Messages are decoded with the definitions embedded in the bag (falling back to ROS 2 Jazzy), so
    bags recorded by real ROS 2 nodes read too. Message classes then differ from
    :data:`legion_runtime.messages.TYPESTORE`'s; the ``*_from_msg`` converters accept both.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no bag at {path}")
    with AnyReader([path], default_typestore=TYPESTORE) as reader:
        for connection, stamp_ns, raw in reader.messages():
            yield connection.topic, connection.msgtype, stamp_ns, reader.deserialize(raw, connection.msgtype)
