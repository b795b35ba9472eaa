"""OpenCV's Haar cascade (shipped inside opencv-python-headless): fast, frontal faces only, no score.

Histogram equalisation and a fine scale step (1.05) find the partly covered face in
../shared/data/photos/sadness_01.jpg that the defaults miss. It gives no confidence and no eyes.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from app.core.faces.base import Face, Framing, clip_box
from app.core.faces.scaling import for_detection

CASCADE_FILE = "haarcascade_frontalface_default.xml"
_DETECT_SIDE = 320  # larger images are shrunk to this longest side for detection
_MIN_FACE = 24  # smallest face searched for, in detection pixels
_SMALL_MIN_FACE_FRACTION = 0.4  # in a small image (padded), faces are at least this much of its short side


class HaarDetector:
    """Thread-safe: each thread gets its own cascade (OpenCV's is not safe to share)."""

    name = "haar"
    # Fitted on FER+ valid faces placed in photos: python -m bench.face_crops --detector haar --fit
    framing = Framing(scale_w=1.0, scale_h=1.0, shift_y=0.0)

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

    def detect(self, image: np.ndarray) -> list[Face]:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        height, width = gray.shape
        scaled = for_detection(gray, _DETECT_SIDE, _MIN_FACE)
        if scaled is None:
            return []
        short = min(scaled.image.shape)
        # A small image is a crop or a thumbnail: a face in it fills much of it. Not searching for the
        # small faces it cannot hold halves the cost on a CK+48 crop, with the same boxes.
        min_face = max(_MIN_FACE, round(_SMALL_MIN_FACE_FRACTION * short)) if scaled.small else _MIN_FACE
        found = self._cascade().detectMultiScale(
            cv2.equalizeHist(scaled.image),
            scaleFactor=self._scale_factor,
            minNeighbors=self._min_neighbors,
            minSize=(min_face, min_face),
        )
        faces = []
        for x, y, w, h in found:
            x0, y0 = scaled.to_original(x, y)
            box = clip_box(x0, y0, w / scaled.scale, h / scaled.scale, width, height)
            if box.area > 0:
                faces.append(Face(box=box, confidence=None))
        return sorted(faces, key=lambda face: face.box.area, reverse=True)
