"""Object and goal positions for the policy's observation, from camera frames through the tag detector.

This is the perception node's and the Real2Sim node's object path in one class, used by the in-process
runner with the virtual RealSense and by the nodes with the real one:

    frame of each camera (grey, intrinsics, stamp) ─► (Tracking)TagDetector per camera
        ─► ObjectTracker (each camera's extrinsics, gates, fusion of the cameras, EMA, age, base frame)
        ─► sim frame ─► object position (every cycle) and goal (once, from the initial detection: GoalRule)

A subtask starts only when its object (and goal marker) is seen; afterwards an object that is not seen for
``max_age_s`` (occlusion, dropped frames, no camera) makes :meth:`ObjectState.positions` return None, and the
control loop holds: a stale position is never used as a measurement.

Occlusion by the hand (``max_predict_s`` > 0). While the cameras deliver frames but the object's tags are hidden:
- held: the object was last seen within ``hand_radius_m`` of the TCP while the gripper reported an object between
  its fingers (closed on it and stopped short of closed, the 2F-85's object-detected status), and the gripper has
  reported it ever since: its position is the measured TCP plus the TCP-to-object offset of that sighting. That is
  a measurement (proprioception), :attr:`ObjectState.source` ``"hand"``. Seen only before the fingers closed, the
  object may have been pushed by them (a plug moved 2 cm while they closed on it, and a hand measurement from the
  sighting before called it pulled out); released since, it may have slipped or turned. Then the hand does not
  measure it until the cameras see it again;
- otherwise it is predicted for up to ``max_predict_s``: carried with the hand (last sighting + the TCP's motion
  since) when it was within ``hand_radius_m`` of the TCP then (pressed or pushed), else where it was last seen
  (nothing else moves it); ``source`` ``"prediction"``, and success is never judged on a prediction.
With no frame at all (camera dead), or after ``max_predict_s``, positions are None: the loop holds.

Loose objects on the table (the rule's ``rest_z_m``: the pucks). A camera measures an object's height worst (the
line of sight runs down at the table), and the pick-place skill fails 10 times in 10 on a puck read 3 mm high.
A measured height within :data:`REST_BAND_M` of the resting height, while the gripper does not hold the object, is
taken as lying on the table: z = ``rest_z_m`` (:func:`on_table`). Lifted in the gripper, or more than the band off
the table, the measurement stands.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sim2real.goals import GoalRule, ObjectNotSeenError
from sim2real.perception import Intrinsics, ObjectTracker, TagDetector
from sim2real.tag_tracking import TrackingTagDetector
from sim2real.transforms import FrameTransform

#: A measured height this close to a loose object's resting height means it lies on the table, m. The table cameras'
#: puck heights at rest are off by up to 3-5 mm (docs/long-horizon.md, "make the coffee" through the cameras); a held puck is not
#: snapped at all, and one that slid off the gripper is rarely lifted less than this.
REST_BAND_M = 0.006


def on_table(position: np.ndarray, rest_z_m: float | None, holding: bool, band_m: float = REST_BAND_M) -> np.ndarray:
    """A measured object point with the table as support: z set to ``rest_z_m`` when within ``band_m`` of it and the
    gripper does not hold the object; otherwise (or ``rest_z_m`` None) unchanged.

    Args:
        position: (3,) measured object point, sim frame (the table top at z = 0), m.
        rest_z_m: the object point's z while it lies on the table (task library ``object_rest_z_m``), m, or None.
        holding: the gripper reports an object between its fingers.
        band_m: how far from ``rest_z_m`` a height still counts as lying on the table, m.

    Returns:
        (3,) float64, a new array.
    """
    out = np.array(position, dtype=np.float64)
    if rest_z_m is not None and not holding and abs(out[2] - rest_z_m) <= band_m:
        out[2] = rest_z_m
    return out


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
        max_predict_s: how long an occluded object is predicted (see the module docstring), s; 0: never, nor
            measured by the hand (the loop holds at once).
        hand_radius_m: an object this close to the TCP (sim frame) at its last sighting moves with the hand, m.

    Raises:
        ValueError: a detector for a camera the tracker has no extrinsics for.
    """

    detectors: dict[str | None, TagDetector | TrackingTagDetector]
    tracker: ObjectTracker
    frame: FrameTransform
    rule: GoalRule
    goal: np.ndarray | None = None
    max_predict_s: float = 0.0
    hand_radius_m: float = 0.06
    #: where the last :meth:`positions` came from: "camera", "hand" (held, measured by the arm) or "prediction"
    source: str = field(default="camera", init=False)
    _last: tuple | None = field(default=None, init=False, repr=False)  # (object (3,) sim, TCP (3,) sim | None, s)
    #: the grasp since the last sighting: "held" (held then and since), "open" (not held then), "lost" (released)
    _grasp: str = field(default="open", init=False, repr=False)

    def __post_init__(self):
        if unknown := set(self.detectors) - set(self.tracker.cameras):
            raise ValueError(f"cameras {sorted(map(str, unknown))} have no extrinsics in the tracker "
                             f"({self.tracker.cameras}); calibrate them")

    def observe(self, sources: dict[str | None, FrameSource]) -> int:
        """Take one frame from each camera's source (those that deliver one) into the tracker; frames of one call
        that carry the same stamp are fused as one view (:meth:`ObjectTracker.update_views`). Returns the number of
        frames delivered."""
        by_stamp: dict[float, dict] = {}
        for camera, source in sources.items():
            grabbed = source()
            if grabbed is not None:
                gray, intrinsics, stamp = grabbed
                by_stamp.setdefault(stamp, {})[camera] = self.detectors[camera].detect(gray, intrinsics)
        for stamp in sorted(by_stamp):
            self.tracker.update_views(by_stamp[stamp], stamp)
        return sum(map(len, by_stamp.values()))

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
        self._last = (seen[self.rule.object].copy(), None, now)  # a sighting (the hand's position then unknown)
        self._grasp = "open"
        return self.goal

    def reaffirm(self, now: float) -> None:
        """Let the last sighting stand as a sighting at ``now`` (s): the caller moved the arm since only through free
        space above the objects (the long-horizon runner's way back from a look pose to the skill's start), so
        nothing touched the object. Until the cameras see it again it is then predicted where it was seen, for up
        to ``max_predict_s`` from ``now``, as after any sighting. Nothing to do before a first sighting."""
        if self._last is not None:
            position, _, _ = self._last
            self._last = (position, None, now)

    @property
    def predicted(self) -> bool:
        """Whether the last :meth:`positions` was a prediction, not a measurement (camera or hand)."""
        return self.source == "prediction"

    def positions(self, sources: dict[str | None, FrameSource], now: float, tcp: np.ndarray | None = None,
                  holding: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """Observe a frame of each camera; (object (3,), goal (3,)) in the sim frame, or None if the object is stale
        and not held or predicted (see the module docstring; :attr:`source` says which).

        Args:
            tcp: (3,) measured TCP, sim frame, m (None: nothing is inferred from the hand).
            holding: the gripper reports an object between its fingers.

        Raises:
            RuntimeError: :meth:`start` was not called.
        """
        if self.goal is None:
            raise RuntimeError("call ObjectState.start() at the beginning of the subtask")
        delivered = self.observe(sources)
        fresh, _ = self.tracker.poses(now)
        name = self.rule.object
        if self._grasp == "held" and not holding:  # released since the sighting: it may have slipped or turned
            self._grasp = "lost"
        if name in fresh:
            self.source = "camera"
            position, stamp = on_table(self.frame.to_sim(fresh[name][0]), self.rule.rest_z_m, holding), fresh[name][1]
            if stamp == now:  # measured in this cycle's frames: the hand's position then is known
                self._last = (position, None if tcp is None else np.asarray(tcp, float).copy(), now)
                self._grasp = "held" if holding else "open"
            return position, self.goal.copy()
        self.source = "prediction"
        if not delivered or self._last is None or tcp is None:
            return None
        position, tcp_then, stamp = self._last
        at_hand = tcp_then is not None and np.linalg.norm(position - tcp_then) <= self.hand_radius_m
        if at_hand and self._grasp == "held" and self.max_predict_s > 0:
            self.source = "hand"
        elif now - stamp > self.max_predict_s:
            return None
        if at_hand:
            position = position + (np.asarray(tcp, float) - tcp_then)
        return position.copy(), self.goal.copy()
