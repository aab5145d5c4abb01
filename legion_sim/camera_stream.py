"""The virtual RealSense rendered on its own thread, so the simulation loop never waits for GL.

With software EGL (no GPU) one 640 x 480 frame of the KUKA scene takes 30-50 ms of a core: rendered in the
plant's own loop it delayed the 20 Hz joint states by up to a period (issue 16). :class:`CameraStream` splits a
frame in two: :meth:`CameraStream.capture` copies the scene's geometry from ``MjData`` into the renderer's
``MjvScene`` (:meth:`VirtualRealSense.update_scene`) in the caller's thread (``mjv_updateScene``, well under a millisecond, so it never sees a
half-stepped state), and a worker thread renders it (``mjr_render`` releases the GIL) and hands the image to a
callback. A capture while the previous frame is still rendering is dropped and counted, as a camera whose host
is late drops frames. The GL context is created, used and freed in the worker thread (EGL binds a context to one
thread). The worker runs at a lower CPU priority (``nice``, Linux: per thread): the camera stands in for separate
hardware and must not take the CPU from the simulated arm's 20 Hz joint states or the control chain.
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

import mujoco
import numpy as np

from legion_sim.camera import VirtualRealSense


class CameraStream:
    """Renders ``camera`` on a worker thread; ``on_frame(image, stamp)`` receives each frame there.

    Args:
        camera: the virtual RealSense (its model, data, camera id, intrinsics and scene options are used).
        on_frame: called on the worker thread with the (H, W, 3) uint8 RGB image and the capture's ``stamp``.
            It must be thread-safe (rclpy's ``Publisher.publish`` is).
        nice: added to the worker thread's nice value on Linux (0: the caller's priority; ignored elsewhere).

    Raises:
        RuntimeError: the worker could not create a GL context (headless machines need ``MUJOCO_GL=egl``).
    """

    def __init__(self, camera: VirtualRealSense, on_frame: Callable[[np.ndarray, float], None], nice: int = 10):
        self.camera, self.on_frame, self.nice = camera, on_frame, int(nice)
        self.frames = self.dropped = 0
        self.error: BaseException | None = None  # what stopped the worker, if anything did
        self._renderer: mujoco.Renderer | None = None
        self._stamp: float | None = None
        self._wake = threading.Condition()
        self._busy = self._stop = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._work, name="camera_stream", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self.error is not None:
            raise RuntimeError(f"cannot render the virtual RealSense ({self.error}); set MUJOCO_GL=egl") from self.error

    def capture(self, stamp: float) -> bool:
        """Take a frame of the scene as it is now, stamped ``stamp`` (s); False if dropped (previous still rendering).

        Call it from the thread that steps the simulation, between steps.
        """
        with self._wake:
            if self._busy or self._stop or self.error is not None:
                self.dropped += 1
                return False
            self.camera.update_scene(self._renderer)
            self._stamp, self._busy = stamp, True
            self._wake.notify()
        return True

    def close(self) -> None:
        """Stop the worker after its current frame and free its GL context (there)."""
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout=5.0)

    def _work(self) -> None:
        if self.nice and sys.platform.startswith("linux"):  # Linux keeps a nice value per thread
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + self.nice, 19))
        try:
            cam = self.camera
            self._renderer = mujoco.Renderer(cam.model, height=cam.intrinsics.height, width=cam.intrinsics.width)
        except Exception as exc:  # noqa: BLE001 - GL back-ends raise assorted types
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                with self._wake:
                    while not (self._busy or self._stop):
                        self._wake.wait()
                    if self._stop:
                        return
                    stamp = self._stamp
                image = self._renderer.render().copy()
                self.on_frame(image, stamp)
                with self._wake:
                    self.frames += 1
                    self._busy = False
        except Exception as exc:  # noqa: BLE001 - kept for the owner to report; the stream stops
            self.error = exc
        finally:
            self._renderer.close()
