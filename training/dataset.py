"""Loading a class-per-folder image dataset (the Kaggle CK+48 layout).

``ROOT/<label>/<image>``: labels are the sorted folder names, so the label order is the same on
every OS. Hidden files (``.DS_Store``), files that are not images and stray files at the root
(a README) are ignored; an unreadable image is reported by path and skipped.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.core.errors import ImageError
from app.core.imaging import decode_image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
MAX_PIXELS = 50_000_000

# CK+ file names are S<subject>_<sequence>_<frame>.png: the subject is the group.
CKPLUS_SUBJECT_PATTERN = r"^(S\d+)_"

GroupFn = Callable[[Path], str]


class DatasetError(ValueError):
    """The dataset folder cannot be used (missing, empty, malformed)."""


def group_by_pattern(pattern: str) -> GroupFn:
    """A group function taking the first regex group of the file name (e.g. the CK+ subject)."""
    compiled = re.compile(pattern)
    if compiled.groups < 1:
        raise ValueError(f"group pattern {pattern!r} needs one capturing group")

    def group_of(path: Path) -> str:
        match = compiled.search(path.name)
        if match is None:
            raise DatasetError(f"{path}: file name does not match the group pattern {pattern!r}")
        return match.group(1)

    return group_of


@dataclass
class Dataset:
    images: list[np.ndarray]
    labels: np.ndarray  # int class index per image
    class_names: list[str]
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def groups(self, group_of: GroupFn) -> np.ndarray:
        return np.array([group_of(path) for path in self.paths])

    def fingerprint(self) -> str:
        """SHA-256 over each used file's relative path, label and content."""
        digest = hashlib.sha256()
        for path, label in zip(self.paths, self.labels, strict=True):
            digest.update(f"{self.class_names[label]}/{path.name}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(n) for name, n in zip(self.class_names, counts, strict=True)}


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def load_dataset(root: Path) -> Dataset:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist or is not a folder")
    class_dirs = sorted((p for p in root.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)
    if len(class_dirs) < 2:
        raise DatasetError(f"{root} must hold one sub-folder per class (at least 2); found {len(class_dirs)}")
    images: list[np.ndarray] = []
    labels: list[int] = []
    paths: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    empty: list[str] = []
    for index, class_dir in enumerate(class_dirs):
        files = sorted(
            p
            for p in class_dir.iterdir()
            if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_SUFFIXES
        )
        before = len(images)
        for path in files:
            try:
                image = decode_image(path.read_bytes(), max_pixels=MAX_PIXELS)
            except (ImageError, OSError) as exc:
                log.warning("skipping unreadable image %s: %s", path, exc)
                skipped.append((path, str(exc)))
                continue
            images.append(image)
            labels.append(index)
            paths.append(path)
        if len(images) == before:
            empty.append(class_dir.name)
    if empty:
        raise DatasetError(f"{root}: class folder(s) with no readable image: {', '.join(empty)}")
    return Dataset(
        images=images,
        labels=np.array(labels, dtype=np.int64),
        class_names=[d.name for d in class_dirs],
        paths=paths,
        skipped=skipped,
    )
