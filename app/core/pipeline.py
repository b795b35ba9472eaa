"""From uploaded bytes to a prediction: decode, find the face(s), preprocess, run the model.

``Classifier.annotate`` also draws the prediction on the image (``app.core.annotation``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from functools import partial

import anyio
import numpy as np

from app.core.annotation import annotate_image
from app.core.batching import RETRY_AFTER, DynamicBatcher
from app.core.errors import OverloadedError
from app.core.faces import Box, Face, FaceDetector, FaceMode, Point, clip_box, face_crop
from app.core.imaging import DecodedImage, decode_reduced
from app.core.preprocessing import InputSpec, to_model_input


@dataclass(frozen=True)
class FaceResult:
    """One classified region: a face, or the whole image when ``box`` is None."""

    box: Box | None  # the detector's face box; None: the whole image
    emotion: str  # the most probable label
    confidence: float  # its probability
    probabilities: dict[str, float]  # every label's, in the model's label order; they sum to 1
    face_confidence: float | None = None  # the detector's score; None: no face, or a detector without one
    right_eye: Point | None = None  # the subject's right eye, when the detector gives it
    left_eye: Point | None = None


@dataclass(frozen=True)
class Classification:
    """What :meth:`Classifier.classify` found in one upload."""

    faces: list[FaceResult]  # largest first; one (the largest face or the whole image) unless mode is "all"
    mode: FaceMode
    face_found: bool  # False: no face was found (or detection was off) and the whole image was used
    model_id: str
    decode_ms: float  # decoding, face detection and preprocessing
    inference_ms: float  # waiting for and running the model
    total_ms: float


@dataclass(frozen=True)
class AnnotatedImage:
    """What :meth:`Classifier.annotate` returns: the classification and the image with it drawn."""

    classification: Classification
    jpeg: bytes


@dataclass(frozen=True)
class PreparedImage:
    regions: list[tuple[Face | None, np.ndarray]]  # (the face or None for the whole image, model input)
    face_found: bool


def in_original_pixels(face: Face, decoded: DecodedImage) -> Face:
    """A face found on a reduced decoding (its box and eyes), in the pixels of the full-size image."""
    scale = decoded.scale
    if scale == 1.0:
        return face
    box, (width, height) = face.box, decoded.original_size

    def point(eye: Point | None) -> Point | None:
        return None if eye is None else (eye[0] * scale, eye[1] * scale)

    return replace(
        face,
        box=clip_box(box.x * scale, box.y * scale, box.width * scale, box.height * scale, width, height),
        right_eye=point(face.right_eye),
        left_eye=point(face.left_eye),
    )


def prepare(
    data: bytes,
    *,
    spec: InputSpec,
    detector: FaceDetector,
    mode: FaceMode,
    max_pixels: int,
    margin: float,
    align: bool,
    min_side: int | None = None,
) -> PreparedImage:
    """CPU work for one upload (runs in a worker thread, never on the event loop).

    A large JPEG is decoded at a reduced size when its long side stays at least ``min_side``
    (``app.core.imaging.decode_reduced``); the faces returned are in the full-size image's pixels.
    """
    decoded = decode_reduced(data, max_pixels=max_pixels, min_side=min_side)
    image = decoded.pixels
    faces = detector.detect(image) if mode != "off" else []
    if not faces:
        return PreparedImage([(None, to_model_input(image, spec))], face_found=False)
    chosen = faces if mode == "all" else faces[:1]
    regions = []
    for face in chosen:
        pixels = face_crop(image, face, detector.framing, margin=margin, align=align)
        regions.append((in_original_pixels(face, decoded), to_model_input(pixels, spec)))
    return PreparedImage(regions, face_found=True)


@dataclass
class Classifier:
    """Everything a request needs to be classified; one per running service."""

    spec: InputSpec
    labels: list[str]
    model_id: str
    detector: FaceDetector
    engine: DynamicBatcher  # runs the model on batches of inputs
    max_pixels: int
    margin: float  # widens the detector's training-like crop, per side (a fraction of its side)
    align: bool  # turn each face so its eyes are level before cropping (detectors that give the eyes)
    # Uploads being decoded at once: a few large photos at a time, not one per waiting request.
    decoders: anyio.CapacityLimiter
    # Uploads that may wait for a decoder: past them the request is refused at once (503 overloaded),
    # so an overloaded service answers quickly instead of making every request wait longer.
    decode_queue_max: int
    # JPEGs are decoded at 1/2, 1/4 or 1/8 size while their long side stays at least this (None: never).
    decode_min_side: int | None = None
    _decoding: int = field(default=0, init=False)  # uploads waiting for or in a decoder now

    def _face(self, face: Face | None, row: np.ndarray) -> FaceResult:
        top = int(np.argmax(row))
        return FaceResult(
            box=None if face is None else face.box,
            emotion=self.labels[top],
            confidence=float(row[top]),
            probabilities={label: float(p) for label, p in zip(self.labels, row, strict=True)},
            face_confidence=None if face is None else face.confidence,
            right_eye=None if face is None else face.right_eye,
            left_eye=None if face is None else face.left_eye,
        )

    async def classify(self, data: bytes, mode: FaceMode) -> Classification:
        started = time.perf_counter()
        if self._decoding >= self.decoders.total_tokens + self.decode_queue_max:
            raise OverloadedError(
                f"{self._decoding} uploads are already being decoded or waiting; retry shortly",
                headers=RETRY_AFTER,
            )
        work = partial(
            prepare,
            data,
            spec=self.spec,
            detector=self.detector,
            mode=mode,
            max_pixels=self.max_pixels,
            margin=self.margin,
            align=self.align,
            min_side=self.decode_min_side,
        )
        self._decoding += 1
        try:
            with self.engine.arriving():  # a busy batcher may wait for this image, not run without it
                prepared = await anyio.to_thread.run_sync(work, limiter=self.decoders)
        finally:
            self._decoding -= 1
        decoded = time.perf_counter()
        rows = await asyncio.gather(*(self.engine.predict(x) for _, x in prepared.regions))
        done = time.perf_counter()
        return Classification(
            faces=[self._face(face, row) for (face, _), row in zip(prepared.regions, rows, strict=True)],
            mode=mode,
            face_found=prepared.face_found,
            model_id=self.model_id,
            decode_ms=round((decoded - started) * 1000, 3),
            inference_ms=round((done - decoded) * 1000, 3),
            total_ms=round((done - started) * 1000, 3),
        )

    async def annotate(self, data: bytes, mode: FaceMode) -> AnnotatedImage:
        """Classify ``data``, then draw the faces and labels on it as a JPEG.

        The upload is decoded a second time to draw, rather than kept decoded while its faces wait for
        the model: a queued request holds its compressed bytes only, as in :meth:`classify`, and the
        drawing runs in the same bounded pool of decoding threads.
        """
        classification = await self.classify(data, mode)
        draw = partial(annotate_image, data, classification.faces, max_pixels=self.max_pixels)
        jpeg = await anyio.to_thread.run_sync(draw, limiter=self.decoders)
        return AnnotatedImage(classification=classification, jpeg=jpeg)
