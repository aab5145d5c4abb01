"""The virtual RealSense rendered on its own thread (legion_sim.camera_stream): the frame is the scene as it was at
capture, whatever the simulation did while it rendered; a capture during a render is dropped and counted."""
import threading

import numpy as np

from legion_sim.camera_stream import CameraStream
from legion_sim.plant import KukaPlant


def test_a_frame_is_the_scene_at_capture_time_and_a_busy_capture_is_dropped():
    with KukaPlant("reach-v3", seed=1) as plant:
        plant.reset()
        camera = plant.camera()
        expected = camera.grab()  # rendered synchronously, in this thread
        frames, got = [], threading.Event()

        def on_frame(image, stamp):
            frames.append((image, stamp, threading.current_thread().name))
            got.set()

        stream = CameraStream(camera, on_frame)
        try:
            assert stream.capture(12.5)
            assert not stream.capture(12.55), "a capture while rendering must be dropped"
            q, _ = plant.joint_state()
            for _ in range(5):  # the arm moves while the frame renders: the frame must not show it
                plant.step(q + 0.3, 0.0)
            assert got.wait(10.0)
            image, stamp, thread = frames[0]
            assert stamp == 12.5 and thread == "camera_stream"
            assert image.shape == (480, 640, 3) and image.dtype == np.uint8
            np.testing.assert_array_equal(image, expected)
            assert (stream.frames, stream.dropped) == (1, 1)
            got.clear()
            assert stream.capture(13.0) and got.wait(10.0)
            moved = frames[1][0]
            assert np.mean(moved != expected) > 0.001, "the second frame shows the arm where it moved to"
        finally:
            stream.close()
        assert not stream.capture(14.0) and stream.dropped == 2  # closed: nothing more is rendered
