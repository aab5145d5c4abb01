"""Object and goal positions for the policy's observation, from camera frames through the tag detector.

This is the perception node's and the Real2Sim node's object path in one class, used by the in-process
runner with the virtual RealSense and by the nodes with the real one:

    frame of each camera (grey, intrinsics, stamp) ─► (Tracking)TagDetector per camera
        ─► ObjectTracker (each camera's extrinsics, gates, fusion of the cameras, EMA, age, base frame)
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
    """Tracks the objects of one subtask with one or more cameras (see the module docstring).

    Args:
        detectors: ``{camera name: tag detector}`` (the map's tags; a :class:`TrackingTagDetector` keeps each camera's
            windows), the cameras the tracker has extrinsics for.
        tracker: object tracker (extrinsics per camera, gates, ``max_age_s``).
        frame: T_sim<-base, for the observation's sim frame.
        rule: the subtask's goal rule.

    Raises:
        ValueError: a detector for a camera the tracker has no extrinsics for.
    """

    detectors: dict[str | None, TagDetector | TrackingTagDetector]
    tracker: ObjectTracker
    frame: FrameTransform
    rule: GoalRule
    goal: np.ndarray | None = None

    def __post_init__(self):
        if unknown := set(self.detectors) - set(self.tracker.cameras):
            raise ValueError(f"cameras {sorted(map(str, unknown))} have no extrinsics in the tracker "
                             f"({self.tracker.cameras}); calibrate them")

    def observe(self, sources: dict[str | None, FrameSource]) -> None:
        """Take one frame from each camera's source (those that deliver one) into the tracker; frames of one call
        that carry the same stamp are fused as one view (:meth:`ObjectTracker.update_views`)."""
        by_stamp: dict[float, dict] = {}
        for camera, source in sources.items():
            grabbed = source()
            if grabbed is not None:
                gray, intrinsics, stamp = grabbed
                by_stamp.setdefault(stamp, {})[camera] = self.detectors[camera].detect(gray, intrinsics)
        for stamp in sorted(by_stamp):
            self.tracker.update_views(by_stamp[stamp], stamp)

    def seen(self, now: float) -> dict[str, np.ndarray]:
        """{object: (3,) sim frame, m} of every object the tracker holds fresh at ``now`` (s)."""
        fresh, _ = self.tracker.poses(now)
        return {k: self.frame.to_sim(p) for k, (p, _) in fresh.items()}

    def start(self, sources: dict[str | None, FrameSource], now: float,
              initial: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Begin a subtask: observe one frame of each camera and derive the goal.

        Args:
            initial: ``{object: (3,) sim frame, m}`` seen earlier (when a long-horizon command was given) to derive
                the goal from, where it holds the goal's source (else this frame's detections); None: from this
                frame's detections.

        Returns:
            (3,) goal, sim frame, m.

        Raises:
            ObjectNotSeenError: the subtask's object (or the goal's source) is not seen (the message names it).
        """
        self.observe(sources)
        seen = self.seen(now)
        if self.rule.object not in seen:
            raise ObjectNotSeenError(f"{self.rule.object!r} is not seen by the camera (seen: {sorted(seen)}); "
                                     "check the tag, the lighting and the camera view")
        self.goal = self.rule.goal({**seen, **(initial or {})})
        return self.goal

    def positions(self, sources: dict[str | None, FrameSource], now: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Observe a frame of each camera; (object (3,), goal (3,)) in the sim frame, or None if the object is stale.

        Raises:
            RuntimeError: :meth:`start` was not called.
        """
        if self.goal is None:
            raise RuntimeError("call ObjectState.start() at the beginning of the subtask")
        self.observe(sources)
        fresh, _ = self.tracker.poses(now)
        if self.rule.object not in fresh:
            return None
        return self.frame.to_sim(fresh[self.rule.object][0]), self.goal.copy()
