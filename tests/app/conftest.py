"""Fixtures for the API tests: running apps (the model loaded once) and real and generated images."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from app.api.observability import JsonFormatter
from app.core.config import DEFAULT_MODEL_PATH, Settings
from app.core.inference import LoadedModel, load_model
from app.main import create_app

MODEL_PATH = DEFAULT_MODEL_PATH

# The small limits of the `limited_client` app.
LIMITED_UPLOAD_BYTES = 4096
LIMITED_PIXELS = 100 * 100
LIMITED_BATCH_FILES = 3
API_KEY = "test-key"
CORS_ORIGIN = "https://app.example"


# --- images built in memory -----------------------------------------------------------------------


def encode(image: Image.Image | np.ndarray, fmt: str, **options: Any) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` gray pixels but holds no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def uniform_gray(size: int = 200, value: int = 128) -> bytes:
    return encode(np.full((size, size), value, dtype=np.uint8), "PNG")


def gradient_rgb(height: int = 200, width: int = 200) -> bytes:
    rows = np.linspace(0, 255, height)[:, None].repeat(width, axis=1)
    cols = np.linspace(0, 255, width)[None, :].repeat(height, axis=0)
    blue = np.full((height, width), 90.0)
    return encode(np.stack([rows, cols, blue], axis=2).astype(np.uint8), "PNG")


def file_part(data: bytes, name: str = "image.png", content_type: str = "image/png") -> dict[str, Any]:
    """The ``files=`` argument of a one-file /predict request."""
    return {"file": (name, data, content_type)}


def assert_prediction(body: dict[str, Any], labels: list[str]) -> None:
    """The response contract: the model's labels in order, probabilities summing to 1, the top one."""
    probabilities = body["probabilities"]
    assert list(probabilities) == labels
    values = np.array(list(probabilities.values()))
    assert np.all(values >= 0) and np.all(values <= 1)
    assert values.sum() == pytest.approx(1.0, abs=1e-6)
    assert body["emotion"] == labels[int(np.argmax(values))]
    assert body["confidence"] == pytest.approx(values.max(), abs=1e-12)
    assert set(body["timing"]) == {"decode_ms", "inference_ms", "total_ms"}
    assert body["timing"]["total_ms"] >= 0


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """A JSON error with a stable code and a message; returns the error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    return error


# --- logs ---------------------------------------------------------------------------------------------


class JsonLines(logging.Handler):
    """Formats each record as the service does, when it is emitted (the request id is set then)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def access(self) -> list[dict[str, Any]]:
        """The access-log entries, parsed."""
        return [entry for entry in map(json.loads, self.lines) if entry["logger"] == "app.access"]


@contextlib.contextmanager
def json_log_lines() -> Iterator[JsonLines]:
    """Every record logged inside the block, at every level, as the service's JSON lines."""
    handler, root = JsonLines(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


# --- the model and the apps ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_path() -> Path:
    assert MODEL_PATH.is_file(), f"the shipped model {MODEL_PATH} is missing"
    return MODEL_PATH


@pytest.fixture(scope="session")
def metadata(model_path: Path) -> dict[str, Any]:
    return json.loads(model_path.with_suffix(".json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def labels(metadata: dict[str, Any]) -> list[str]:
    assert len(metadata["labels"]) == 7
    return metadata["labels"]


@pytest.fixture(scope="session")
def loaded_model(model_path: Path) -> LoadedModel:
    """Loaded (and warmed up) once; every app below serves this same object."""
    return load_model(model_path)


def settings_for(model_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_path": model_path,
        "face_detection": "largest",
        "face_margin": 0.0,
        "max_upload_bytes": 10 * 1024 * 1024,
        "max_pixels": 40_000_000,
        "max_batch_files": 16,
        "api_key": None,
        "cors_origins": [],
    }
    values.update(overrides)
    return Settings(**values)


def _running(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:  # `with`: the lifespan runs
        yield client


@pytest.fixture(scope="session")
def client(model_path: Path, loaded_model: LoadedModel) -> Iterator[TestClient]:
    """The service with its default settings, ready."""
    yield from _running(create_app(settings_for(model_path), model=loaded_model))


@pytest.fixture(scope="session")
def limited_client(model_path: Path, loaded_model: LoadedModel) -> Iterator[TestClient]:
    """Small upload, pixel and batch limits."""
    settings = settings_for(
        model_path,
        max_upload_bytes=LIMITED_UPLOAD_BYTES,
        max_pixels=LIMITED_PIXELS,
        max_batch_files=LIMITED_BATCH_FILES,
    )
    yield from _running(create_app(settings, model=loaded_model))


@pytest.fixture(scope="session")
def secured_client(model_path: Path, loaded_model: LoadedModel) -> Iterator[TestClient]:
    """An API key is required and one origin is allowed by CORS."""
    settings = settings_for(model_path, api_key=API_KEY, cors_origins=[CORS_ORIGIN])
    yield from _running(create_app(settings, model=loaded_model))


@pytest.fixture(scope="session")
def _rate_limited_app(model_path: Path, loaded_model: LoadedModel) -> Iterator[TestClient]:
    settings = settings_for(model_path, api_key=API_KEY, rate_limit_per_minute=1)
    yield from _running(create_app(settings, model=loaded_model))


@pytest.fixture
def rate_limited_client(_rate_limited_app: TestClient) -> TestClient:
    """API_KEY with a budget of one request a minute, spent just before each test that uses it (spent
    once per session, it would be back for a test run more than a minute later)."""
    spent = _rate_limited_app.get("/model", headers={"X-API-Key": API_KEY}).status_code
    assert spent in (200, 429)  # 200: this request spent it; 429: it was spent within the minute
    return _rate_limited_app


@pytest.fixture
def idle_client(model_path: Path, loaded_model: LoadedModel) -> TestClient:
    """Not entered as a context manager: the lifespan has not run, so the model is not ready."""
    return TestClient(create_app(settings_for(model_path), model=loaded_model), raise_server_exceptions=False)


# --- real images ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ck_samples(ckplus_dir: Path) -> list[Path]:
    """The first CK+48 crop of each emotion folder."""
    samples = []
    for folder in sorted(p for p in ckplus_dir.iterdir() if p.is_dir()):
        pngs = sorted(folder.glob("*.png"))
        assert pngs, f"no PNG in {folder}"
        samples.append(pngs[0])
    assert len(samples) == 7
    return samples


@pytest.fixture(scope="session")
def anger_photo(photos_dir: Path) -> bytes:
    return (photos_dir / "anger_01.jpg").read_bytes()


@pytest.fixture(scope="session")
def sadness_photo(photos_dir: Path) -> bytes:
    return (photos_dir / "sadness_01.jpg").read_bytes()


@pytest.fixture(scope="session")
def small_png() -> bytes:
    """A valid image small enough for every limit of `limited_client`."""
    data = encode(np.random.default_rng(1).integers(0, 256, (32, 32), dtype=np.uint8), "PNG")
    assert len(data) < LIMITED_UPLOAD_BYTES
    return data
