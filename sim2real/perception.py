"""AprilTag perception: camera image -> object positions in the robot base frame, with their age.

The paper locates objects with AprilTags (tag36h11) seen by one RealSense at the table edge. Here:

* :class:`TagDetector` finds tags with pupil-apriltags (the AprilTag 3 library) and estimates each
  tag's pose from its four corners with OpenCV's ``solvePnP`` (``SOLVEPNP_IPPE_SQUARE``, the planar-square
  solver), so tags of different sizes share one detection pass; it reports the decision margin and the
  RMS reprojection error (px) of every detection.
* A tag map (:func:`load_tag_map`, YAML) says which object each tag id marks, the tag's size (edge of the
  black square, m) and the object's offset from the tag centre in the tag frame (x right, y down, z into
  the tag, as AprilTag defines it).
* :class:`ObjectTracker` keeps what passes the quality gates (``min_decision_margin``,
  ``max_reprojection_px``), maps it to the base frame with the camera extrinsics T_base<-camera
  (hand-eye calibration), smooths jitter with an exponential moving average, and reports each object
  with its age. An object older than ``max_age_s`` is invalid: :meth:`ObjectTracker.poses` leaves it out
  and names it in ``stale``, never reusing it silently.

Frames: camera = the colour camera's optical frame (z forward, x right, y down; REP-103 ``*_optical_frame``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class PerceptionError(ValueError):
    """Unusable perception input (tag map, intrinsics, extrinsics, image); the message says how to fix it."""


@dataclass(frozen=True)
class TagSpec:
    """One tag of the tag map: id (tag36h11), the object it marks, edge of its black square (m), offset (3,) m."""

    tag_id: int
    object: str
    size_m: float
    offset_m: tuple[float, float, float] = (0.0, 0.0, 0.0)


def load_tag_map(path: str | Path) -> dict[int, TagSpec]:
    """Read a tag map YAML: ``tags: [{id: 3, object: puck, size_m: 0.04, offset_m: [0, 0, 0.01]}, ...]``.

    Raises:
        PerceptionError: missing file, bad YAML, a duplicate id, a non-positive size or a bad offset.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
        entries = data["tags"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise PerceptionError(f"cannot read tag map {path}: {exc}; expected 'tags: [{{id, object, size_m, offset_m}}]'") from exc
    tags: dict[int, TagSpec] = {}
    for e in entries:
        try:
            spec = TagSpec(int(e["id"]), str(e["object"]), float(e["size_m"]),
                           tuple(float(v) for v in e.get("offset_m", (0.0, 0.0, 0.0))))
        except (KeyError, TypeError, ValueError) as exc:
            raise PerceptionError(f"tag map {path}: bad entry {e!r} ({exc})") from exc
        if spec.tag_id in tags:
            raise PerceptionError(f"tag map {path}: tag id {spec.tag_id} is listed twice")
        if not (np.isfinite(spec.size_m) and spec.size_m > 0) or len(spec.offset_m) != 3 \
                or not np.all(np.isfinite(spec.offset_m)):
            raise PerceptionError(f"tag map {path}: tag {spec.tag_id} needs size_m > 0 and a finite 3-d offset_m")
        tags[spec.tag_id] = spec
    return tags


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of an undistorted (rectified) image: focal lengths and principal point, px."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self):
        if not (self.fx > 0 and self.fy > 0 and self.width > 0 and self.height > 0):
            raise PerceptionError(f"intrinsics need fx, fy, width, height > 0, got {self}: is camera_info filled in?")

    @property
    def matrix(self) -> np.ndarray:
        """(3, 3) camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class TagObservation:
    """One detected tag: id, pose of the tag in the camera frame (R (3,3), t (3,) m), quality figures.

    ``ambiguity``: RMS reprojection error of the best pose over that of the second solution of the planar
    pose problem (IPPE gives two). Near 1, both fit the corners equally well and the rotation may be the
    flipped one (a small tag seen nearly face on); near 0 the pose is unique. Two solutions within
    :data:`SAME_POSE_DEG` of each other are one pose: ambiguity 0. ``alternative``: that second solution
    (R (3, 3), t (3,) m), or None. ``corners``: (4, 2) float64 px of the tag's corners in the whole image, in
    pupil-apriltags' order, or None.
    """

    tag_id: int
    rotation: np.ndarray
    translation: np.ndarray
    decision_margin: float
    reprojection_px: float
    ambiguity: float = 0.0
    alternative: tuple[np.ndarray, np.ndarray] | None = None
    corners: np.ndarray | None = None


#: Two planar pose solutions closer than this (deg) are the same pose for :attr:`TagObservation.ambiguity`.
SAME_POSE_DEG = 2.0


def _angle_deg(rvec_a, rvec_b) -> float:
    import cv2

    Ra, Rb = cv2.Rodrigues(np.asarray(rvec_a))[0], cv2.Rodrigues(np.asarray(rvec_b))[0]
    return float(np.degrees(np.arccos(np.clip((np.trace(Ra.T @ Rb) - 1) / 2, -1.0, 1.0))))


def _pupil_detector_class():
    """pupil-apriltags' ``Detector`` with its C resources freed in the right order.

    pupil-apriltags 1.0.4's ``Detector.__del__`` destroys the tag families before the detector, and the
    detector's destroy then reads them: a use-after-free (pupil-labs/apriltags PR #65, still open). Here it
    corrupted the heap and aborted the test process later, at random places. This subclass frees the detector
    first, then the families, as AprilTag's own example does.
    """
    import pupil_apriltags

    class Detector(pupil_apriltags.Detector):
        def __del__(self):
            ptr = getattr(self, "tag_detector_ptr", None)
            if ptr is None:
                return
            self.tag_detector_ptr = None
            self.libc.apriltag_detector_destroy.restype = None
            self.libc.apriltag_detector_destroy(ptr)
            for family, tf in self.tag_families.items():
                destroy = getattr(self.libc, f"{family}_destroy")
                destroy.restype = None
                destroy(tf)

    return Detector


class TagDetector:
    """tag36h11 detection (pupil-apriltags) and per-tag pose by ``cv2.solvePnP`` (IPPE_SQUARE).

    Args:
        tags: the tag map; tags not in it are ignored.
        threads: detector threads. quad_decimate: detector downsampling (1.0: full resolution).
    """

    def __init__(self, tags: dict[int, TagSpec], threads: int = 1, quad_decimate: float = 1.0):
        self.tags = tags
        self._detector = _pupil_detector_class()(families="tag36h11", nthreads=threads, quad_decimate=quad_decimate)

    def detect(self, gray: np.ndarray, intrinsics: Intrinsics,
               region: tuple[int, int, int, int] | None = None) -> list[TagObservation]:
        """Tags of the map seen in ``gray`` (H, W) uint8, with poses in the camera frame.

        Args:
            region: (x0, y0, x1, y1) px: search only this window of ``gray`` (clipped to the image); corners and
                poses stay those of the whole image. None: the whole image.

        Raises:
            PerceptionError: not a 2-d uint8 image of the intrinsics' size.
        """
        import cv2

        if gray.dtype != np.uint8 or gray.ndim != 2 or gray.shape != (intrinsics.height, intrinsics.width):
            raise PerceptionError(f"expected a {intrinsics.height}x{intrinsics.width} uint8 grey image, got "
                                  f"{gray.dtype} {gray.shape}")
        x0 = y0 = 0
        if region is not None:
            x0, y0 = max(int(region[0]), 0), max(int(region[1]), 0)
            x1, y1 = min(int(region[2]), intrinsics.width), min(int(region[3]), intrinsics.height)
            if x1 - x0 < 8 or y1 - y0 < 8:
                return []
            gray = np.ascontiguousarray(gray[y0:y1, x0:x1])  # the library needs a C-contiguous image
        out = []
        for d in self._detector.detect(gray):
            spec = self.tags.get(d.tag_id)
            if spec is None:
                continue
            corners = d.corners.astype(np.float64) + (x0, y0)
            h = spec.size_m / 2  # corners as pupil-apriltags orders them: (-1,+1), (+1,+1), (+1,-1), (-1,-1) in tag x, y
            corners_tag = np.array([[-h, h, 0.0], [h, h, 0.0], [h, -h, 0.0], [-h, -h, 0.0]])
            n, rvecs, tvecs, errors = cv2.solvePnPGeneric(corners_tag, corners, intrinsics.matrix,
                                                          None, flags=cv2.SOLVEPNP_IPPE_SQUARE)
            if not n:
                continue
            errors = np.asarray(errors, dtype=np.float64).ravel()  # RMS px, best first
            ambiguity = 0.0
            if n > 1 and _angle_deg(rvecs[0], rvecs[1]) > SAME_POSE_DEG:
                ambiguity = float(errors[0] / max(errors[1], 1e-12))
            alternative = (cv2.Rodrigues(rvecs[1])[0], np.asarray(tvecs[1]).ravel()) if n > 1 else None
            out.append(TagObservation(d.tag_id, cv2.Rodrigues(rvecs[0])[0], np.asarray(tvecs[0]).ravel(),
                                      float(d.decision_margin), float(errors[0]), min(ambiguity, 1.0), alternative,
                                      corners))
        return out


@dataclass
class ObjectTracker:
    """Object positions in the base frame from tag observations of one or more calibrated cameras (see the module
    docstring).

    Per object and image batch: every tag that passes the gates gives a candidate object point; a tag whose two
    planar pose solutions put the object point more than ``max_ambiguous_shift_m`` apart and fit the corners
    comparably (ambiguity above ``check_ambiguity``) gives two, and the one nearer the object's other evidence is
    kept: the unique candidates of the same batch (another tag, another camera), else the object's fresh estimate,
    else the closest pair of solutions of two such tags (each camera sees the flip differently). Without any of these
    evidence, a tag up to ``max_ambiguity`` keeps its best solution and one above is rejected. The kept candidates are
    averaged, then smoothed with the previous estimate.

    Args:
        tags: the tag map.
        base_from_camera: (4, 4) T_base<-camera (hand-eye calibration), m; or ``{camera name: (4, 4)}`` for several
            cameras (name the camera in :meth:`update`).
        min_decision_margin: reject weaker detections (pupil-apriltags' margin; ~30+ is a clean tag).
        max_reprojection_px: reject poses whose corners reproject worse than this, px.
        max_ambiguity, max_ambiguous_shift_m: a tag is ambiguous when :attr:`TagObservation.ambiguity` is above
            ``max_ambiguity`` (in rendered frames unique poses measured <= 0.17 and a 14 deg flip 0.38) and its two
            solutions put the object point more than ``max_ambiguous_shift_m`` apart (the flip matters through the
            tag-to-object offset).
        check_ambiguity: a tag above this (and whose flip moves the object point) is checked against the other
            evidence even when below ``max_ambiguity``: the table's peg plug tag, 3 cm seen obliquely past the
            gripper, had its flipped solution best at ambiguity 0.24, 7 cm off (the pull failed 3 of 3 attempts).
        smoothing: EMA weight of a new observation in (0, 1] (1: no smoothing).
        max_age_s: an object not seen for longer is stale.

    Raises:
        PerceptionError: an extrinsic that is not a finite rigid 4 x 4 transform, or smoothing outside (0, 1].
    """

    tags: dict[int, TagSpec]
    base_from_camera: np.ndarray | dict[str, np.ndarray]
    min_decision_margin: float = 30.0
    max_reprojection_px: float = 2.0
    max_ambiguity: float = 0.3
    check_ambiguity: float = 0.1
    max_ambiguous_shift_m: float = 0.005
    smoothing: float = 0.5
    max_age_s: float = 0.5
    rejected: dict[str, int] = field(default_factory=dict)
    _objects: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)

    def __post_init__(self):
        many = isinstance(self.base_from_camera, dict)
        extrinsics = self.base_from_camera if many else {None: self.base_from_camera}
        if not extrinsics:
            raise PerceptionError("base_from_camera names no camera; give T_base<-camera of at least one")
        self._extrinsics = {name: _rigid(T, name) for name, T in extrinsics.items()}
        if not 0 < self.smoothing <= 1:
            raise PerceptionError(f"smoothing must lie in (0, 1], got {self.smoothing}")
        self.base_from_camera = dict(self._extrinsics) if many else self._extrinsics[None]

    @property
    def cameras(self) -> list[str | None]:
        """The cameras this tracker has extrinsics for (``[None]`` for a single unnamed camera)."""
        return list(self._extrinsics)

    def update(self, observations: list[TagObservation], stamp: float, camera: str | None = None) -> None:
        """Take the detections of one image taken at ``stamp`` (s) by ``camera`` (None: the single camera).

        Raises:
            PerceptionError: a camera the tracker has no extrinsics for.
        """
        self.update_views({camera: observations}, stamp)

    def update_views(self, views: dict[str | None, list[TagObservation]], stamp: float) -> None:
        """Take the detections of several cameras' images taken together at ``stamp`` (s): ``{camera: detections}``.

        Raises:
            PerceptionError: a camera the tracker has no extrinsics for.
        """
        sure: dict[str, list[np.ndarray]] = {}
        ambiguous: dict[str, list[tuple[np.ndarray, np.ndarray, bool]]] = {}  # (best, other, best kept alone)
        for camera, observations in views.items():
            if camera not in self._extrinsics:
                raise PerceptionError(f"no extrinsics for camera {camera!r}; calibrated: {self.cameras}")
            T = self._extrinsics[camera]
            for o in observations:
                spec = self.tags[o.tag_id]
                if o.decision_margin < self.min_decision_margin:
                    self._reject("decision_margin")
                    continue
                if o.reprojection_px > self.max_reprojection_px:
                    self._reject("reprojection")
                    continue
                offset = np.asarray(spec.offset_m)
                p = T[:3, :3] @ (o.rotation @ offset + o.translation) + T[:3, 3]
                if o.ambiguity > self.check_ambiguity and o.alternative is not None:
                    p_alt = T[:3, :3] @ (o.alternative[0] @ offset + o.alternative[1]) + T[:3, 3]
                    if np.linalg.norm(p - p_alt) > self.max_ambiguous_shift_m:
                        ambiguous.setdefault(spec.object, []).append((p, p_alt, o.ambiguity <= self.max_ambiguity))
                        continue
                sure.setdefault(spec.object, []).append(p)
        for name in set(sure) | set(ambiguous):
            kept = sure.get(name, [])
            kept = kept + self._resolve(ambiguous.get(name, []), kept, name, stamp)
            if not kept:
                continue
            p_base = np.mean(kept, axis=0)
            previous = self._objects.get(name)
            if previous is not None and stamp - previous[1] <= self.max_age_s:
                p_base = self.smoothing * p_base + (1 - self.smoothing) * previous[0]
            self._objects[name] = (p_base, stamp)

    def _resolve(self, pairs: list[tuple[np.ndarray, np.ndarray, bool]], sure: list[np.ndarray], name: str,
                 stamp: float) -> list[np.ndarray]:
        """The solution of each checked tag nearer the other evidence (class docstring); rejects the rest."""
        if not pairs:
            return []
        previous = self._objects.get(name)
        if sure:
            reference = np.mean(sure, axis=0)
        elif previous is not None and stamp - previous[1] <= self.max_age_s:
            reference = previous[0]
        elif len(pairs) >= 2:  # two checked tags: the solutions that agree (a flip moves each its own way)
            reference = min((float(np.linalg.norm(a - b)), 0.5 * (a + b)) for i, pa in enumerate(pairs)
                            for pb in pairs[i + 1:] for a in pa[:2] for b in pb[:2])[1]
        else:  # no evidence: a tag below max_ambiguity keeps its best solution
            p, _, alone = pairs[0]
            if not alone:
                self._reject("ambiguity")
            return [p] if alone else []
        kept = []
        for p, p_alt, _ in pairs:
            near, far = sorted((p, p_alt), key=lambda q: float(np.linalg.norm(q - reference)))
            if np.linalg.norm(near - reference) < 0.5 * np.linalg.norm(near - far):
                kept.append(near)
            else:
                self._reject("ambiguity")
        return kept

    def _reject(self, why: str, n: int = 1) -> None:
        self.rejected[why] = self.rejected.get(why, 0) + n

    def poses(self, now: float) -> tuple[dict[str, tuple[np.ndarray, float]], list[str]]:
        """({object: (position (3,) m base frame, stamp s)} of fresh objects, [stale object names])."""
        fresh = {k: v for k, v in self._objects.items() if now - v[1] <= self.max_age_s}
        return fresh, sorted(set(self._objects) - set(fresh))


def _rigid(T, camera) -> np.ndarray:
    """``T`` as a (4, 4) float64 rigid transform; PerceptionError naming ``camera`` otherwise."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)) or not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-6) \
            or not np.allclose(T[3], [0, 0, 0, 1]):
        which = "" if camera is None else f" of camera {camera!r}"
        raise PerceptionError(f"base_from_camera{which} must be a finite 4x4 rigid transform (check the calibration file)")
    return T


def load_extrinsics(path: str | Path) -> np.ndarray:
    """T_base<-camera (4, 4) from an easy_handeye2-style YAML (``transform: {translation: {x,y,z}, rotation: {x,y,z,w}}``).

    Raises:
        PerceptionError: missing file, missing keys, non-finite values, or a quaternion that is not unit (±1e-3).
    """
    import yaml

    from sim2real.calibration import CalibrationError, transform_from_dict

    path = Path(path)
    try:
        return transform_from_dict(yaml.safe_load(path.read_text())["transform"], path)
    except CalibrationError as exc:
        raise PerceptionError(f"calibration {exc}; re-run the calibration") from exc
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise PerceptionError(f"cannot read calibration {path}: {exc!r}; expected easy_handeye2's "
                              "transform: {translation: {x, y, z}, rotation: {x, y, z, w}}") from exc
