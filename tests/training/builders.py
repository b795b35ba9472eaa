"""Building small class-per-folder image datasets on disk for the training tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def face_like(size: int = 16, *, seed: int = 0, brightness: int = 128) -> np.ndarray:
    """A small gray uint8 image: a constant level plus a little noise."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-20, 21, (size, size))
    return np.clip(brightness + noise, 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(image))
    return path


def write_class_folders(
    root: Path, counts: dict[str, int], *, size: int = 16, subjects: int | None = None
) -> Path:
    """``root/<class>/S<subject>_<sequence>_<frame>.png`` with ``counts[class]`` images per class.

    Each class gets its own brightness, so a model can tell them apart. With ``subjects``, the
    images of every class are spread over that many subjects (round robin); otherwise each image
    has its own subject.
    """
    for class_index, (name, count) in enumerate(counts.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            subject = (i % subjects) + 1 if subjects else class_index * 100 + i + 1
            image = face_like(size, seed=class_index * 1000 + i, brightness=40 + 80 * (class_index % 3))
            write_png(folder / f"S{subject:03d}_{class_index + 1:03d}_{i + 1:08d}.png", image)
    return root
