"""The face crop the model sees: the detector's box reframed as the square FER+ faces were cut to.

FER+ faces (the training data) are squares a little wider than the face, eyebrows to chin; a
detector's box is tighter or looser, taller or wider, by detector. Each detector's
:class:`~app.core.faces.base.Framing` turns its box into that square. Parts of the square outside
the image are filled by repeating the edge pixels, so a face at the border keeps its framing.
With ``align`` and a detector that gives the eyes, the square is turned so the eyes are level.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from app.core.faces.base import Face, Framing


def square_of(face: Face, framing: Framing, margin: float = 0.0) -> tuple[float, float, float]:
    """Centre x, centre y and side of the square crop for ``face``; ``margin`` widens it per side."""
    box = face.box
    side = (box.width * framing.scale_w + box.height * framing.scale_h) / 2 * (1 + 2 * margin)
    cx = box.x + box.width / 2
    cy = box.y + box.height / 2 + framing.shift_y * side
    return cx, cy, side


def eye_angle(face: Face) -> float:
    """Degrees the face is turned in the image plane (0 when the eyes are level or unknown)."""
    if face.right_eye is None or face.left_eye is None:
        return 0.0
    (rx, ry), (lx, ly) = face.right_eye, face.left_eye
    if lx <= rx:  # implausible landmarks (a profile, a detector glitch): leave the face as it is
        return 0.0
    return math.degrees(math.atan2(ly - ry, lx - rx))


def face_crop(
    image: np.ndarray, face: Face, framing: Framing, *, margin: float = 0.0, align: bool = False
) -> np.ndarray:
    """The square crop of ``face`` from ``image`` (gray or RGB), at the image's own resolution."""
    cx, cy, side = square_of(face, framing, margin)
    size = max(1, round(side))
    angle = eye_angle(face) if align else 0.0
    if angle == 0.0:
        x0, y0 = round(cx - size / 2), round(cy - size / 2)
        height, width = image.shape[:2]
        rows = slice(max(0, y0), max(0, min(height, y0 + size)))
        inside = image[rows, max(0, x0) : max(0, min(width, x0 + size))]
        if inside.shape[:2] == (size, size):
            return inside
        if inside.size == 0:  # nothing of the square is in the image (cannot happen for a detected box)
            return np.zeros((size, size, *image.shape[2:]), image.dtype)
        return cv2.copyMakeBorder(
            inside,
            max(0, -y0),
            size - inside.shape[0] - max(0, -y0),
            max(0, -x0),
            size - inside.shape[1] - max(0, -x0),
            cv2.BORDER_REPLICATE,
        )
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
    matrix[:, 2] += (size / 2 - cx, size / 2 - cy)
    border = cv2.BORDER_REPLICATE
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=border)
