"""Finding faces on the CPU with OpenCV's Haar cascade (shipped inside opencv-python-headless 4.x).

The CK+48 crops the model learns from are themselves Haar-cascade face boxes (a padded CK+48 crop
is detected as the whole crop), so a detected box is the framing the model expects. Small images
(thumbnails, crops) are padded and enlarged before detection, so a face that already fills the
frame, such as a 48x48 CK+48 crop, is found. Histogram equalisation and a fine scale step (1.05)
find the partly covered face in ../shared/data/photos/sadness_01.jpg that the defaults miss.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

# Which faces of an image are classified: the largest, every one, or none (the whole image).
FaceMode = Literal["largest", "all", "off"]

CASCADE_FILE = "haarcascade_frontalface_default.xml"
_DETECT_SIDE = 320  # larger images are shrunk to this longest side for detection
_SMALL_SIDE = 144  # smaller images are padded, then enlarged to this shortest side
_PAD_FRACTION = 0.25
_MAX_SIDE = 1280  # enlarging stops here (extreme aspect ratios)
_MIN_FACE = 24  # smallest face searched for, in detection pixels
_SMALL_MIN_FACE_FRACTION = 0.4  # in a small image (padded), faces are at least this much of its short side


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height


class FaceDetector:
    """Thread-safe: each thread gets its own cascade (OpenCV's is not safe to share)."""

    def __init__(self, *, min_neighbors: int = 5, scale_factor: float = 1.05) -> None:
        self._path = cv2.data.haarcascades + CASCADE_FILE
        self._min_neighbors = min_neighbors
        self._scale_factor = scale_factor
        self._local = threading.local()
        if self._cascade().empty():
            raise RuntimeError(f"could not load the face cascade {self._path}")

    def _cascade(self) -> cv2.CascadeClassifier:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._local.cascade = cv2.CascadeClassifier(self._path)
        return cascade

    def detect(self, image: np.ndarray) -> list[Box]:
        """Face boxes in ``image`` coordinates, largest first."""
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        height, width = gray.shape
        small = min(height, width) < _SMALL_SIDE
        pad = round(_PAD_FRACTION * min(height, width)) if small else 0
        padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        scale = min(_DETECT_SIDE / max(padded.shape), 1.0)
        if min(padded.shape) < _SMALL_SIDE:
            # Enlarged, but never past _MAX_SIDE on the long side: a 1 x 40000 strip must not become
            # a 144 x 5760000 one (it holds no face anyway).
            scale = min(_SMALL_SIDE / min(padded.shape), _MAX_SIDE / max(padded.shape))
        if min(padded.shape) * scale < _MIN_FACE:
            return []
        # A small image is a crop or a thumbnail: a face in it fills much of it. Not searching for the
        # small faces it cannot hold halves the cost on a CK+48 crop (13 -> 7 ms), same boxes.
        min_face = _MIN_FACE
        if small:
            min_face = max(_MIN_FACE, round(_SMALL_MIN_FACE_FRACTION * min(padded.shape) * scale))
        if scale != 1.0:
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            padded = cv2.resize(padded, None, fx=scale, fy=scale, interpolation=interpolation)
        found = self._cascade().detectMultiScale(
            cv2.equalizeHist(padded),
            scaleFactor=self._scale_factor,
            minNeighbors=self._min_neighbors,
            minSize=(min_face, min_face),
        )
        boxes = [
            _clip(x / scale - pad, y / scale - pad, w / scale, h / scale, width, height)
            for x, y, w, h in found
        ]
        return sorted((b for b in boxes if b.area > 0), key=lambda b: b.area, reverse=True)


def _clip(x: float, y: float, w: float, h: float, width: int, height: int) -> Box:
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def crop(image: np.ndarray, box: Box, margin: float = 0.0) -> tuple[np.ndarray, Box]:
    """The face with ``margin`` (fraction of the box side) added on each side, clipped to the image."""
    height, width = image.shape[:2]
    grown = _clip(
        box.x - margin * box.width,
        box.y - margin * box.height,
        box.width * (1 + 2 * margin),
        box.height * (1 + 2 * margin),
        width,
        height,
    )
    return image[grown.y : grown.y + grown.height, grown.x : grown.x + grown.width], grown
