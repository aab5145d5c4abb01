"""Perception in the loop for the simulated plant: the virtual RealSense through the real detection path.

:class:`CameraPerception` holds what is fixed for a run (tag map, extrinsics from a calibration file, detector)
and makes one :class:`sim2real.object_state.ObjectState` per subtask, fed with frames rendered by the plant's
virtual RealSense at the loop's stamps. Everything is checked when it is built, before anything moves.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from legion_language.tasks import load_task_library
from sim2real.goals import GoalRule, ObjectNotSeenError
from sim2real.object_state import ObjectState
from sim2real.perception import ObjectTracker, PerceptionError, TagDetector, load_extrinsics, load_tag_map
from sim2real.tag_tracking import TrackingTagDetector
from sim2real.transforms import FrameTransform

#: The extrinsics the main job uses with the virtual camera, written by ``legion calibrate-sim`` (relative to the
#: working directory, the repository root, like the default checkpoint ``models/...``).
SIM_CALIBRATION = Path("calibration/sim_camera_extrinsics.yaml")


def sim_calibration(camera: str) -> Path:
    """Where ``legion calibrate-sim --camera CAMERA`` writes the extrinsics of a simulated camera: the single-task
    scenes' RealSense (``realsense_color``) at :data:`SIM_CALIBRATION`, the table's as
    ``calibration/sim_<camera>_extrinsics.yaml``."""
    from legion_sim.camera import REALSENSE_CAMERA

    return SIM_CALIBRATION if camera == REALSENSE_CAMERA else Path(f"calibration/sim_{camera}_extrinsics.yaml")


@dataclass
class CameraPerception:
    """Object and goal positions from the virtual cameras (see the module docstring).

    Args:
        calibration: easy_handeye2-style YAML with T_base<-camera (``legion calibrate``) of the single camera
            (``realsense_color``), or ``{camera name: YAML}`` for several (the table's two RealSenses).
        tag_map: tag map YAML; default the simulated scene's.
        frame: T_sim<-base of the chain.
        max_age_s: an object older than this is not used as a measurement.
        max_predict_s: an object the hand hides is then predicted for this long (carried with the hand when it was
            at the hand, else where it was last seen; :class:`sim2real.object_state.ObjectState`), s; 0: the loop holds.
        quad_decimate: detector downsampling.
        full_frame_every: the detector searches windows around the tags it saw last and the whole frame every
            n-th frame (:class:`sim2real.tag_tracking.TrackingTagDetector`; 1: every frame whole).

    Raises:
        PerceptionError: unreadable calibration or tag map.
    """

    calibration: Path | dict[str, Path] = SIM_CALIBRATION
    tag_map: Path | None = None
    frame: FrameTransform | None = None
    max_age_s: float = 0.15
    max_predict_s: float = 0.0
    quad_decimate: float = 1.0
    full_frame_every: int = 5

    def __post_init__(self):
        from legion_sim.camera import REALSENSE_CAMERA, sim_tag_map_path

        from legion_runtime.paths import project_path

        files = self.calibration if isinstance(self.calibration, dict) else {REALSENSE_CAMERA: self.calibration}
        self.extrinsics = {name: load_extrinsics(project_path(path)) for name, path in files.items()}
        self.tags = load_tag_map(self.tag_map or sim_tag_map_path())
        self.frame = self.frame or FrameTransform.default()
        self.detector = TagDetector(self.tags, quad_decimate=self.quad_decimate)

    @property
    def base_from_camera(self) -> np.ndarray:
        """(4, 4) T_base<-camera of the single camera (PerceptionError with several: see :attr:`extrinsics`)."""
        if len(self.extrinsics) != 1:
            raise PerceptionError(f"{len(self.extrinsics)} cameras: read CameraPerception.extrinsics")
        return next(iter(self.extrinsics.values()))

    def rule(self, env_id: str) -> GoalRule:
        """The goal rule of a subtask, from the task library. Raises PerceptionError for a task without one or with
        unmapped objects."""
        try:
            rule = load_task_library().by_env_id(env_id).goal_rule
        except KeyError as exc:
            raise PerceptionError(f"no goal rule for {env_id!r} ({exc.args[0]}); add the subtask to the task "
                                  "library (legion_language/data/task_library.yaml)") from exc
        mapped = {t.object for t in self.tags.values()}
        missing = {rule.object, rule.goal_object} - mapped - {None}
        if missing:
            raise PerceptionError(f"the tag map has no tag for {sorted(missing)}, which {env_id} needs")
        return rule

    def for_subtask(self, cameras, env_id: str) -> "SubtaskPerception":
        """Perception for one subtask.

        Args:
            cameras: ``{camera name: VirtualRealSense}`` of the plant (a camera None delivers nothing), one per
                calibrated camera; or a plant, whose ``camera()`` is the single camera.

        Raises:
            PerceptionError: a camera without a calibration, or a calibrated camera missing.
        """
        from legion_sim.camera import REALSENSE_CAMERA

        if not isinstance(cameras, dict):
            cameras = {REALSENSE_CAMERA: cameras.camera()}
        if set(cameras) != set(self.extrinsics):
            raise PerceptionError(f"cameras {sorted(cameras)} but calibrations for {sorted(self.extrinsics)}")
        tracker = ObjectTracker(self.tags, dict(self.extrinsics), max_age_s=self.max_age_s)
        detectors = {name: TrackingTagDetector(self.detector, self.full_frame_every) for name in cameras}
        return SubtaskPerception(ObjectState(detectors, tracker, self.frame, self.rule(env_id),
                                             max_predict_s=self.max_predict_s), cameras)


@dataclass
class SubtaskPerception:
    """One subtask's object state fed by the virtual cameras; call it as the control loop's ``objects``.

    ``start(stamp_s, initial=None)`` derives the goal (from ``initial`` when given; raises ``ObjectNotSeenError``);
    ``self(stamp_s, tcp=None, holding=False)`` renders a frame of each camera at ``stamp_s`` and returns ((3,), (3,))
    sim-frame object and goal, or None while the object is not seen (nor held or predicted from the measured TCP
    ``tcp``, sim frame, m, and the gripper's ``holding``: :class:`sim2real.object_state.ObjectState`). A camera None
    stands for one that delivers nothing (cable pulled, driver dead).
    """

    state: ObjectState
    cameras: dict[str, object | None]
    _now: float = 0.0

    @property
    def camera(self):
        """The first camera (the single one of a single-task scene)."""
        return next(iter(self.cameras.values()))

    @camera.setter
    def camera(self, value) -> None:
        self.cameras = {name: value for name in self.cameras}

    def _sources(self):
        return {name: (lambda camera=camera: self._grab(camera)) for name, camera in self.cameras.items()}

    def _grab(self, camera):
        import cv2

        if camera is None:
            return None
        return cv2.cvtColor(camera.grab(), cv2.COLOR_RGB2GRAY), camera.intrinsics, self._now

    def start(self, stamp_s: float, initial: dict[str, np.ndarray] | None = None) -> np.ndarray:
        self._now = stamp_s
        return self.state.start(self._sources(), stamp_s, initial)

    def seen(self) -> dict[str, np.ndarray]:
        """{object: (3,) sim frame, m} fresh after the last frame."""
        return self.state.seen(self._now)

    @property
    def goal(self) -> np.ndarray | None:
        """(3,) sim frame, m: the goal :meth:`start` derived (None before)."""
        return self.state.goal

    def reaffirm(self, stamp_s: float) -> None:
        """The last sighting stands as of ``stamp_s`` (:meth:`sim2real.object_state.ObjectState.reaffirm`)."""
        self.state.reaffirm(stamp_s)

    @property
    def predicted(self) -> bool:
        """Whether the last call's object position was predicted (its tags not seen, not held), not measured."""
        return self.state.predicted

    def __call__(self, stamp_s: float, tcp: np.ndarray | None = None, holding: bool = False):
        self._now = stamp_s
        return self.state.positions(self._sources(), stamp_s, tcp, holding)


#: How long the table's runner predicts an object the hand hides, s (:attr:`CameraPerception.max_predict_s`): the
#: longest run of steps a reference run of either command has its object's tags hidden is 21 cycles (1.05 s).
TABLE_MAX_PREDICT_S = 2.0


def table_calibrations() -> dict[str, Path]:
    """``{camera name: extrinsics file}`` of the table's RealSenses (``legion calibrate-sim --camera NAME``)."""
    from legion_sim.table_scene import TABLE_REALSENSES

    return {name: sim_calibration(name) for name in TABLE_REALSENSES}


@dataclass
class TableCameraPerception:
    """The table scene seen by its two RealSenses through the detector, the tag map and each camera's calibration:
    what the long-horizon runner perceives with ``perception="camera"`` (the same interface as
    :class:`legion_runtime.long_horizon.TablePerception`, which reads the simulator).

    Args:
        plant: the :class:`legion_sim.table_scene.TablePlant`.
        hidden: objects reported as not seen (their tags are taken as covered).
        camera: the perception set-up (default: the table cameras' calibrations, :func:`table_calibrations`, and
            :data:`TABLE_MAX_PREDICT_S`).

    Raises:
        PerceptionError: a missing or unreadable calibration (run ``legion calibrate-sim --camera NAME``).
    """

    plant: object
    hidden: frozenset[str] = frozenset()
    camera: CameraPerception | None = None
    #: the sequencer's ``confirm_steps``: with the plug's 2-4 mm error at its 7 cm threshold, perception judged it
    #: a step before the simulator did in 6 of 20 "clean the table" trials when one step sufficed
    confirm_steps = 3

    def __post_init__(self):
        self.camera = self.camera or CameraPerception(table_calibrations(), max_predict_s=TABLE_MAX_PREDICT_S)
        self.cameras = self.plant.table_cameras()

    def seen(self, stamp_s: float = 0.0) -> dict[str, np.ndarray]:
        """{object: (3,) sim frame, m} found in one whole frame of each camera taken at ``stamp_s``."""
        import cv2

        tracker = ObjectTracker(self.camera.tags, dict(self.camera.extrinsics), max_age_s=self.camera.max_age_s)
        tracker.update_views({name: self.camera.detector.detect(cv2.cvtColor(cam.grab(), cv2.COLOR_RGB2GRAY),
                                                                cam.intrinsics)
                              for name, cam in self.cameras.items()}, stamp_s)
        fresh, _ = tracker.poses(stamp_s)
        return {k: self.camera.frame.to_sim(p) for k, (p, _) in fresh.items() if k not in self.hidden}

    def tracker(self, subtask, initial: dict[str, np.ndarray], stamp_s: float = 0.0) -> SubtaskPerception:
        """The control loop's ``objects`` for ``subtask``, started at ``stamp_s``: its goal from ``initial`` (what was
        seen when the command was given) where that holds the goal's source, else from what is seen now; objects seen
        now for the first time are added to ``initial`` (their first sighting).

        Raises:
            ObjectNotSeenError: the object is not seen now, or the goal's source was never seen.
        """
        if subtask.object in self.hidden:
            raise ObjectNotSeenError(f"{subtask.object!r} is not seen by the camera")
        objects = self.camera.for_subtask(self.cameras, subtask.env_id)
        objects.start(stamp_s, {k: v for k, v in initial.items() if k not in self.hidden})
        for name, position in objects.seen().items():
            if name not in self.hidden:
                initial.setdefault(name, position)
        return objects
