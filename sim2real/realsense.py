"""RealSense colour frames through pyrealsense2, from a live camera or a recording, without ROS.

:class:`RealSenseSource` streams the colour sensor (bgr8, 640 x 480 at 30 Hz by default) of a connected
camera (``serial``, or the first one found) or replays a recording made by the RealSense Viewer or
:func:`write_recording` (``rs.context().load_device``; librealsense 2.59 records rosbag2 ``.db3`` files),
non-real-time so that no frame is dropped. Each frame comes with the stream's intrinsics from the
device, as :class:`sim2real.perception.Intrinsics`.

:func:`write_recording` writes frames to a recording through a pyrealsense2 software device and the
librealsense recorder, so that simulated images can be replayed by the same path as a real camera.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim2real.perception import Intrinsics, PerceptionError


@dataclass(frozen=True)
class ColorFrame:
    """One colour frame: ``bgr`` (H, W, 3) uint8, the stream's intrinsics, device timestamp (s), frame number."""

    bgr: np.ndarray
    intrinsics: Intrinsics
    stamp: float
    number: int


def _intrinsics(profile) -> Intrinsics:
    i = profile.as_video_stream_profile().get_intrinsics()
    return Intrinsics(fx=i.fx, fy=i.fy, cx=i.ppx, cy=i.ppy, width=i.width, height=i.height)


class RealSenseSource:
    """Colour frames from a RealSense camera or recording (see the module docstring).

    A live camera streams through an ``rs.pipeline``. A recording is read from the playback device's colour
    sensor, switched to non-real-time before it starts: librealsense then hands over the next frame only when
    the last one was taken (a one-slot queue whose ``put`` blocks), so none is dropped. (Through a pipeline,
    ``set_real_time(False)`` can only be called after ``start``, and the first frames were lost in 2 of 30 replays.)

    Args:
        recording: path of a recording to replay (None: a live camera).
        serial: serial number of the live camera (None: the first connected).
        width, height, fps: colour stream of a live camera.

    Raises:
        PerceptionError: the recording does not exist, no camera is connected, or it has no colour stream.
    """

    def __init__(self, recording: str | Path | None = None, serial: str | None = None, width: int = 640,
                 height: int = 480, fps: int = 30):
        import pyrealsense2 as rs

        self._rs = rs
        self.pipeline = self._sensor = self._playback = None
        if recording is not None:
            self._open_recording(Path(recording))
            return
        if len(rs.context().query_devices()) == 0:
            raise PerceptionError("no RealSense camera is connected (check the USB 3 cable and `rs-enumerate-devices`)")
        self.pipeline, config = rs.pipeline(), rs.config()
        if serial:
            config.enable_device(serial)
        config.enable_stream(rs.stream.color, width, height, rs.format.bgr8, fps)
        try:
            profile = self.pipeline.start(config)
        except RuntimeError as exc:
            raise PerceptionError(f"cannot start the RealSense colour stream: {exc}") from exc
        self.intrinsics = _intrinsics(profile.get_stream(rs.stream.color))

    def _open_recording(self, path: Path) -> None:
        rs = self._rs
        if not path.is_file():
            raise PerceptionError(f"RealSense recording {path} does not exist")
        try:
            device = rs.context().load_device(str(path))
        except RuntimeError as exc:
            raise PerceptionError(f"cannot open the RealSense recording {path}: {exc}") from exc
        self._playback = device.as_playback()
        self._playback.set_real_time(False)  # before the first frame: every frame, at the reader's pace
        colour = [(s, p) for s in device.query_sensors() for p in s.get_stream_profiles()
                  if p.stream_type() == rs.stream.color]
        if not colour:
            raise PerceptionError(f"the RealSense recording {path} has no colour stream")
        self._sensor, profile = colour[0]
        self.intrinsics = _intrinsics(profile)
        self._frames: queue.Queue = queue.Queue(maxsize=1)
        self._closing = threading.Event()
        self._sensor.open(profile)
        self._sensor.start(self._on_recorded_frame)

    def _on_recorded_frame(self, frame) -> None:
        # librealsense's playback thread: blocks until read() took the last frame (back-pressure), or close().
        try:
            item = self._color_frame(frame.as_video_frame())
        except PerceptionError as exc:
            item = exc
        while not self._closing.is_set():
            try:
                self._frames.put(item, timeout=0.05)
                return
            except queue.Full:
                pass

    def _color_frame(self, color) -> ColorFrame:
        pixels = np.asanyarray(color.get_data())
        fmt = color.profile.format()
        if fmt == self._rs.format.rgb8:
            pixels = pixels[:, :, ::-1]
        elif fmt != self._rs.format.bgr8:
            raise PerceptionError(f"colour frames are {fmt}, expected bgr8 or rgb8")
        return ColorFrame(np.ascontiguousarray(pixels), self.intrinsics, color.get_timestamp() * 1e-3,
                          int(color.get_frame_number()))

    def read(self, timeout_s: float = 1.0) -> ColorFrame | None:
        """The next colour frame, or None when none came within ``timeout_s`` or the recording has ended.

        Raises:
            PerceptionError: the frame is not bgr8/rgb8 (configure the colour stream as bgr8).
        """
        if self.pipeline is not None:
            ok, frames = self.pipeline.try_wait_for_frames(int(timeout_s * 1000))
            color = frames.get_color_frame() if ok else None
            return self._color_frame(color) if color else None
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                item = self._frames.get(timeout=min(0.05, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if self._playback.current_status() == self._rs.playback_status.stopped and self._frames.empty():
                    return None  # the recording has ended
                if time.monotonic() >= deadline:
                    return None
                continue
            if isinstance(item, PerceptionError):
                raise item
            return item

    def close(self) -> None:
        """Stop the stream (a live pipeline, or the recording's sensor); frames not yet read are dropped."""
        if self.pipeline is not None:
            self.pipeline.stop()
            return
        self._closing.set()  # lets a callback blocked on the full queue return, so that stop() can join its thread
        if self._playback.current_status() != self._rs.playback_status.stopped:
            self._sensor.stop()
        self._sensor.close()

    def __enter__(self) -> "RealSenseSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_recording(path: str | Path, frames: list[np.ndarray], intrinsics: Intrinsics, fps: int = 30) -> None:
    """Record bgr8 frames (H, W, 3) uint8 with ``intrinsics`` to a librealsense recording (``.db3``).

    Raises:
        PerceptionError: a frame of the wrong shape or dtype, or a path not ending in ``.db3``.
    """
    import pyrealsense2 as rs

    path = Path(path)
    if path.suffix != ".db3":
        raise PerceptionError(f"librealsense 2.59 records rosbag2 .db3 files; got {path.name}")
    device = rs.software_device()
    sensor = device.add_sensor("RGB Camera")
    i = rs.intrinsics()
    i.width, i.height, i.fx, i.fy, i.ppx, i.ppy = intrinsics.width, intrinsics.height, intrinsics.fx, intrinsics.fy, \
        intrinsics.cx, intrinsics.cy
    i.model, i.coeffs = rs.distortion.none, [0.0] * 5
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid, stream.width, stream.height = rs.stream.color, 0, 0, i.width, i.height
    stream.fps, stream.bpp, stream.fmt, stream.intrinsics = fps, 3, rs.format.bgr8, i
    profile = sensor.add_video_stream(stream)
    recorder = rs.recorder(str(path), device)
    queue = rs.frame_queue(len(frames) + 1)
    sensor.open(profile)
    sensor.start(queue)
    try:
        for n, bgr in enumerate(frames):
            if bgr.dtype != np.uint8 or bgr.shape != (i.height, i.width, 3):
                raise PerceptionError(f"frame {n} must be ({i.height}, {i.width}, 3) uint8, got {bgr.dtype} {bgr.shape}")
            frame = rs.software_video_frame()
            frame.pixels, frame.bpp, frame.stride = np.ascontiguousarray(bgr), 3, i.width * 3
            frame.timestamp, frame.frame_number = n * 1000.0 / fps, n
            frame.domain, frame.profile = rs.timestamp_domain.hardware_clock, profile.as_video_stream_profile()
            sensor.on_video_frame(frame)
            queue.wait_for_frame(1000)
    finally:
        sensor.stop()
        sensor.close()
        del recorder  # closes the file
