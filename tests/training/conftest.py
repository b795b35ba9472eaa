"""Fixtures shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.dataset import Dataset, load_dataset

CKPLUS_LABELS = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]


@pytest.fixture(scope="session")
def ckplus(ckplus_dir: Path) -> Dataset:
    """The real CK+48 dataset, loaded once per session."""
    return load_dataset(ckplus_dir)
