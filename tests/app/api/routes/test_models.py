"""Models side by side: GET /models, ?model=NAME on every classifying route, the model named in every
answer, GET /model for the default (or ?model=)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import SHIPPED_MODELS_DIR
from app.core.inference import LoadedModel, load_model
from app.main import create_app
from tests.app.conftest import assert_error, assert_prediction, file_part, settings_for

NEUTRAL = "emotion_cnn_neutral"


@pytest.fixture(scope="module")
def neutral_labels() -> list[str]:
    return json.loads((SHIPPED_MODELS_DIR / f"{NEUTRAL}.json").read_text())["labels"]


@pytest.fixture(scope="module")
def neutral_model() -> LoadedModel:
    return load_model(SHIPPED_MODELS_DIR / f"{NEUTRAL}.h5")


@pytest.fixture(scope="module")
def two_models(
    model_path: Path, loaded_model: LoadedModel, neutral_model: LoadedModel
) -> Iterator[TestClient]:
    """Both shipped models, preloaded (EMOTION_MODELS unset: every models/*.h5)."""
    app = create_app(settings_for(model_path, models=None), model=loaded_model, models=[neutral_model])
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_models_lists_every_model_the_default_first(
    two_models: TestClient, labels: list[str], neutral_labels: list[str]
) -> None:
    models = two_models.get("/models").json()["models"]
    assert [(m["name"], m["default"]) for m in models] == [("emotion_cnn", True), (NEUTRAL, False)]
    assert models[0]["labels"] == labels and models[1]["labels"] == neutral_labels
    assert models[1]["model_id"].startswith(f"{NEUTRAL}@")
    assert "ferplus_valid_8way" in models[1]["metrics"]  # from its metadata


def test_model_selects_the_model_on_predict(
    two_models: TestClient, anger_photo: bytes, labels: list[str], neutral_labels: list[str]
) -> None:
    default = two_models.post("/predict", files=file_part(anger_photo, "a.jpg", "image/jpeg")).json()
    assert_prediction(default, labels)
    assert default["model"] == "emotion_cnn" and default["model_id"].startswith("emotion_cnn@")
    chosen = two_models.post(
        f"/predict?model={NEUTRAL}&faces=all", files=file_part(anger_photo, "a.jpg", "image/jpeg")
    ).json()
    assert_prediction(chosen, neutral_labels)
    assert chosen["model"] == NEUTRAL and chosen["model_id"].startswith(f"{NEUTRAL}@")
    assert chosen["face_detection"] == "all"
    by_name = two_models.post(
        "/predict?model=emotion_cnn", json={"b64": base64.b64encode(anger_photo).decode()}
    )
    assert by_name.json()["probabilities"] == pytest.approx(default["probabilities"], abs=1e-6)


def test_model_selects_the_model_on_batch_and_annotate(
    two_models: TestClient, anger_photo: bytes, neutral_labels: list[str]
) -> None:
    batch = two_models.post(
        f"/predict/batch?model={NEUTRAL}",
        files=[
            ("file", ("a.jpg", anger_photo, "image/jpeg")),
            ("file", ("b.jpg", anger_photo, "image/jpeg")),
        ],
    ).json()
    for item in batch["results"]:
        assert item["result"]["model"] == NEUTRAL
        assert list(item["result"]["probabilities"]) == neutral_labels
    annotated = two_models.post(
        f"/annotate?model={NEUTRAL}", files=file_part(anger_photo, "a.jpg", "image/jpeg")
    )
    assert annotated.status_code == 200
    assert annotated.headers["x-model-name"] == NEUTRAL
    assert annotated.headers["x-model-id"].startswith(f"{NEUTRAL}@")
    default = two_models.post("/annotate", files=file_part(anger_photo, "a.jpg", "image/jpeg"))
    assert default.headers["x-model-name"] == "emotion_cnn"


@pytest.mark.parametrize("path", ["/predict", "/predict/batch", "/annotate"])
def test_an_unknown_model_is_404_before_the_body_is_read(
    two_models: TestClient, small_png: bytes, path: str
) -> None:
    response = two_models.post(f"{path}?model=nope", files=file_part(small_png))
    message = assert_error(response, 404, "unknown_model")["message"]
    assert "emotion_cnn" in message and NEUTRAL in message and "/models" in message
    # Not even a body: the model is checked first.
    assert_error(two_models.post(f"{path}?model=nope"), 404, "unknown_model")


def test_model_info_is_the_default_or_the_named_one(
    two_models: TestClient, neutral_labels: list[str]
) -> None:
    default = two_models.get("/model").json()
    assert default["name"] == "emotion_cnn" and default["path"].endswith("emotion_cnn.h5")
    neutral = two_models.get(f"/model?model={NEUTRAL}").json()
    assert neutral["name"] == NEUTRAL and neutral["labels"] == neutral_labels
    assert neutral["batching"]["max_batch_size"] == default["batching"]["max_batch_size"]
    assert_error(two_models.get("/model?model=nope"), 404, "unknown_model")


def test_each_model_has_its_own_batcher(two_models: TestClient, small_png: bytes) -> None:
    state = two_models.app.state.service
    assert set(state.served) == {"emotion_cnn", NEUTRAL}
    engines = {name: served.engine for name, served in state.served.items()}
    assert engines["emotion_cnn"] is not engines[NEUTRAL] and state.engine is engines["emotion_cnn"]
    before = {name: engine.stats.items for name, engine in engines.items()}
    two_models.post(f"/predict?model={NEUTRAL}&faces=off", files=file_part(small_png))
    assert engines[NEUTRAL].stats.items == before[NEUTRAL] + 1  # the mirror image rides in the same item
    assert engines["emotion_cnn"].stats.items == before["emotion_cnn"]


def test_emotion_models_limits_what_is_served(model_path: Path, loaded_model: LoadedModel) -> None:
    app = create_app(settings_for(model_path, models=[model_path]), model=loaded_model)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert [m["name"] for m in client.get("/models").json()["models"]] == ["emotion_cnn"]
        assert_error(client.post(f"/predict?model={NEUTRAL}", json={"b64": ""}), 404, "unknown_model")


def test_the_lifespan_loads_the_models_not_preloaded(model_path: Path, loaded_model: LoadedModel) -> None:
    """Only the default is preloaded (as `python -m app` does): the lifespan loads the neutral model."""
    app = create_app(settings_for(model_path, models=[NEUTRAL]), model=loaded_model)
    with TestClient(app, raise_server_exceptions=False) as client:
        models = client.get("/models").json()["models"]
    assert [m["name"] for m in models] == ["emotion_cnn", NEUTRAL]
