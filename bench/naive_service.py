"""The tutorial baseline the benchmark compares the service with; lives in ``bench/`` only, never deployed.

    NAIVE_MODEL_PATH=models/emotion_cnn.h5 python -m uvicorn bench.naive_service:app --port 8001

What most FastAPI + Keras tutorials write: an ``async`` route that takes an ``UploadFile``, decodes
it with Pillow, preprocesses it and calls ``model.predict(x[None])`` once per request, on the event
loop. Same model file, same preprocessing (``app.core.preprocessing.to_model_input``) and, unless
``?faces=off``, the same face detector (``EMOTION_FACE_DETECTOR``) and crop as the service, so the
benchmark compares serving strategies, not different work. Nothing is batched, nothing leaves the
event loop, there is no queue bound and no limit on upload size: that is the point of the baseline.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, File, UploadFile
from PIL import Image, ImageOps

from app.core.config import Settings
from app.core.faces import FaceDetector, make_detector
from app.core.faces.cropping import face_crop
from app.core.preprocessing import InputSpec, to_model_input

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "emotion_cnn.h5"


def model_path() -> Path:
    """``NAIVE_MODEL_PATH``, else ``EMOTION_MODEL_PATH``, else the shipped model."""
    return Path(os.environ.get("NAIVE_MODEL_PATH") or os.environ.get("EMOTION_MODEL_PATH") or DEFAULT_MODEL)


state: dict[str, Any] = {}


def _detector() -> FaceDetector:
    settings = Settings()
    return make_detector(settings.face_detector, min_confidence=settings.min_face_confidence)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    import keras  # heavy; imported when the app starts, as in the tutorials

    path = model_path()
    model = keras.models.load_model(path, compile=False)
    labels = json.loads(path.with_suffix(".json").read_text())["labels"]
    spec = InputSpec.from_shape(model.input_shape)
    model.predict(np.zeros((1, *spec.shape), dtype=np.float32), verbose=0)  # warm up once
    state.update(model=model, labels=labels, spec=spec, detector=_detector())
    yield
    state.clear()


app = FastAPI(title="Naive baseline (model.predict per request)", lifespan=lifespan)


@app.get("/ready")
async def ready() -> dict[str, bool]:
    return {"ready": "model" in state}


@app.post("/predict")
async def predict(file: UploadFile = File(...), faces: str = "largest") -> dict[str, Any]:  # noqa: B008
    data = await file.read()
    image = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    box = None
    if faces != "off":
        detector = state["detector"]
        found = detector.detect(image)
        if found:
            box = found[0].box
            image = face_crop(image, found[0], detector.framing)
    x = to_model_input(image, state["spec"])
    probabilities = state["model"].predict(x[None], verbose=0)[0]
    top = int(np.argmax(probabilities))
    return {
        "box": None if box is None else {"x": box.x, "y": box.y, "width": box.width, "height": box.height},
        "emotion": state["labels"][top],
        "confidence": float(probabilities[top]),
        "probabilities": {label: float(p) for label, p in zip(state["labels"], probabilities, strict=True)},
    }
