"""Train/test split protocols: the paper's random split and subject-independent splits.

``random`` puts frames of the same person (often of the same sequence) on both sides, which is why
its accuracy is optimistic. ``subject`` and the k-fold protocol keep every group (CK+ subject) on
one side only, stratified by class as far as the groups allow.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

PROTOCOLS = ("random", "subject")


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # indices
    test: np.ndarray


def random_split(labels: np.ndarray, *, test_size: float, seed: int) -> Split:
    """The paper's protocol: a seeded random split, stratified by class."""
    indices = np.arange(len(labels))
    train, test = train_test_split(indices, test_size=test_size, random_state=seed, stratify=labels)
    return Split(np.sort(train), np.sort(test))


def subject_kfold(labels: np.ndarray, groups: np.ndarray, *, folds: int, seed: int) -> Iterator[Split]:
    """K folds in which no group is in both train and test, stratified by class."""
    n_groups = len(np.unique(groups))
    if folds < 2 or folds > n_groups:
        raise ValueError(f"need 2 <= folds <= number of subjects ({n_groups}), got {folds}")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(np.zeros(len(labels)), labels, groups):
        yield Split(np.sort(train), np.sort(test))


def subject_split(labels: np.ndarray, groups: np.ndarray, *, test_size: float, seed: int) -> Split:
    """One subject-independent split with about ``test_size`` of the images in test."""
    folds = max(2, round(1 / test_size))
    return next(subject_kfold(labels, groups, folds=folds, seed=seed))


def make_split(
    protocol: str, labels: np.ndarray, groups: np.ndarray | None, *, test_size: float, seed: int
) -> Split:
    if protocol == "random":
        return random_split(labels, test_size=test_size, seed=seed)
    if protocol == "subject":
        if groups is None:
            raise ValueError("the subject protocol needs a group (subject) for every image")
        return subject_split(labels, groups, test_size=test_size, seed=seed)
    raise ValueError(f"unknown split protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
