"""Object and goal positions for the policy's observation, from camera frames through the tag detector.

This is the perception node's and the Real2Sim node's object path in one class, used by the in-process
runner with the virtual RealSense and by the nodes with the real one:

    frame (grey, intrinsics, stamp) ─► (Tracking)TagDetector ─► ObjectTracker (gates, EMA, age, base frame)
        ─► sim frame ─► object position (every cycle) and goal (once, from the initial detection: GoalRule)

A subtask starts only when its object (and goal marker) is seen; afterwards an object that is not seen for
``max_age_s`` (occlusion, dropped frames, no camera) makes :meth:`ObjectState.positions` return None, and the
control loop holds: a stale position is never used.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim2real.goals import GoalRule, ObjectNotSeenError
from sim2real.perception import Intrinsics, ObjectTracker, TagDetector
from sim2real.tag_tracking import TrackingTagDetector
from sim2real.transforms import FrameTransform

#: A camera: returns (grey (H, W) uint8, intrinsics, stamp s), or None when no frame arrived.
FrameSource = Callable[[], "tuple[np.ndarray, Intrinsics, float] | None"]


@dataclass
class ObjectState:
    """Tracks the objects of one subtask (see the module docstring).

    Args:
        detector: tag detector with the tag map (or one that tracks regions of interest).
        tracker: object tracker (extrinsics, gates, ``max_age_s``).
        frame: T_sim<-base, for the observation's sim frame.
        rule: the subtask's goal rule.
    """

    detector: TagDetector | TrackingTagDetector
    tracker: ObjectTracker
    frame: FrameTransform
    rule: GoalRule
    goal: np.ndarray | None = None

    def observe(self, source: FrameSource) -> None:
        """Take one frame from ``source`` (if any) into the tracker."""
        grabbed = source()
        if grabbed is not None:
            gray, intrinsics, stamp = grabbed
            self.tracker.update(self.detector.detect(gray, intrinsics), stamp)

    def start(self, source: FrameSource, now: float) -> np.ndarray:
        """Begin a subtask: observe one frame and derive the goal from the initial detections.

        Returns:
            (3,) goal, sim frame, m.

        Raises:
            ObjectNotSeenError: the subtask's object or goal marker is not seen (the message names it).
        """
        self.observe(source)
        fresh, _ = self.tracker.poses(now)
        initial = {k: self.frame.to_sim(p) for k, (p, _) in fresh.items()}
        if self.rule.object not in initial:
            raise ObjectNotSeenError(f"{self.rule.object!r} is not seen by the camera (seen: {sorted(initial)}); "
                                     "check the tag, the lighting and the camera view")
        self.goal = self.rule.goal(initial)
        return self.goal

    def positions(self, source: FrameSource, now: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Observe a frame; (object (3,), goal (3,)) in the sim frame, or None if the object is stale.

        Raises:
            RuntimeError: :meth:`start` was not called.
        """
        if self.goal is None:
            raise RuntimeError("call ObjectState.start() at the beginning of the subtask")
        self.observe(source)
        fresh, _ = self.tracker.poses(now)
        if self.rule.object not in fresh:
            return None
        return self.frame.to_sim(fresh[self.rule.object][0]), self.goal.copy()
