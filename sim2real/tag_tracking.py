"""Tag detection in regions of interest: search around the tags seen last, the whole frame now and then.

pupil-apriltags' cost grows with the pixels it searches: on a 640 x 480 frame at full resolution (``quad_decimate``
1.0, which the scene's small, steeply seen tags need: at 2.0 the reach scene lost its puck or goal in 12 of 20
episodes) it takes about 25 ms of a core. The tags move little between frames, so :class:`TrackingTagDetector`
searches a window around each tag it has seen and the whole frame every ``full_frame_every``-th frame (and whenever
it has no window), which finds tags that come into view or moved out of their windows. A tag that is lost (an arm
passing in front of it) keeps its window until that whole-frame search, so it is found again in the first frame it
shows in. Each whole frame replaces the windows by those of the tags it sees. Detections, poses and quality figures
are those of :meth:`sim2real.perception.TagDetector.detect`, in the whole image's pixels and camera frame.
"""
from __future__ import annotations

import numpy as np

from sim2real.perception import Intrinsics, PerceptionError, TagDetector, TagObservation


class TrackingTagDetector:
    """:class:`TagDetector` searching windows around the tags it saw last (see the module docstring).

    Args:
        detector: the tag detector (its tag map, threads and decimation).
        full_frame_every: search the whole frame on every n-th frame (1: every frame, no windows). A tag that comes
            into view is found within n frames.
        margin_px, margin_scale: a window is the tag's corner bounding box grown on each side by ``margin_px`` plus
            ``margin_scale`` times the box's longer side (room for the tag's motion between two frames), px.

    Raises:
        PerceptionError: ``full_frame_every`` < 1 or a negative margin.
    """

    def __init__(self, detector: TagDetector, full_frame_every: int = 5, margin_px: float = 16.0,
                 margin_scale: float = 0.5):
        if int(full_frame_every) < 1 or margin_px < 0 or margin_scale < 0:
            raise PerceptionError(f"full_frame_every must be >= 1 and the margins >= 0, got {full_frame_every}, "
                                  f"{margin_px}, {margin_scale}")
        self.detector, self.full_frame_every = detector, int(full_frame_every)
        self.margin_px, self.margin_scale = float(margin_px), float(margin_scale)
        self.frames = self.full_frames = 0
        self._windows: dict[int, tuple[int, int, int, int]] = {}

    def reset(self) -> None:
        """Forget the windows: the next frame is searched whole (a new scene, a moved camera)."""
        self._windows.clear()

    def detect(self, gray: np.ndarray, intrinsics: Intrinsics) -> list[TagObservation]:
        """Tags of the map seen in ``gray`` (H, W) uint8, as :meth:`TagDetector.detect` returns them.

        Raises:
            PerceptionError: not a 2-d uint8 image of the intrinsics' size.
        """
        whole = not self._windows or self.frames % self.full_frame_every == 0
        self.frames += 1
        if whole:
            self.full_frames += 1
            seen = self.detector.detect(gray, intrinsics)
        else:
            best: dict[int, TagObservation] = {}
            for window in merged(self._windows.values()):
                for o in self.detector.detect(gray, intrinsics, window):
                    if o.tag_id not in best or o.decision_margin > best[o.tag_id].decision_margin:
                        best[o.tag_id] = o
            seen = list(best.values())
        found = {o.tag_id: self.window(o.corners) for o in seen if o.corners is not None}
        self._windows = found if whole else {**self._windows, **found}  # a lost tag keeps its window till a whole frame
        return seen

    def window(self, corners: np.ndarray) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) px: the search window around a tag with ``corners`` (4, 2) px (``TagDetector.detect``
        clips it to the image)."""
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        pad = self.margin_px + self.margin_scale * float(np.max(hi - lo))
        return int(lo[0] - pad), int(lo[1] - pad), int(np.ceil(hi[0] + pad)), int(np.ceil(hi[1] + pad))


def merged(windows) -> list[tuple[int, int, int, int]]:
    """Overlapping windows (x0, y0, x1, y1) joined into their bounding boxes, so no pixel is searched twice."""
    out: list[list[int]] = []
    for w in windows:
        box = list(w)
        joined = True
        while joined:  # a grown box may now overlap boxes it missed before
            joined = False
            for other in out:
                if box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]:
                    box = [min(box[0], other[0]), min(box[1], other[1]), max(box[2], other[2]), max(box[3], other[3])]
                    out.remove(other)
                    joined = True
                    break
        out.append(box)
    return [tuple(b) for b in out]
