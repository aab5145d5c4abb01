"""Perception in the loop for the simulated plant: the virtual RealSense through the real detection path.

:class:`CameraPerception` holds what is fixed for a run (tag map, extrinsics from a calibration file, detector)
and makes one :class:`sim2real.object_state.ObjectState` per subtask, fed with frames rendered by the plant's
virtual RealSense at the loop's stamps. Everything is checked when it is built, before anything moves.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from legion_policy.tasks import load_task_library
from sim2real.goals import GoalRule
from sim2real.object_state import ObjectState
from sim2real.perception import ObjectTracker, PerceptionError, TagDetector, load_extrinsics, load_tag_map
from sim2real.tag_tracking import TrackingTagDetector
from sim2real.transforms import FrameTransform

#: The extrinsics the main job uses with the virtual camera, written by ``legion calibrate-sim`` (relative to the
#: working directory, the repository root, like the default checkpoint ``models/...``).
SIM_CALIBRATION = Path("calibration/sim_camera_extrinsics.yaml")


@dataclass
class CameraPerception:
    """Object and goal positions from the virtual camera (see the module docstring).

    Args:
        calibration: easy_handeye2-style YAML with T_base<-camera (``legion calibrate``).
        tag_map: tag map YAML; default the simulated scene's.
        frame: T_sim<-base of the chain.
        max_age_s: an object older than this is not used (the loop holds).
        quad_decimate: detector downsampling.
        full_frame_every: the detector searches windows around the tags it saw last and the whole frame every
            n-th frame (:class:`sim2real.tag_tracking.TrackingTagDetector`; 1: every frame whole).

    Raises:
        PerceptionError: unreadable calibration or tag map.
    """

    calibration: Path = SIM_CALIBRATION
    tag_map: Path | None = None
    frame: FrameTransform | None = None
    max_age_s: float = 0.15
    quad_decimate: float = 1.0
    full_frame_every: int = 5

    def __post_init__(self):
        from legion_sim.camera import sim_tag_map_path

        from legion_runtime.paths import project_path

        self.base_from_camera = load_extrinsics(project_path(self.calibration))
        self.tags = load_tag_map(self.tag_map or sim_tag_map_path())
        self.frame = self.frame or FrameTransform.default()
        self.detector = TagDetector(self.tags, quad_decimate=self.quad_decimate)

    def rule(self, env_id: str) -> GoalRule:
        """The goal rule of a subtask, from the task library. Raises PerceptionError for a task without one or with
        unmapped objects."""
        try:
            rule = load_task_library().by_env_id(env_id).goal_rule
        except KeyError as exc:
            raise PerceptionError(f"no goal rule for {env_id!r} ({exc.args[0]}); add the subtask to the task "
                                  "library (legion_policy/data/task_library.yaml)") from exc
        mapped = {t.object for t in self.tags.values()}
        missing = {rule.object, rule.goal_object} - mapped - {None}
        if missing:
            raise PerceptionError(f"the tag map has no tag for {sorted(missing)}, which {env_id} needs")
        return rule

    def for_subtask(self, plant, env_id: str) -> "SubtaskPerception":
        """Perception for one subtask on ``plant`` (a ``KukaPlant``, rendered by its virtual RealSense)."""
        tracker = ObjectTracker(self.tags, self.base_from_camera, max_age_s=self.max_age_s)
        state = ObjectState(TrackingTagDetector(self.detector, self.full_frame_every), tracker, self.frame,
                            self.rule(env_id))
        return SubtaskPerception(state, plant.camera())


@dataclass
class SubtaskPerception:
    """One subtask's object state fed by a virtual camera; call it as the control loop's ``objects``.

    ``start(stamp_s)`` derives the goal (raises ``ObjectNotSeenError``); ``self(stamp_s)`` renders a frame at
    ``stamp_s`` and returns ((3,), (3,)) sim-frame object and goal, or None while the object is not seen.
    ``camera`` None stands for a camera that delivers nothing (cable pulled, driver dead).
    """

    state: ObjectState
    camera: object | None
    _now: float = 0.0

    def _source(self):
        import cv2

        if self.camera is None:
            return None
        return cv2.cvtColor(self.camera.grab(), cv2.COLOR_RGB2GRAY), self.camera.intrinsics, self._now

    def start(self, stamp_s: float) -> np.ndarray:
        self._now = stamp_s
        return self.state.start(self._source, stamp_s)

    def __call__(self, stamp_s: float):
        self._now = stamp_s
        return self.state.positions(self._source, stamp_s)
