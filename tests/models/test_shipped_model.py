"""The contract of the model shipped in models/: what the service, the container and the model card
rely on. A retrained model that breaks any of it must not replace the shipped one silently."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pytest

from app.core.config import DEFAULT_MODEL_PATH
from app.core.imaging import decode_image
from app.core.inference import LoadedModel, load_model
from app.core.model_metadata import ModelMetadata, file_sha256, read_metadata
from app.core.preprocessing import to_model_input
from training.architectures import Recipe, get_architecture

EMOTIONS = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
MAX_MODEL_BYTES = 5 * 1024 * 1024
MAX_ECE = 0.05
# One peak frame per class, from subjects the shipped model's cross-validation held out in some fold
# (every subject is held out exactly once in 10-fold subject CV) and the final model was trained on.
PINNED = {
    "anger": "S010_004_00000019.png",
    "contempt": "S138_008_00000009.png",
    "disgust": "S005_001_00000011.png",
    "fear": "S011_003_00000014.png",
    "happy": "S010_006_00000015.png",
    "sadness": "S011_002_00000022.png",
    "surprise": "S010_002_00000014.png",
}


@pytest.fixture(scope="module")
def metadata() -> ModelMetadata:
    return read_metadata(DEFAULT_MODEL_PATH.with_suffix(".json"))


@pytest.fixture(scope="module")
def shipped() -> LoadedModel:
    return load_model(DEFAULT_MODEL_PATH)


def test_the_metadata_describes_this_very_file(metadata: ModelMetadata) -> None:
    assert metadata.model_sha256 == file_sha256(DEFAULT_MODEL_PATH)
    assert DEFAULT_MODEL_PATH.stat().st_size <= MAX_MODEL_BYTES


def test_seven_sorted_labels_and_the_architectures_shape(metadata: ModelMetadata) -> None:
    assert metadata.labels == EMOTIONS  # sorted folder names, the same on every OS
    architecture = get_architecture(metadata.architecture)
    assert tuple(metadata.input_shape) == architecture.input_shape
    assert metadata.params == architecture.count_params()


def test_the_shipped_recipe_is_the_registry_recipe(metadata: ModelMetadata) -> None:
    """`make train-default` (the architecture's recipe) is what made this model: no silent drift."""
    recipe = dataclasses.asdict(get_architecture(metadata.architecture).recipe)
    defaults = dataclasses.asdict(Recipe())  # fields added after the model was trained keep their default
    recorded = {key: metadata.training.get(key, defaults[key]) for key in recipe}
    assert recorded == recipe
    assert (metadata.training["protocol"], metadata.training["folds"]) == ("subject", 10)


def test_the_keras_file_matches_its_metadata(metadata: ModelMetadata) -> None:
    model = keras.models.load_model(DEFAULT_MODEL_PATH, compile=False)
    assert tuple(model.input_shape[1:]) == tuple(metadata.input_shape)
    assert model.output_shape[-1] == len(metadata.labels)
    assert model.count_params() == metadata.params


def test_the_cross_validation_and_calibration_are_recorded(metadata: ModelMetadata) -> None:
    cv = metadata.metrics["subject_cv"]
    assert cv["folds"] == 10 and cv["folds_run"] == 10
    accuracies = [fold["accuracy"] for fold in cv["per_fold"]]
    assert len(accuracies) == 10
    assert cv["mean_accuracy"] == pytest.approx(np.mean(accuracies))
    assert cv["std_accuracy"] == pytest.approx(np.std(accuracies, ddof=1))
    assert set(cv["per_class_f1"]) == set(EMOTIONS)
    calibration = metadata.metrics["calibration"]
    assert calibration["bins"] == 15
    assert calibration["temperature"] == pytest.approx(metadata.training["temperature"])
    # The target of the model card: probabilities that mean what they say (ECE, 15 bins, <= 0.05), on
    # out-of-fold predictions scaled by a temperature fitted on the other folds.
    assert calibration["ece_after_cross_fitted"] <= MAX_ECE


def _probabilities(shipped: LoadedModel, path: Path) -> np.ndarray:
    image = decode_image(path.read_bytes(), max_pixels=10**7)
    return shipped.predict_batch(to_model_input(image, shipped.metadata.input_spec)[None])[0]


def test_probabilities_sum_to_one_on_every_class(shipped: LoadedModel, ckplus_dir: Path) -> None:
    for emotion in EMOTIONS:
        for path in sorted((ckplus_dir / emotion).glob("*.png"))[:5]:
            probabilities = _probabilities(shipped, path)
            assert probabilities.shape == (7,)
            assert np.all(probabilities >= 0)
            assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_pinned_faces_get_their_class(shipped: LoadedModel, ckplus_dir: Path, emotion: str) -> None:
    probabilities = _probabilities(shipped, ckplus_dir / emotion / PINNED[emotion])
    got = dict(zip(EMOTIONS, probabilities.round(3), strict=True))
    assert EMOTIONS[int(np.argmax(probabilities))] == emotion, got
