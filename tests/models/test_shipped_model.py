"""The contract of the models shipped in models/: what the service, the container and the model card
rely on. A retrained model that breaks any of it must not replace a shipped one silently."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.core.config import DEFAULT_MODEL_PATH, Settings
from app.core.imaging import decode_image
from app.core.inference import LoadedModel, load_model
from app.core.model_metadata import ModelMetadata, file_sha256, read_metadata
from app.core.preprocessing import batch_to_model_input
from app.main import create_app
from training.architectures import get_architecture
from training.ferplus import load_ferplus

EMOTIONS = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
WITH_NEUTRAL = ["anger", "contempt", "disgust", "fear", "happy", "neutral", "sadness", "surprise"]
NEUTRAL_MODEL_PATH = DEFAULT_MODEL_PATH.with_name("emotion_cnn_neutral.h5")
SHIPPED = {"default": (DEFAULT_MODEL_PATH, EMOTIONS), "neutral": (NEUTRAL_MODEL_PATH, WITH_NEUTRAL)}
MAX_MODEL_BYTES = 10 * 1024 * 1024
MAX_ECE = 0.05
# FER+ valid faces all ten taggers agree on: any model worth shipping gets these right.
UNANIMOUS = 10


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def shipped(request: pytest.FixtureRequest) -> tuple[Path, list[str], ModelMetadata]:
    path, labels = SHIPPED[request.param]
    return path, labels, read_metadata(path.with_suffix(".json"))


@pytest.fixture(scope="module")
def loaded() -> dict[str, LoadedModel]:
    return {name: load_model(path) for name, (path, _) in SHIPPED.items()}


@pytest.fixture(scope="module")
def ferplus_valid(ferplus_dir: Path):
    return load_ferplus(ferplus_dir / "valid", WITH_NEUTRAL)


def test_the_metadata_describes_this_very_file(shipped: tuple[Path, list[str], ModelMetadata]) -> None:
    path, _, metadata = shipped
    assert metadata.model_sha256 == file_sha256(path)
    assert path.stat().st_size <= MAX_MODEL_BYTES


def test_sorted_labels_and_the_architectures_shape(shipped: tuple[Path, list[str], ModelMetadata]) -> None:
    path, labels, metadata = shipped
    assert metadata.labels == labels == sorted(labels)  # sorted names, the same on every OS
    architecture = get_architecture(metadata.architecture)
    assert tuple(metadata.input_shape) == architecture.input_shape
    assert metadata.params == architecture.count_params(len(labels))
    model = keras.models.load_model(path, compile=False)
    assert tuple(model.input_shape[1:]) == tuple(metadata.input_shape)
    assert model.output_shape[-1] == len(labels)


def test_sources_evaluation_and_calibration_are_recorded(
    shipped: tuple[Path, list[str], ModelMetadata],
) -> None:
    _, labels, metadata = shipped
    sources = metadata.dataset["sources"]
    assert sources["ferplus_train"]["faces"] > 27_000
    seven = metadata.metrics["ferplus_valid_7way"]
    assert seven["n"] == 2118  # the FER+ valid faces with one clear top label among the seven
    if "neutral" in labels:
        # The FER+ network itself: CK+48 (no neutral faces) is all unseen people for it.
        assert metadata.metrics["ferplus_valid_8way"]["n"] == 3351
        assert 0 < metadata.metrics["ckplus48_unseen_accuracy"] <= 1
        subject_cv = None
    else:
        assert sources["ckplus48"]["images"] == 981
        subject_cv = metadata.metrics["ckplus48_subject_cv"]
    if subject_cv is not None:
        accuracies = [fold["accuracy"] for fold in subject_cv["per_fold"]]
        assert subject_cv["folds"] == subject_cv["folds_run"] == len(accuracies) == 10
        assert subject_cv["mean_accuracy"] == pytest.approx(np.mean(accuracies))
        assert all(fold["subjects_in_both"] == 0 for fold in subject_cv["per_fold"])
    calibration = metadata.metrics["calibration"]
    assert calibration["bins"] == 15
    assert calibration["ece_after_cross_fitted"] <= MAX_ECE
    assert set(metadata.metrics["robustness_ferplus_valid"]) >= {
        "jpeg_q50",
        "horizontal_flip",
        "colour_input",
    }


def test_unanimous_ferplus_faces_get_their_label(loaded: dict[str, LoadedModel], ferplus_valid) -> None:
    votes = ferplus_valid.votes
    for name, model in loaded.items():
        labels = model.labels
        rows = [
            i
            for i in np.flatnonzero(votes.max(axis=1) == UNANIMOUS)
            if WITH_NEUTRAL[votes[i].argmax()] in labels
        ]
        x = batch_to_model_input([ferplus_valid.images[i] for i in rows], model.spec)
        probabilities = model.predict_batch(x)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        truth = [WITH_NEUTRAL[votes[i].argmax()] for i in rows]
        predicted = [labels[j] for j in probabilities.argmax(axis=1)]
        accuracy = np.mean([t == p for t, p in zip(truth, predicted, strict=True)])
        assert len(rows) > 200 and accuracy >= 0.9, (name, accuracy)


def test_probabilities_sum_to_one_on_ckplus(loaded: dict[str, LoadedModel], ckplus_dir: Path) -> None:
    images = [
        decode_image(path.read_bytes(), max_pixels=10**7)
        for emotion in EMOTIONS
        for path in sorted((ckplus_dir / emotion).glob("*.png"))[:3]
    ]
    for model in loaded.values():
        probabilities = model.predict_batch(batch_to_model_input(images, model.spec))
        assert probabilities.shape == (len(images), len(model.labels))
        assert np.all(probabilities >= 0)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_the_service_answers_with_eight_labels_for_the_neutral_model(ckplus_dir: Path) -> None:
    app = create_app(Settings(model_path=NEUTRAL_MODEL_PATH))
    image = sorted((ckplus_dir / "happy").glob("*.png"))[0]
    with TestClient(app) as client:
        assert client.get("/model").json()["labels"] == WITH_NEUTRAL
        response = client.post(
            "/predict", params={"faces": "off"}, files={"file": (image.name, image.read_bytes())}
        )
    assert response.status_code == 200, response.text
    probabilities = response.json()["probabilities"]
    assert list(probabilities) == WITH_NEUTRAL
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-6)
