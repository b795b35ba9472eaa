"""GET /metrics: Prometheus counters, histograms and gauges of the service, in one process and in
prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, several workers)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.api.metrics import MULTIPROC_ENV
from app.core.inference import LoadedModel
from app.main import create_app
from tests.app.conftest import API_KEY, assert_error, file_part, settings_for, uniform_gray

REPO_ROOT = Path(__file__).resolve().parents[3]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(client: TestClient, name: str, **labels: str) -> float:
    response = client.get("/metrics")
    assert response.status_code == 200
    return samples(response.text).get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def metered(model_path: Path, loaded_model: LoadedModel) -> Iterator[TestClient]:
    """Its own app: its own registry, so counts start at zero."""
    app = create_app(settings_for(model_path, max_upload_bytes=4096), model=loaded_model)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_the_exposition_is_prometheus_text(metered: TestClient) -> None:
    response = metered.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "emotion_http_requests",
        "emotion_http_request_duration_seconds",
        "emotion_model_batch_size",
        "emotion_model_queue_depth",
        "emotion_predictions",
        "emotion_face_detection",
        "emotion_model_info",
    } <= names


def test_requests_are_counted_and_timed_by_route_template_and_status(metered: TestClient) -> None:
    ok = {"method": "POST", "route": "/predict", "status": "200"}
    too_large = {**ok, "status": "413"}
    before = value(metered, "emotion_http_requests_total", **ok)
    before_413 = value(metered, "emotion_http_requests_total", **too_large)
    before_timed = value(metered, "emotion_http_request_duration_seconds_count", **ok)
    assert metered.post("/predict?faces=off", files=file_part(uniform_gray(32))).status_code == 200
    # Refused by BodyLimitMiddleware before routing: still filed under its route.
    assert metered.post("/predict", files=file_part(b"\0" * 100_000)).status_code == 413
    assert value(metered, "emotion_http_requests_total", **ok) == before + 1
    assert value(metered, "emotion_http_requests_total", **too_large) == before_413 + 1
    assert value(metered, "emotion_http_request_duration_seconds_count", **ok) == before_timed + 1


def test_unknown_paths_share_one_series(metered: TestClient) -> None:
    for path in ("/nope", "/wp-admin.php", "/a/b/c"):
        metered.get(path)
    assert value(metered, "emotion_http_requests_total", method="GET", route="unmatched", status="404") == 3
    text = metered.get("/metrics").text
    assert "wp-admin" not in text
    metered.request("BREW", "/predict")
    assert value(metered, "emotion_http_requests_total", method="other", route="/predict", status="405") == 1


def test_predictions_faces_and_batches_are_counted_per_model(metered: TestClient) -> None:
    faces = "emotion_face_detection_total"
    before_found = value(metered, faces, model="emotion_cnn", outcome="found")
    before_missing = value(metered, faces, model="emotion_cnn", outcome="not_found")
    before_batches = value(metered, "emotion_model_batch_size_count", model="emotion_cnn")
    # (this app takes 4 KiB files: a small gray image, where no face is found)
    assert metered.post("/predict", files=file_part(uniform_gray(32))).status_code == 200
    assert value(metered, faces, model="emotion_cnn", outcome="not_found") == before_missing + 1
    assert value(metered, faces, model="emotion_cnn", outcome="found") == before_found
    # one model call: the test-time flip's mirror image goes into the same call
    assert value(metered, "emotion_model_batch_size_count", model="emotion_cnn") == before_batches + 1
    answer = metered.post("/predict?faces=off&model=emotion_cnn_neutral", files=file_part(uniform_gray(32)))
    emotion = answer.json()["emotion"]
    assert value(metered, faces, model="emotion_cnn_neutral", outcome="off") >= 1
    assert value(metered, "emotion_predictions_total", model="emotion_cnn_neutral", emotion=emotion) >= 1
    assert value(metered, "emotion_model_queue_depth", model="emotion_cnn_neutral") == 0


def test_the_models_are_described(metered: TestClient) -> None:
    families = {f.name: f for f in text_string_to_metric_families(metered.get("/metrics").text)}
    info = {s.labels["model"]: s.labels for s in families["emotion_model_info"].samples}
    assert set(info) == {"emotion_cnn", "emotion_cnn_neutral"}
    assert info["emotion_cnn"]["default"] == "true" and info["emotion_cnn_neutral"]["default"] == "false"
    assert "neutral" in info["emotion_cnn_neutral"]["labels"].split(",")
    assert info["emotion_cnn"]["model_id"].startswith("emotion_cnn@")


def test_metrics_can_be_turned_off(model_path: Path, loaded_model: LoadedModel) -> None:
    app = create_app(settings_for(model_path, models=[], metrics_enabled=False), model=loaded_model)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert_error(client.get("/metrics"), 404, "not_found")
        assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_metrics_can_require_the_api_key(model_path: Path, loaded_model: LoadedModel) -> None:
    settings = settings_for(model_path, models=[], api_key=API_KEY, metrics_require_api_key=True)
    with TestClient(create_app(settings, model=loaded_model), raise_server_exceptions=False) as client:
        assert_error(client.get("/metrics"), 401, "unauthorized")
        assert client.get("/metrics", headers={"X-API-Key": API_KEY}).status_code == 200
    # Keys configured, metrics open (the default): Prometheus scrapes without one.
    settings = settings_for(model_path, models=[], api_key=API_KEY)
    with TestClient(create_app(settings, model=loaded_model), raise_server_exceptions=False) as client:
        assert client.get("/metrics").status_code == 200


WORKER = textwrap.dedent(
    """
    import sys
    from app.api.metrics import build_metrics
    from app.core.pipeline import Classification, FaceResult

    metrics = build_metrics()
    metrics.requests.labels(method="POST", route="/predict", status="200").inc(int(sys.argv[1]))
    metrics.describe_model("emotion_cnn", "emotion_cnn@x", ["a", "b"], default=True)
    metrics.set_queue_depth("emotion_cnn", int(sys.argv[1]))
    face = FaceResult(box=None, emotion="a", confidence=0.9, probabilities={"a": 0.9, "b": 0.1})
    metrics.record("emotion_cnn", Classification([face], "largest", False, "emotion_cnn@x", 1, 1, 2))
    metrics.batch_observer("emotion_cnn")(3, 0)
    if len(sys.argv) > 2:
        sys.stdout.write(metrics.exposition().decode())
    """
)


def test_multiprocess_mode_adds_up_every_worker(tmp_path: Path) -> None:
    """Three processes with PROMETHEUS_MULTIPROC_DIR set: whichever answers /metrics shows the sums."""
    env = {**os.environ, MULTIPROC_ENV: str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    run = [sys.executable, "-c", WORKER]
    subprocess.run([*run, "2"], env=env, check=True, cwd=REPO_ROOT)
    subprocess.run([*run, "5"], env=env, check=True, cwd=REPO_ROOT)
    text = subprocess.run(
        [*run, "1", "expose"], env=env, check=True, cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout
    found = samples(text)

    def get(name: str, **labels: str) -> float:
        return found[(name, frozenset(labels.items()))]

    assert get("emotion_http_requests_total", method="POST", route="/predict", status="200") == 8
    assert get("emotion_predictions_total", model="emotion_cnn", emotion="a") == 3
    assert get("emotion_face_detection_total", model="emotion_cnn", outcome="not_found") == 3
    assert get("emotion_model_batch_size_count", model="emotion_cnn") == 3
    # the model is described once (max over the processes), not three times
    assert (
        get("emotion_model_info", model="emotion_cnn", model_id="emotion_cnn@x", labels="a,b", default="true")
        == 1
    )
    assert list(tmp_path.glob("*.db")), "the values live in files, one set per process"


def test_without_the_variable_each_app_has_its_own_registry(
    model_path: Path, loaded_model: LoadedModel
) -> None:
    assert MULTIPROC_ENV not in os.environ
    first = create_app(settings_for(model_path), model=loaded_model).state.service.metrics
    second = create_app(settings_for(model_path), model=loaded_model).state.service.metrics
    first.requests.labels(method="GET", route="/x", status="200").inc()
    assert b'route="/x"' in first.exposition() and b'route="/x"' not in second.exposition()


@pytest.mark.slow
def test_two_uvicorn_workers_answer_the_same_totals(tmp_path: Path, photos_dir: Path) -> None:
    """For real: `uvicorn --workers 2` with PROMETHEUS_MULTIPROC_DIR; whichever worker answers /metrics,
    it counts the requests both workers answered."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, MULTIPROC_ENV: str(tmp_path), "EMOTION_LOG_LEVEL": "warning", "EMOTION_MODELS": ""}
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(command, cwd=REPO_ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        pids: set[str] = set()
        while len(pids) < 2:  # both workers up: each wrote its files
            assert time.monotonic() < deadline, "the two workers did not start"
            assert server.poll() is None, "uvicorn exited"
            pids = {path.stem.rsplit("_", 1)[-1] for path in tmp_path.glob("gauge_max_*.db")}
            time.sleep(0.5)
        photo = (photos_dir / "anger_01.jpg").read_bytes()
        with httpx.Client(base_url=url, timeout=60) as client:
            while client.get("/ready").status_code != 200:
                time.sleep(0.5)
            for _ in range(6):
                # a new connection each time, so both workers get some
                answer = httpx.post(
                    f"{url}/predict", files={"file": ("a.jpg", photo, "image/jpeg")}, timeout=60
                )
                assert answer.status_code == 200
            for _ in range(4):
                found = samples(httpx.get(f"{url}/metrics", timeout=30).text)
                key = (
                    "emotion_http_requests_total",
                    frozenset({"method": "POST", "route": "/predict", "status": "200"}.items()),
                )
                assert found[key] == 6
    finally:
        server.terminate()
        server.wait(timeout=60)
