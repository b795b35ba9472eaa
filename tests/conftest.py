"""Shared fixtures: where the CK+48 and FER+ data and the photos are; the skip-locally, fail-in-CI rule."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The one setting for the data: CKPLUS_DIR (default: ../shared/data/CK+48 beside the checkout).
CKPLUS_DIR = Path(os.environ.get("CKPLUS_DIR", REPO_ROOT.parent / "shared" / "data" / "CK+48"))
PHOTOS_DIR = Path(os.environ.get("PHOTOS_DIR", CKPLUS_DIR.parent / "photos"))
FERPLUS_DIR = Path(os.environ.get("FERPLUS_DIR", CKPLUS_DIR.parent / "FERPlus"))


def require(available: bool, reason: str) -> None:
    """Skip when a resource is absent on a developer's machine; fail in CI, where it must exist."""
    if available:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI must not skip this test")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def ckplus_dir() -> Path:
    require(CKPLUS_DIR.is_dir(), f"CK+48 data not found at {CKPLUS_DIR} (set CKPLUS_DIR)")
    return CKPLUS_DIR


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    require(PHOTOS_DIR.is_dir(), f"real photos not found at {PHOTOS_DIR} (set PHOTOS_DIR)")
    return PHOTOS_DIR


@pytest.fixture(scope="session")
def ferplus_dir() -> Path:
    require(
        (FERPLUS_DIR / "valid" / "labels.csv").is_file(),
        f"FER+ data not found at {FERPLUS_DIR} (set FERPLUS_DIR)",
    )
    return FERPLUS_DIR
