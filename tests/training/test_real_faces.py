"""The real-faces recipe's pieces: class balance, CK+48 targets, source mixing, the seven-way head,
fine-tuning, calibration helpers. No full training here: tiny models on tiny arrays."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from app.core.preprocessing import InputSpec
from tests.training.builders import write_class_folders
from training.architectures import Architecture, _compact
from training.calibration import expected_calibration_error
from training.dataset import load_dataset
from training.real_faces import (
    EMOTIONS,
    LABELS_WITH_NEUTRAL,
    Arrays,
    FineTune,
    balance_weights,
    ck_arrays,
    cross_fitted_ece,
    fine_tune,
    logits_of,
    mixed_dataset,
    seven_way,
    without_neutral,
)

TINY = Architecture(
    "tiny-test",
    "a small stride-2 net for tests",
    (16, 16, 1),
    lambda shape, n: _compact(shape, n, widths=(4, 8), dropout=0.1, standardize=True, stem_stride=2),
)


def arrays(n: int, label: int, *, seed: int = 0) -> Arrays:
    rng = np.random.default_rng(seed)
    y = np.zeros((n, len(LABELS_WITH_NEUTRAL)), dtype=np.float32)
    y[:, label] = 1.0
    return Arrays(x=rng.random((n, 16, 16, 1), dtype=np.float32), y=y, weights=np.ones(n, dtype=np.float32))


def test_label_orders_are_sorted_and_seven_plus_neutral() -> None:
    assert sorted(LABELS_WITH_NEUTRAL) == LABELS_WITH_NEUTRAL
    assert [label for label in LABELS_WITH_NEUTRAL if label != "neutral"] == EMOTIONS


def test_balance_weights_favour_rare_classes_within_the_cap_and_average_one() -> None:
    majority = np.array([0] * 900 + [1] * 100 + [2] * 1)
    weights = balance_weights(majority, 3, power=0.5, cap=3.0)
    assert weights.mean() == pytest.approx(1.0)
    common, rare, rarest = weights[0], weights[900], weights[-1]
    assert rare / common == pytest.approx(3.0)  # (900 / 100) ** 0.5
    assert rarest / common == pytest.approx(3.0)  # (900 / 1) ** 0.5 = 30, capped at 3


def test_ckplus_images_become_one_hot_targets_in_the_eight_label_order(tmp_path: Path) -> None:
    dataset = load_dataset(write_class_folders(tmp_path, {"contempt": 2, "surprise": 3}, size=16))
    ck = ck_arrays(dataset, InputSpec(16, 16, 1))
    assert ck.x.shape == (5, 16, 16, 1)
    assert ck.y.sum(axis=1).tolist() == [1.0] * 5
    names = [LABELS_WITH_NEUTRAL[i] for i in ck.y.argmax(1)]
    assert names == ["contempt"] * 2 + ["surprise"] * 3
    assert ck.y[:, LABELS_WITH_NEUTRAL.index("neutral")].sum() == 0


def test_mixing_draws_each_source_at_its_stated_share() -> None:
    ck = arrays(40, LABELS_WITH_NEUTRAL.index("contempt"), seed=1)
    fer = arrays(400, LABELS_WITH_NEUTRAL.index("neutral"), seed=2)
    data = mixed_dataset(ck, fer, ck_share=0.25, batch_size=50, seed=0)
    targets = np.concatenate([y.numpy() for _, y, _ in data.take(40)])
    share = targets[:, LABELS_WITH_NEUTRAL.index("contempt")].mean()
    assert share == pytest.approx(0.25, abs=0.03)
    x, _, w = next(iter(data))
    assert x.shape == (50, 16, 16, 1) and w.shape == (50,)
    assert float(np.min(x)) >= 0.0 and float(np.max(x)) <= 1.0  # augmentation keeps the pixel range


def test_the_seven_way_head_is_the_eight_way_softmax_renormalised_without_neutral() -> None:
    keras.utils.set_random_seed(3)
    model8 = TINY.build(len(LABELS_WITH_NEUTRAL))
    x = np.random.default_rng(4).random((6, 16, 16, 1), dtype=np.float32)
    model7 = without_neutral(model8, TINY)
    assert model7.output_shape[-1] == 7
    expected = seven_way(logits_of(model8, x))
    np.testing.assert_allclose(model7.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-6)
    probs8 = model8.predict(x, verbose=0)
    seven = [LABELS_WITH_NEUTRAL.index(name) for name in EMOTIONS]
    renormalised = probs8[:, seven] / probs8[:, seven].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(expected, renormalised, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_fine_tuning_starts_from_the_base_weights_and_learns_the_ckplus_class(tmp_path: Path) -> None:
    keras.utils.set_random_seed(5)
    base = TINY.build(len(LABELS_WITH_NEUTRAL))
    base_path = tmp_path / "base.weights.h5"
    base.save_weights(base_path)
    ck = arrays(32, LABELS_WITH_NEUTRAL.index("surprise"), seed=6)
    fer = arrays(64, LABELS_WITH_NEUTRAL.index("neutral"), seed=7)
    recipe = FineTune(epochs=3, ck_share=0.5, ck_images_per_epoch=64, batch_size=16, learning_rate=1e-2)
    tuned = fine_tune(TINY, base_path, ck, fer, recipe, seed=0)
    before = base.predict(ck.x, verbose=0)[:, LABELS_WITH_NEUTRAL.index("surprise")].mean()
    after = tuned.predict(ck.x, verbose=0)[:, LABELS_WITH_NEUTRAL.index("surprise")].mean()
    assert after > before


def test_cross_fitted_ece_fits_each_half_on_the_other() -> None:
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 3, 600)
    logits = np.eye(3)[labels] * 6.0 + rng.normal(0, 2.0, (600, 3))  # overconfident
    raw = expected_calibration_error(seven_way_like(logits), labels)
    assert cross_fitted_ece(logits, labels) < raw


def seven_way_like(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)
