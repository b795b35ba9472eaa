"""The training-like face crop: square, framed by the detector's Framing, edges repeated, eyes levelled."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.core.faces import Box, Face, Framing, face_crop, square_of
from app.core.faces.cropping import eye_angle

SQUARE = Framing(scale_w=1.0, scale_h=1.0, shift_y=0.0)


def test_square_of_follows_the_framing() -> None:
    face = Face(box=Box(100, 200, 80, 120), confidence=0.9)
    cx, cy, side = square_of(face, Framing(scale_w=1.25, scale_h=0.75, shift_y=-0.1))
    assert side == pytest.approx((80 * 1.25 + 120 * 0.75) / 2)
    assert (cx, cy) == pytest.approx((140, 260 - 0.1 * side))
    assert square_of(face, SQUARE, margin=0.25)[2] == pytest.approx(100 * 1.5)


def test_a_crop_inside_the_image_is_the_pixels_themselves() -> None:
    image = np.arange(100 * 120, dtype=np.uint32).reshape(100, 120).astype(np.uint8)
    face = Face(box=Box(30, 20, 40, 40), confidence=None)
    crop = face_crop(image, face, SQUARE)
    np.testing.assert_array_equal(crop, image[20:60, 30:70])


def test_a_crop_past_the_border_repeats_the_edge_and_stays_square() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, :50] = 200  # left half bright
    face = Face(box=Box(0, 0, 40, 40), confidence=0.9)
    crop = face_crop(image, face, SQUARE, margin=0.5)  # an 80 px square centred at (20, 20)
    assert crop.shape == (80, 80, 3)
    assert (crop[:, :70] == 200).all()  # the bright left edge repeated to the left and up
    assert (crop[:, 70:] == 0).all()


def test_eye_angle_and_alignment_level_the_eyes() -> None:
    image = np.zeros((200, 200), np.uint8)
    right, left = (70.0, 100.0), (130.0, 130.0)  # the left eye lower: the face is turned by ~26.6 degrees
    for x, y in (right, left):
        cv2.circle(image, (int(x), int(y)), 6, 255, -1)
    face = Face(box=Box(50, 60, 100, 100), confidence=0.9, right_eye=right, left_eye=left)
    assert eye_angle(face) == pytest.approx(np.degrees(np.arctan2(30, 60)))
    aligned = face_crop(image, face, SQUARE, align=True)
    assert aligned.shape == (100, 100)
    ys, xs = np.nonzero(aligned > 128)
    left_blob, right_blob = ys[xs >= 50], ys[xs < 50]
    assert abs(left_blob.mean() - right_blob.mean()) < 2  # level now
    # Not aligned: the blobs stay where they were.
    plain = face_crop(image, face, SQUARE)
    ys, xs = np.nonzero(plain > 128)
    assert ys[xs >= 50].mean() - ys[xs < 50].mean() > 20


def test_no_eyes_or_implausible_eyes_mean_no_turn() -> None:
    assert eye_angle(Face(box=Box(0, 0, 10, 10), confidence=None)) == 0.0
    swapped = Face(box=Box(0, 0, 10, 10), confidence=0.9, right_eye=(8, 5), left_eye=(2, 5))
    assert eye_angle(swapped) == 0.0
