"""Which files a command line names: files as given, folders walked for images (hidden ones skipped)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

# Suffixes picked up in folders (case-insensitive). A file named on the command line is sent whatever
# its name: the service reads the format from the bytes.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})


def find_images(paths: Iterable[Path]) -> list[Path]:
    """Files in command-line order; each folder walked recursively in sorted order for image files,
    skipping hidden files and folders (``.DS_Store``, ``.git``); each file once.

    Raises FileNotFoundError for a path that does not exist.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(_images_in(path))
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def _images_in(folder: Path) -> Iterator[Path]:
    for root, folders, names in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(names):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield Path(root) / name
