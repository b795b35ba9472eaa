"""The naive baseline answers like the service: same model, same preprocessing, same probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.core.config import DEFAULT_MODEL_PATH
from app.core.imaging import decode_image
from app.core.inference import load_model
from app.core.preprocessing import to_model_input


@pytest.fixture(scope="module")
def crop(ckplus_dir: Path) -> bytes:
    return sorted((ckplus_dir / "happy").glob("*.png"))[0].read_bytes()


def test_naive_service_answers_with_the_models_probabilities(monkeypatch, crop: bytes) -> None:
    monkeypatch.setenv("NAIVE_MODEL_PATH", str(DEFAULT_MODEL_PATH))
    from bench.naive_service import app

    with TestClient(app) as client:
        assert client.get("/ready").json() == {"ready": True}
        whole = client.post("/predict?faces=off", files={"file": ("face.png", crop, "image/png")})
        detected = client.post("/predict", files={"file": ("face.png", crop, "image/png")})
    assert whole.status_code == 200 and detected.status_code == 200
    body = whole.json()
    assert body["box"] is None
    assert detected.json()["box"] is not None  # the face detector ran

    model = load_model(DEFAULT_MODEL_PATH)
    expected = model.predict_batch(to_model_input(decode_image(crop, max_pixels=10**7), model.spec)[None])[0]
    got = np.array([body["probabilities"][label] for label in model.labels])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert body["emotion"] == model.labels[int(np.argmax(expected))]
