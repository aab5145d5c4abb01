"""RealSense colour frames through pyrealsense2, from a live camera or a recording, without ROS.

:class:`RealSenseSource` streams the colour sensor (bgr8, 640 x 480 at 30 Hz by default) of a connected
camera (``serial``, or the first one found) or replays a recording made by the RealSense Viewer or
:func:`write_recording` (``config.enable_device_from_file``; librealsense 2.59 records rosbag2 ``.db3``
files), non-real-time so that no frame is dropped. Each frame comes with the stream's intrinsics from the
device, as :class:`sim2real.perception.Intrinsics`.

:func:`write_recording` writes frames to a recording through a pyrealsense2 software device and the
librealsense recorder, so that simulated images can be replayed by the same path as a real camera.
"""
from __future__ import annotations

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

    Args:
        recording: path of a recording to replay (None: a live camera).
        serial: serial number of the live camera (None: the first connected).
        width, height, fps: colour stream of a live camera.

    Raises:
        PerceptionError: the recording does not exist, no camera is connected, or it has no such stream.
    """

    def __init__(self, recording: str | Path | None = None, serial: str | None = None, width: int = 640,
                 height: int = 480, fps: int = 30):
        import pyrealsense2 as rs

        self._rs = rs
        self.pipeline, config = rs.pipeline(), rs.config()
        if recording is not None:
            if not Path(recording).is_file():
                raise PerceptionError(f"RealSense recording {recording} does not exist")
            config.enable_device_from_file(str(recording), repeat_playback=False)
            config.enable_stream(rs.stream.color)
        else:
            if len(rs.context().query_devices()) == 0:
                raise PerceptionError("no RealSense camera is connected (check the USB 3 cable and `rs-enumerate-devices`)")
            if serial:
                config.enable_device(serial)
            config.enable_stream(rs.stream.color, width, height, rs.format.bgr8, fps)
        try:
            profile = self.pipeline.start(config)
        except RuntimeError as exc:
            raise PerceptionError(f"cannot start the RealSense colour stream: {exc}") from exc
        if recording is not None:
            profile.get_device().as_playback().set_real_time(False)  # replay every frame, as fast as read
        self.intrinsics = _intrinsics(profile.get_stream(rs.stream.color))

    def read(self, timeout_s: float = 1.0) -> ColorFrame | None:
        """The next colour frame, or None when none came within ``timeout_s`` (end of a recording).

        Raises:
            PerceptionError: the frame is not bgr8/rgb8 (configure the colour stream as bgr8).
        """
        ok, frames = self.pipeline.try_wait_for_frames(int(timeout_s * 1000))
        if not ok:
            return None
        color = frames.get_color_frame()
        if not color:
            return None
        pixels = np.asanyarray(color.get_data())
        fmt = color.profile.format()
        if fmt == self._rs.format.rgb8:
            pixels = pixels[:, :, ::-1]
        elif fmt != self._rs.format.bgr8:
            raise PerceptionError(f"colour frames are {fmt}, expected bgr8 or rgb8")
        return ColorFrame(np.ascontiguousarray(pixels), self.intrinsics, color.get_timestamp() * 1e-3,
                          int(color.get_frame_number()))

    def close(self) -> None:
        self.pipeline.stop()

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
