"""The architecture registry: the paper's models exactly, the compact ones' logits, and --list-archs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from training.architectures import (
    ARCHITECTURES,
    NUM_CLASSES,
    Architecture,
    Recipe,
    get_architecture,
    register,
)
from training.fit import with_temperature

REPO_ROOT = Path(__file__).resolve().parents[2]
PAPER = ("paper-v1", "paper-v2")
COMPACT = ("compact-s", "compact-s-std", "compact-m")


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    yield
    keras.backend.clear_session()


def test_builtin_architectures_are_registered() -> None:
    assert set(PAPER + COMPACT) <= set(ARCHITECTURES)
    for name, arch in ARCHITECTURES.items():
        assert arch.name == name
        assert arch.description


@pytest.mark.parametrize(("name", "params"), [("paper-v1", 30_321_415), ("paper-v2", 67_119_623)])
def test_paper_models_have_the_papers_parameter_counts(name: str, params: int) -> None:
    assert get_architecture(name).count_params() == params


@pytest.mark.parametrize("name", PAPER)
def test_paper_models_take_128x128_rgb_and_output_seven_probabilities(name: str) -> None:
    arch = get_architecture(name)
    assert arch.input_shape == (128, 128, 3)
    model = arch.build()
    assert tuple(model.input_shape) == (None, 128, 128, 3)
    assert tuple(model.output_shape) == (None, NUM_CLASSES)
    assert model.layers[-1].name == "probabilities"
    assert arch.recipe.epochs == 20
    assert arch.recipe.batch_size == 64


@pytest.mark.parametrize("name", COMPACT)
def test_compact_models_end_in_logits_then_softmax(name: str) -> None:
    arch = get_architecture(name)
    assert arch.input_shape == (48, 48, 1)
    model = arch.build()
    logits = model.get_layer("logits")
    assert isinstance(logits, keras.layers.Dense)
    assert logits.units == NUM_CLASSES
    assert model.layers[-2] is logits
    assert isinstance(model.layers[-1], keras.layers.Softmax)
    assert tuple(model.output_shape) == (None, NUM_CLASSES)


@pytest.mark.parametrize("name", COMPACT)
def test_compact_models_are_small(name: str) -> None:
    assert get_architecture(name).count_params() < 1_000_000


def test_standardised_input_ignores_brightness_and_contrast_also_after_saving(tmp_path: Path) -> None:
    model = get_architecture("compact-s-std").build()
    x = np.random.default_rng(1).random((4, 48, 48, 1), dtype=np.float32) * 0.5 + 0.2
    darker_and_flatter = 0.5 * x + 0.1
    before = model.predict(x, verbose=0)
    np.testing.assert_allclose(model.predict(darker_and_flatter, verbose=0), before, atol=2e-3)
    model.save(tmp_path / "std.h5")
    loaded = keras.models.load_model(tmp_path / "std.h5", compile=False, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, atol=1e-6)  # the layer kept its axis
    assert get_architecture("compact-s-std").count_params() == get_architecture("compact-s").count_params()


def test_build_with_another_number_of_classes() -> None:
    model = get_architecture("compact-s").build(3)
    assert tuple(model.output_shape) == (None, 3)


def test_with_temperature_divides_the_logits() -> None:
    model = get_architecture("compact-s").build()
    x = np.random.default_rng(0).random((4, 48, 48, 1), dtype=np.float32)
    logits_model = keras.Model(model.inputs, model.get_layer("logits").output)
    logits = np.asarray(logits_model.predict(x, verbose=0), dtype=np.float64)
    scaled = np.asarray(with_temperature(model, 2.0).predict(x, verbose=0), dtype=np.float64)
    expected = np.exp(logits / 2.0) / np.exp(logits / 2.0).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(scaled, expected, atol=1e-5)
    unchanged = with_temperature(model, 1.0).predict(x, verbose=0)
    np.testing.assert_allclose(unchanged, model.predict(x, verbose=0), atol=1e-6)


def test_register_rejects_a_duplicate_name() -> None:
    existing = get_architecture("compact-s")
    with pytest.raises(ValueError, match="already registered"):
        register(Architecture("compact-s", "again", (48, 48, 1), existing.builder))
    assert ARCHITECTURES["compact-s"] is existing


def test_register_and_get_a_new_architecture() -> None:
    arch = Architecture("test-registry-tiny", "for this test", (8, 8, 1), lambda shape, n: None, Recipe())
    try:
        assert register(arch) is arch
        assert get_architecture("test-registry-tiny") is arch
    finally:
        ARCHITECTURES.pop("test-registry-tiny", None)


def test_unknown_architecture_is_a_key_error_listing_the_known_names() -> None:
    with pytest.raises(KeyError) as info:
        get_architecture("resnet-9000")
    message = info.value.args[0]
    assert "resnet-9000" in message
    for name in PAPER + COMPACT:
        assert name in message


def test_list_archs_command() -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "training", "--list-archs"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    listed = dict(line.split("\t") for line in lines)
    assert len(lines) == len(listed) == len(ARCHITECTURES)
    assert listed["paper-v1"] == "30321415"
    assert listed["paper-v2"] == "67119623"
    for name in COMPACT:
        assert int(listed[name]) == get_architecture(name).count_params()


def test_fer_s2_halves_the_resolution_in_its_stem_and_fits_the_size_budget() -> None:
    arch = get_architecture("fer-s2")
    model = arch.build(8)
    assert arch.input_shape == (48, 48, 1)
    assert model.get_layer("stem").output.shape[1:3] == (24, 24)  # every stage runs on a quarter
    assert model.get_layer("logits").units == 8
    assert isinstance(model.layers[-1], keras.layers.Softmax)
    assert model.count_params() == 1_185_960  # ~4.7 MB of float32 weights: under the 10 MB budget
