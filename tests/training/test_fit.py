"""The learning-rate schedules of a recipe."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from training.architectures import Recipe
from training.fit import _learning_rate


def test_plateau_recipes_start_from_a_constant_rate() -> None:
    assert _learning_rate(Recipe(learning_rate=3e-3), steps_per_epoch=10) == pytest.approx(3e-3)


def test_cosine_decays_from_the_rate_to_zero_over_every_step_of_every_epoch() -> None:
    recipe = dataclasses.replace(Recipe(learning_rate=3e-3, epochs=4), lr_schedule="cosine")
    schedule = _learning_rate(recipe, steps_per_epoch=5)
    assert isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)
    rates = [float(schedule(step)) for step in range(21)]
    assert rates[0] == pytest.approx(3e-3)
    assert rates[10] == pytest.approx(1.5e-3, rel=1e-4)  # half way: half the rate
    assert rates[20] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.diff(rates) <= 0)
