"""Expected calibration error and temperature scaling on synthetic predictions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from training.calibration import (
    expected_calibration_error,
    fit_temperature,
    logits_from_probabilities,
    nll,
    softmax_with_temperature,
)


def sample_labels(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row, drawn from that row's distribution: the probabilities are then calibrated."""
    cumulative = probabilities.cumsum(axis=1)
    draws = rng.random((len(probabilities), 1))
    return np.minimum((draws > cumulative).sum(axis=1), probabilities.shape[1] - 1)


def calibrated_data(n: int = 20_000, classes: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n, classes))
    probabilities = softmax(logits, axis=1)
    return logits, probabilities, sample_labels(probabilities, rng)


# --- ECE --------------------------------------------------------------------------------------------


def test_ece_of_calibrated_predictions_is_small() -> None:
    _, probabilities, labels = calibrated_data()
    assert expected_calibration_error(probabilities, labels) < 0.02


def test_ece_of_overconfident_predictions_is_large() -> None:
    rng = np.random.default_rng(1)
    n, classes = 5_000, 4
    predicted = rng.integers(0, classes, n)
    probabilities = np.full((n, classes), 0.01 / (classes - 1))
    probabilities[np.arange(n), predicted] = 0.99
    # Right only 60% of the time while 99% sure.
    labels = np.where(rng.random(n) < 0.6, predicted, (predicted + 1) % classes)
    ece = expected_calibration_error(probabilities, labels)
    assert ece == pytest.approx(0.39, abs=0.03)


def test_ece_of_always_right_and_sure_is_zero() -> None:
    probabilities = np.eye(3)[[0, 1, 2, 1]]
    assert expected_calibration_error(probabilities, np.array([0, 1, 2, 1])) == pytest.approx(0.0)


def test_ece_is_between_zero_and_one() -> None:
    _, probabilities, labels = calibrated_data(n=500)
    wrong = (labels + 1) % probabilities.shape[1]
    for target in (labels, wrong):
        assert 0.0 <= expected_calibration_error(probabilities, target) <= 1.0


# --- temperature scaling ------------------------------------------------------------------------------


@pytest.mark.parametrize("true_temperature", [0.5, 2.0, 3.0])
def test_fit_temperature_recovers_a_known_temperature(true_temperature: float) -> None:
    logits, _, labels = calibrated_data(n=20_000, seed=2)
    # A model whose logits are ``true_temperature`` times too large (or small) for its labels.
    distorted = logits * true_temperature
    fitted = fit_temperature(distorted, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.1)


def test_fitted_temperature_lowers_nll_and_ece() -> None:
    logits, _, labels = calibrated_data(n=10_000, seed=3)
    overconfident = logits * 2.0
    temperature = fit_temperature(overconfident, labels)
    assert nll(overconfident, labels, temperature) < nll(overconfident, labels, 1.0)
    before = expected_calibration_error(softmax_with_temperature(overconfident, 1.0), labels)
    after = expected_calibration_error(softmax_with_temperature(overconfident, temperature), labels)
    assert after < before / 2


def test_calibrated_logits_keep_temperature_near_one() -> None:
    logits, _, labels = calibrated_data(n=20_000, seed=4)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, rel=0.1)


def test_softmax_with_temperature() -> None:
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    np.testing.assert_allclose(softmax_with_temperature(logits, 1.0), softmax(logits, axis=1))
    np.testing.assert_allclose(softmax_with_temperature(logits, 2.0), softmax(logits / 2.0, axis=1))
    # A higher temperature flattens the distribution without changing the ranking.
    hot = softmax_with_temperature(logits, 10.0)
    assert np.all(hot.max(axis=1) < softmax(logits, axis=1).max(axis=1))
    np.testing.assert_array_equal(hot.argmax(axis=1), logits.argmax(axis=1))


# --- logits from probabilities ------------------------------------------------------------------------


def test_logits_from_probabilities_round_trip_through_softmax() -> None:
    _, probabilities, _ = calibrated_data(n=1_000)
    recovered = softmax_with_temperature(logits_from_probabilities(probabilities), 1.0)
    np.testing.assert_allclose(recovered, probabilities, rtol=1e-9, atol=1e-12)


def test_logits_from_probabilities_survive_exact_zeros_and_ones() -> None:
    probabilities = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    logits = logits_from_probabilities(probabilities)
    assert np.all(np.isfinite(logits))
    np.testing.assert_allclose(softmax_with_temperature(logits, 1.0), probabilities, atol=1e-9)
