"""What every face detector returns, and the contract a detector keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

# Which faces of an image are classified: the largest, every one, or none (the whole image).
FaceMode = Literal["largest", "all", "off"]

Point = tuple[float, float]


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Framing:
    """How a detector's box maps to the square face crop the model was trained on (FER's framing).

    The crop's side is ``(width * scale_w + height * scale_h) / 2`` and its centre sits ``shift_y``
    crop sides below the box centre (negative: above). Each detector draws its boxes differently, so
    each has its own framing, fitted by ``python -m bench.face_crops --fit``.
    """

    scale_w: float
    scale_h: float
    shift_y: float


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixels of the image it was found in."""

    box: Box
    confidence: float | None  # the detector's score in [0, 1]; None: the detector gives none (Haar)
    right_eye: Point | None = None  # the subject's right eye (on the image's left), when given
    left_eye: Point | None = None


class FaceDetector(Protocol):
    """Finds faces; safe to call from several threads at once."""

    name: str
    framing: Framing

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in ``image`` (uint8 gray or RGB) coordinates, largest first."""
        ...


def clip_box(x: float, y: float, w: float, h: float, width: int, height: int) -> Box:
    """A box rounded to pixels and clipped to a ``width`` x ``height`` image (maybe empty)."""
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0))
