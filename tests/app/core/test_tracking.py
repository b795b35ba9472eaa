"""The IoU tracker and its smoothing, on boxes and probabilities made here (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.faces import Box
from app.core.tracking import Detection, FaceTracker, iou, signature, smoothing_alpha


def det(x: int, y: int, p: list[float], side: int = 100, sig: np.ndarray | None = None) -> Detection:
    return Detection(Box(x, y, side, side), np.array(p), sig)


def test_iou() -> None:
    a = Box(0, 0, 10, 10)
    assert iou(a, a) == 1.0
    assert iou(a, Box(20, 20, 10, 10)) == 0.0
    assert iou(a, Box(5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_smoothing_alpha_is_a_half_life() -> None:
    assert smoothing_alpha(0) == 1.0
    alpha = smoothing_alpha(2)
    assert (1 - alpha) ** 2 == pytest.approx(0.5)
    with pytest.raises(ValueError):
        smoothing_alpha(-1)


def test_a_face_keeps_its_id_while_it_moves_a_little_and_two_faces_keep_theirs() -> None:
    tracker = FaceTracker(half_life=0)
    first = tracker.update([det(0, 0, [1, 0]), det(300, 0, [0, 1])])
    ids = [face.track_id for face in first]
    assert ids == [1, 2]
    for step in range(1, 6):  # both drift right by 5 px a frame; order of detections swapped
        faces = tracker.update([det(300 + 5 * step, 0, [0, 1]), det(5 * step, 0, [1, 0])])
        assert [face.track_id for face in faces] == [2, 1]
    assert tracker.live_tracks == 2


def test_a_face_that_jumps_away_or_returns_too_late_gets_a_new_id() -> None:
    tracker = FaceTracker(max_missed=2)
    assert tracker.update([det(0, 0, [1, 0])])[0].track_id == 1
    assert tracker.update([det(500, 500, [1, 0])])[0].track_id == 2  # no overlap: a new face
    for _ in range(3):
        tracker.update([])
    assert tracker.live_tracks == 0  # both ended after max_missed frames unseen: state freed
    assert tracker.update([det(0, 0, [1, 0])])[0].track_id == 3


def test_a_face_missed_for_a_frame_or_two_keeps_its_id() -> None:
    tracker = FaceTracker(max_missed=3)
    tracker.update([det(0, 0, [1, 0])])
    tracker.update([])
    tracker.update([])
    assert tracker.update([det(3, 3, [1, 0])])[0].track_id == 1


def test_smoothing_per_track() -> None:
    tracker = FaceTracker(half_life=1)  # alpha 0.5
    tracker.update([det(0, 0, [1.0, 0.0])])
    face = tracker.update([det(0, 0, [0.0, 1.0])])[0]
    np.testing.assert_allclose(face.smoothed, [0.5, 0.5])
    np.testing.assert_allclose(face.detection.probabilities, [0.0, 1.0])  # raw kept as it came
    face = tracker.update([det(0, 0, [0.0, 1.0])])[0]
    np.testing.assert_allclose(face.smoothed, [0.25, 0.75])


def test_a_whole_frame_is_not_tracked() -> None:
    tracker = FaceTracker()
    face = tracker.update([Detection(None, np.array([0.3, 0.7]))])[0]
    assert face.track_id == 0 and tracker.live_tracks == 0


def test_another_face_in_the_same_place_starts_a_new_track() -> None:
    rng = np.random.default_rng(0)
    one = signature(rng.integers(0, 256, (48, 48), dtype=np.uint8))
    other = signature(rng.integers(0, 256, (48, 48), dtype=np.uint8))
    assert float(np.dot(one, one)) == pytest.approx(1.0, abs=1e-5)
    tracker = FaceTracker(min_similarity=0.75)
    assert tracker.update([det(0, 0, [1, 0], sig=one)])[0].track_id == 1
    assert tracker.update([det(0, 0, [1, 0], sig=one)])[0].track_id == 1
    assert tracker.update([det(0, 0, [1, 0], sig=other)])[0].track_id == 2


def test_tracks_are_bounded() -> None:
    tracker = FaceTracker(max_tracks=4)
    tracker.update([det(200 * i, 0, [1, 0]) for i in range(10)])
    assert tracker.live_tracks == 4
