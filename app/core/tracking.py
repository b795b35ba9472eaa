"""Face tracks over a stream of frames: an IoU tracker with exponential smoothing of the probabilities.

Each frame's faces are matched greedily to the live tracks by the overlap of their boxes (intersection
over union), best overlap first. A face keeps its track id while it stays in view; a face that matches
no track starts a new one, and a track unseen for more than ``max_missed`` processed frames ends.

A face may also carry an appearance signature (:func:`face_signatures`: a small, normalised gray
thumbnail of its box). When a track and a face both have one and they correlate less than
``min_similarity``, the face is not matched to that track even if the boxes overlap: a different face
put in the same place (a photo swapped in front of the camera) starts a new track.

Smoothing: per track, ``smoothed = smoothed + alpha * (raw - smoothed)`` with
``alpha = 1 - 0.5 ** (1 / half_life)``, the half-life counted in processed frames (0: no smoothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from app.core.faces import Box
from app.core.imaging import decode_image

SIGNATURE_SIDE = 24  # the thumbnail side of an appearance signature, in pixels


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.width, b.x + b.width), min(a.y + a.height, b.y + b.height)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def smoothing_alpha(half_life: float) -> float:
    """The weight of a new frame for a half-life in frames (1.0: no smoothing)."""
    if half_life < 0:
        raise ValueError("half_life must be 0 or more")
    return 1.0 if half_life == 0 else 1.0 - 0.5 ** (1.0 / half_life)


def signature(gray_face: np.ndarray) -> np.ndarray:
    """A face crop as a unit vector: resized, equalised, zero mean (a dot product is a correlation)."""
    small = cv2.resize(gray_face, (SIGNATURE_SIDE, SIGNATURE_SIDE), interpolation=cv2.INTER_AREA)
    vector = cv2.equalizeHist(small).astype(np.float32).ravel()
    vector -= vector.mean()
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def face_signatures(data: bytes, boxes: Sequence[Box | None], *, max_pixels: int) -> list[np.ndarray]:
    """The signature of each box of the encoded image ``data`` (None: the whole image).

    CPU work (a second decode of the frame): run it in a worker thread.
    """
    image = decode_image(data, max_pixels=max_pixels)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    out = []
    for box in boxes:
        region = gray if box is None else gray[box.y : box.y + box.height, box.x : box.x + box.width]
        out.append(signature(region if region.size else gray))
    return out


@dataclass(frozen=True)
class Detection:
    """One face of one frame, as the classifier found it."""

    box: Box | None  # None: no face was found and the whole frame was classified
    probabilities: np.ndarray  # in the model's label order
    signature: np.ndarray | None = None


@dataclass(frozen=True)
class TrackedFace:
    track_id: int
    detection: Detection
    smoothed: np.ndarray


@dataclass
class _Track:
    track_id: int
    box: Box
    smoothed: np.ndarray
    signature: np.ndarray | None
    missed: int = 0


@dataclass
class FaceTracker:
    """Per stream; small: one entry per face in view (plus those missed for a few frames)."""

    half_life: float = 3.0  # frames
    iou_threshold: float = 0.3
    max_missed: int = 5
    min_similarity: float = 0.5
    max_tracks: int = 32
    _tracks: list[_Track] = field(default_factory=list, init=False)
    _next_id: int = field(default=1, init=False)

    def __post_init__(self) -> None:
        self._alpha = smoothing_alpha(self.half_life)

    @property
    def live_tracks(self) -> int:
        return len(self._tracks)

    def similar(self, a: np.ndarray | None, b: np.ndarray | None) -> bool:
        return a is None or b is None or float(np.dot(a, b)) >= self.min_similarity

    def update(self, detections: Sequence[Detection]) -> list[TrackedFace]:
        """Match this frame's faces to the tracks; the result is in the order of ``detections``.

        A detection with no box (the whole frame) is not tracked and gets track id 0, unsmoothed.
        """
        pairs = sorted(
            (
                (iou(track.box, det.box), t, d)
                for t, track in enumerate(self._tracks)
                for d, det in enumerate(detections)
                if det.box is not None
            ),
            key=lambda pair: pair[0],
            reverse=True,
        )
        matched: dict[int, _Track] = {}
        used: set[int] = set()
        for overlap, t, d in pairs:
            if overlap < self.iou_threshold:
                break
            track, det = self._tracks[t], detections[d]
            if t in used or d in matched or not self.similar(track.signature, det.signature):
                continue
            used.add(t)
            matched[d] = track
        for t, track in enumerate(self._tracks):
            track.missed = 0 if t in used else track.missed + 1
        self._tracks = [track for track in self._tracks if track.missed <= self.max_missed]

        out = []
        for d, det in enumerate(detections):
            raw = np.asarray(det.probabilities, dtype=np.float64)
            if det.box is None:
                out.append(TrackedFace(0, det, raw))
                continue
            track = matched.get(d)
            if track is None:
                track = _Track(self._next_id, det.box, raw.copy(), det.signature)
                self._next_id += 1
                self._tracks.append(track)
            else:
                track.smoothed = track.smoothed + self._alpha * (raw - track.smoothed)
                track.box = det.box
                if det.signature is not None:
                    track.signature = det.signature
            out.append(TrackedFace(track.track_id, det, track.smoothed.copy()))
        if len(self._tracks) > self.max_tracks:  # the longest-missed go first
            self._tracks = sorted(self._tracks, key=lambda track: track.missed)[: self.max_tracks]
        return out
