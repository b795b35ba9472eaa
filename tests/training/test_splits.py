"""Split protocols: seeded and stratified random split; subject-independent split and k-fold."""

from __future__ import annotations

import numpy as np
import pytest

from training.dataset import CKPLUS_SUBJECT_PATTERN, Dataset, group_by_pattern
from training.splits import Split, make_split, random_split, subject_kfold, subject_split


@pytest.fixture(scope="module")
def labels(ckplus: Dataset) -> np.ndarray:
    return ckplus.labels


@pytest.fixture(scope="module")
def groups(ckplus: Dataset) -> np.ndarray:
    return ckplus.groups(group_by_pattern(CKPLUS_SUBJECT_PATTERN))


def synthetic(n_groups: int = 30, per_group: int = 6, classes: int = 3, seed: int = 0):
    """Labels and groups shaped like CK+: each group has a few images of a few classes."""
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"S{g:03d}" for g in range(n_groups)], per_group)
    labels = rng.integers(0, classes, len(groups))
    return labels, groups


def proportions(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.bincount(labels, minlength=classes) / len(labels)


def assert_partition(split: Split, n: int) -> None:
    """Train and test are disjoint, sorted, and together hold every index once."""
    assert len(np.intersect1d(split.train, split.test)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([split.train, split.test])), np.arange(n))
    assert np.all(np.diff(split.train) > 0)
    assert np.all(np.diff(split.test) > 0)


def assert_stratified(labels: np.ndarray, part: np.ndarray, tolerance: float) -> None:
    classes = labels.max() + 1
    difference = np.abs(proportions(labels[part], classes) - proportions(labels, classes))
    assert difference.max() <= tolerance, difference


def assert_group_disjoint(groups: np.ndarray, split: Split) -> None:
    assert set(groups[split.train]).isdisjoint(groups[split.test])


# --- random split ---------------------------------------------------------------------------------------


def test_random_split_sizes_on_ckplus(labels: np.ndarray) -> None:
    split = random_split(labels, test_size=0.33, seed=42)
    assert (len(split.train), len(split.test)) == (657, 324)
    assert_partition(split, len(labels))


def test_random_split_is_seeded(labels: np.ndarray) -> None:
    first = random_split(labels, test_size=0.33, seed=42)
    again = random_split(labels, test_size=0.33, seed=42)
    other = random_split(labels, test_size=0.33, seed=43)
    np.testing.assert_array_equal(first.test, again.test)
    np.testing.assert_array_equal(first.train, again.train)
    assert not np.array_equal(first.test, other.test)


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_random_split_is_stratified(labels: np.ndarray, seed: int) -> None:
    split = random_split(labels, test_size=0.33, seed=seed)
    assert_stratified(labels, split.test, tolerance=0.03)
    assert_stratified(labels, split.train, tolerance=0.03)


def test_make_split_random_ignores_groups(labels: np.ndarray) -> None:
    split = make_split("random", labels, None, test_size=0.33, seed=42)
    np.testing.assert_array_equal(split.test, random_split(labels, test_size=0.33, seed=42).test)


# --- subject split ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 42])
def test_subject_split_on_ckplus(labels: np.ndarray, groups: np.ndarray, seed: int) -> None:
    split = make_split("subject", labels, groups, test_size=0.33, seed=seed)
    assert_partition(split, len(labels))
    assert_group_disjoint(groups, split)
    assert 0.28 <= len(split.test) / len(labels) <= 0.38
    assert_stratified(labels, split.test, tolerance=0.03)


def test_subject_split_is_seeded(labels: np.ndarray, groups: np.ndarray) -> None:
    first = subject_split(labels, groups, test_size=0.33, seed=42)
    again = subject_split(labels, groups, test_size=0.33, seed=42)
    other = subject_split(labels, groups, test_size=0.33, seed=7)
    np.testing.assert_array_equal(first.test, again.test)
    assert not np.array_equal(first.test, other.test)


@pytest.mark.parametrize("test_size", [0.1, 0.2, 0.5])
def test_subject_split_test_size(labels: np.ndarray, groups: np.ndarray, test_size: float) -> None:
    split = subject_split(labels, groups, test_size=test_size, seed=42)
    assert_group_disjoint(groups, split)
    assert abs(len(split.test) / len(labels) - test_size) < 0.05


def test_subject_split_on_synthetic_groups() -> None:
    labels, groups = synthetic()
    split = subject_split(labels, groups, test_size=0.25, seed=0)
    assert_partition(split, len(labels))
    assert_group_disjoint(groups, split)


def test_make_split_subject_needs_groups(labels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="group"):
        make_split("subject", labels, None, test_size=0.33, seed=42)


def test_make_split_unknown_protocol(labels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="random, subject"):
        make_split("leave-one-out", labels, None, test_size=0.33, seed=42)


# --- subject k-fold ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("folds", [5, 10])
def test_subject_kfold_on_ckplus(labels: np.ndarray, groups: np.ndarray, folds: int) -> None:
    splits = list(subject_kfold(labels, groups, folds=folds, seed=42))
    assert len(splits) == folds
    times_in_test = np.zeros(len(labels), dtype=int)
    for split in splits:
        assert_partition(split, len(labels))
        assert_group_disjoint(groups, split)
        assert_stratified(labels, split.test, tolerance=0.06)
        times_in_test[split.test] += 1
    np.testing.assert_array_equal(times_in_test, 1)  # every image is tested exactly once


def test_subject_kfold_each_group_tested_once() -> None:
    labels, groups = synthetic(n_groups=12)
    test_folds: dict[str, set[int]] = {}
    for k, split in enumerate(subject_kfold(labels, groups, folds=4, seed=0)):
        for group in np.unique(groups[split.test]):
            test_folds.setdefault(str(group), set()).add(k)
    assert sorted(test_folds) == sorted(np.unique(groups))
    assert all(len(folds) == 1 for folds in test_folds.values())


def test_subject_kfold_is_seeded() -> None:
    labels, groups = synthetic()
    first = [s.test for s in subject_kfold(labels, groups, folds=3, seed=1)]
    again = [s.test for s in subject_kfold(labels, groups, folds=3, seed=1)]
    other = [s.test for s in subject_kfold(labels, groups, folds=3, seed=2)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("folds", [-1, 0, 1, 13])
def test_subject_kfold_bad_folds_count(folds: int) -> None:
    labels, groups = synthetic(n_groups=12)
    with pytest.raises(ValueError, match="folds"):
        list(subject_kfold(labels, groups, folds=folds, seed=0))


def test_subject_kfold_as_many_folds_as_groups() -> None:
    labels, groups = synthetic(n_groups=5, classes=2)
    splits = list(subject_kfold(labels, groups, folds=5, seed=0))
    assert [len(np.unique(groups[s.test])) for s in splits] == [1] * 5
