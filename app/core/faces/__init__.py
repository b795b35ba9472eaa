"""Finding faces and cutting them out the way the model's training faces were cut.

Two detectors, chosen by ``EMOTION_FACE_DETECTOR``: YuNet (a CNN, scores and eye landmarks; the
default where it can run) and OpenCV's Haar cascade. :func:`make_detector` builds one by name.
"""

from __future__ import annotations

import logging
from typing import Literal

from app.core.faces import yunet
from app.core.faces.base import Box, Face, FaceDetector, FaceMode, Framing, Point, clip_box
from app.core.faces.cropping import face_crop, square_of
from app.core.faces.haar import HaarDetector
from app.core.faces.yunet import YuNetDetector

DetectorName = Literal["auto", "yunet", "haar"]

__all__ = [
    "Box",
    "DetectorName",
    "Face",
    "FaceDetector",
    "FaceMode",
    "Framing",
    "HaarDetector",
    "Point",
    "YuNetDetector",
    "clip_box",
    "face_crop",
    "make_detector",
    "square_of",
]

log = logging.getLogger(__name__)


def make_detector(name: DetectorName, *, min_confidence: float) -> FaceDetector:
    """The detector ``name``; ``auto`` is YuNet where it can run here, else Haar (with a warning).

    ``min_confidence`` drops faces scored below it (detectors without scores keep every face).
    Asking for ``yunet`` where it cannot run raises ``RuntimeError`` saying why.
    """
    if name == "auto":
        reason = yunet.unavailable_reason()
        if reason is None:
            return YuNetDetector(min_confidence=min_confidence)
        log.warning("YuNet face detector unavailable (%s): using the Haar cascade", reason)
        return HaarDetector()
    if name == "yunet":
        return YuNetDetector(min_confidence=min_confidence)
    return HaarDetector()
