"""Tag detection in regions of interest (sim2real.tag_tracking) with the real pupil-apriltags detector, on synthetic
camera images of real tag36h11 codes at known poses."""
import numpy as np
import pytest

from sim2real.perception import PerceptionError, TagDetector, TagSpec
from sim2real.tag_tracking import TrackingTagDetector, merged
from tag_images import D435, facing_camera, render

TAGS = {3: TagSpec(3, "object", 0.06), 8: TagSpec(8, "goal", 0.06)}
LEFT, RIGHT = np.array([-0.15, 0.0, 0.8]), np.array([0.15, 0.05, 0.9])


def frames(poses: list[list[tuple[int, np.ndarray]]]) -> list[np.ndarray]:
    return [render([(i, 0.06, facing_camera(0.2, 0.1), t) for i, t in placed], noise=2.0, seed=k)
            for k, placed in enumerate(poses)]


def test_a_region_search_gives_the_whole_frame_corners_and_pose():
    detector = TagDetector(TAGS)
    image = frames([[(3, LEFT), (8, RIGHT)]])[0]
    whole = {o.tag_id: o for o in detector.detect(image, D435)}
    lo, hi = whole[3].corners.min(axis=0), whole[3].corners.max(axis=0)
    window = detector.detect(image, D435, (lo[0] - 20, lo[1] - 20, hi[0] + 20, hi[1] + 20))
    assert [o.tag_id for o in window] == [3]  # the other tag lies outside the window
    assert np.abs(window[0].corners - whole[3].corners).max() < 0.5  # px, in the whole image
    assert np.linalg.norm(window[0].translation - whole[3].translation) < 1e-3
    assert detector.detect(image, D435, (700, 500, 800, 600)) == []  # outside the image: nothing, no error


def test_tracking_searches_windows_between_whole_frames_and_sees_what_the_whole_frame_sees():
    moving = [[(3, LEFT + [0.004 * k, 0.0, 0.0]), (8, RIGHT)] for k in range(10)]
    images = frames(moving)
    whole, tracking = TagDetector(TAGS), TrackingTagDetector(TagDetector(TAGS), full_frame_every=5)
    for image, placed in zip(images, moving):
        expected = {o.tag_id: o.translation for o in whole.detect(image, D435)}
        seen = {o.tag_id: o.translation for o in tracking.detect(image, D435)}
        assert set(seen) == set(expected) == {3, 8}
        for tag_id, t in placed:
            assert np.linalg.norm(seen[tag_id] - t) < 0.01
            assert np.linalg.norm(seen[tag_id] - expected[tag_id]) < 0.002
    assert (tracking.frames, tracking.full_frames) == (10, 2)  # frames 0 and 5


def test_a_tag_that_comes_into_view_is_found_at_the_next_whole_frame_and_a_lost_one_where_it_was_lost():
    tracking = TrackingTagDetector(TagDetector(TAGS), full_frame_every=3)
    moved = RIGHT + [0.0, -0.15, 0.0]  # out of tag 8's window
    scenes = [[(3, LEFT)], [(3, LEFT), (8, RIGHT)], [(3, LEFT), (8, RIGHT)], [(3, LEFT), (8, RIGHT)],  # 0-3
              [], [(3, LEFT), (8, RIGHT)],  # 4: both hidden, 5: back where they were lost
              [(3, LEFT), (8, moved)], [(3, LEFT), (8, moved)]]  # 6: whole frame, 7: tag 8's new window
    seen = [sorted(o.tag_id for o in tracking.detect(image, D435)) for image in frames(scenes)]
    # frames 1 and 2 search tag 3's window only; frame 3 is whole; frame 5 finds both in the windows kept since 3
    assert seen == [[3], [3], [3], [3, 8], [], [3, 8], [3, 8], [3, 8]]
    assert tracking.full_frames == 3  # frames 0, 3, 6
    tracking.reset()
    assert [o.tag_id for o in tracking.detect(frames([[(8, RIGHT)]])[0], D435)] == [8]
    assert tracking.full_frames == 4


def test_overlapping_windows_are_searched_once():
    assert sorted(merged([(0, 0, 10, 10), (20, 20, 30, 30), (5, 5, 25, 25)])) == [(0, 0, 30, 30)]
    assert sorted(merged([(0, 0, 10, 10), (10, 0, 20, 10)])) == [(0, 0, 10, 10), (10, 0, 20, 10)]


def test_bad_settings_are_refused():
    with pytest.raises(PerceptionError, match="full_frame_every"):
        TrackingTagDetector(TagDetector(TAGS), full_frame_every=0)
