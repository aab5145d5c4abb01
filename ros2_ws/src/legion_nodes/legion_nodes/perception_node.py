"""perception: RealSense colour images -> AprilTag object positions in the robot base frame.

Logic: :mod:`sim2real.perception` (pupil-apriltags tag36h11 detection, per-tag pose by OpenCV's
IPPE_SQUARE, quality gates, base-frame mapping with the hand-eye calibration, smoothing, staleness).
``tag_map`` is the tag map YAML, ``calibration`` the easy_handeye2-style YAML of T_base<-camera. The detector
searches windows around the tags of the last image and the whole image every ``full_frame_every``-th image
(:class:`sim2real.tag_tracking.TrackingTagDetector`; 1: every image whole).

Images come from realsense-ros (``camera_source: topics``: image + camera_info topics) or straight from
pyrealsense2 (``camera_source: pyrealsense2``: the camera ``realsense_serial``, or the recording
``realsense_recording``, polled at ``rate_hz``; :class:`sim2real.realsense.RealSenseSource`). Each image
publishes the objects seen within ``max_age_s``; stale objects are left out (and logged), so real2sim
holds rather than act on an old pose.
"""
import cv2
import numpy as np

from legion_nodes._ros import LegionNode, run
from legion_runtime import messages as m
from legion_runtime.paths import project_path
from sim2real.perception import (
    Intrinsics, ObjectTracker, PerceptionError, TagDetector, load_extrinsics, load_tag_map,
)
from sim2real.tag_tracking import TrackingTagDetector


class PerceptionNode(LegionNode):
    def __init__(self):
        super().__init__("perception")
        for name, hint in (("tag_map", "calibration/tag_map.example.yaml shows the format"),
                           ("calibration", "the easy_handeye2 YAML of T_base<-camera from the hand-eye calibration")):
            if not self.param(name):
                raise PerceptionError(f"parameter {name} is empty: set it to a file ({hint})")
        tags = load_tag_map(project_path(self.param("tag_map")))
        self.detector = TrackingTagDetector(TagDetector(tags, quad_decimate=self.param("quad_decimate")),
                                            full_frame_every=self.param("full_frame_every"))
        self.tracker = ObjectTracker(tags, load_extrinsics(project_path(self.param("calibration"))),
                                     max_age_s=self.param("max_age_s"))
        self.intrinsics = None
        source = self.param("camera_source")
        if source == "topics":
            self.subscribe("camera_info", self.on_camera_info)
            self.subscribe("image", self.on_image)
        elif source == "pyrealsense2":
            from sim2real.realsense import RealSenseSource

            self.camera = RealSenseSource(recording=self.param("realsense_recording") or None,
                                          serial=self.param("realsense_serial") or None)
            self.intrinsics = self.camera.intrinsics
            self.create_timer(1.0 / self.param("rate_hz"), self.on_timer)
        else:
            raise ValueError(f"camera_source must be 'topics' or 'pyrealsense2', got {source!r}")

    def on_camera_info(self, msg) -> None:
        self.intrinsics = Intrinsics(*m.camera_info_from_msg(msg))

    def on_image(self, msg) -> None:
        if self.intrinsics is None:
            self.get_logger().warning("image before camera_info: skipped")
            return
        pixels, encoding, stamp, frame = m.image_from_msg(msg)
        if frame and frame != self.param("camera_frame"):
            self.get_logger().error(f"image in frame {frame!r}, calibrated for {self.param('camera_frame')!r}: skipped")
            return
        gray = pixels if encoding == "mono8" else cv2.cvtColor(
            pixels, cv2.COLOR_RGB2GRAY if encoding == "rgb8" else cv2.COLOR_BGR2GRAY)
        self.process(gray, stamp)

    def on_timer(self) -> None:
        frame = self.camera.read(timeout_s=0.01)
        if frame is not None:  # stamped on receipt: the ROS clock, like realsense-ros' default
            self.process(cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2GRAY), self.now_s())

    def process(self, gray: np.ndarray, stamp: float) -> None:
        self.tracker.update(self.detector.detect(gray, self.intrinsics), stamp)
        fresh, stale = self.tracker.poses(stamp)
        if stale:
            self.get_logger().warning(f"stale (not published): {stale}")
        if fresh:
            # each pose stamped with its own last detection, not this image: a pose kept by the tracker is
            # no younger than when it was seen
            self.publish("object_poses", m.object_poses_to_msg({k: p for k, (p, _) in fresh.items()},
                                                               {k: t for k, (_, t) in fresh.items()},
                                                               self.param("base_frame")))


def main(args=None):
    run(PerceptionNode, args)
