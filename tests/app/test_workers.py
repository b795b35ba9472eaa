"""Several worker processes (``EMOTION_WORKERS``): the uvicorn config they get, and a real start."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

import app.__main__ as entry
from app.api.metrics import MULTIPROC_ENV
from app.core.config import Settings, usable_cores
from app.workers import APP_FACTORY, provide_prometheus_dir, worker_config
from bench.load.services import OURS, Service, process_tree
from tests.app.conftest import MODEL_PATH


def test_the_default_is_one_worker_per_core() -> None:
    assert Settings().workers == usable_cores() >= 1


def test_workers_get_the_app_factory_and_the_same_server_options() -> None:
    settings = Settings(workers=3, port=8123, keep_alive_s=33, shutdown_timeout_s=7)
    config = worker_config(settings, {"version": 1})
    assert (config.app, config.factory, config.workers) == (APP_FACTORY, True, 3)
    assert (config.port, config.timeout_keep_alive, config.timeout_graceful_shutdown) == (8123, 33, 7)
    assert config.limit_concurrency == 512 and config.server_header is False


def test_one_worker_serves_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setenv("EMOTION_WORKERS", "1")
    monkeypatch.setattr(entry.uvicorn, "run", lambda app, **options: served.update(options))
    monkeypatch.setattr(entry, "serve_workers", lambda *_: pytest.fail("no supervisor for one worker"))
    entry.get_settings.cache_clear()
    try:
        assert entry.main() == 0
    finally:
        entry.get_settings.cache_clear()
    assert served["port"] == Settings().port


def test_workers_get_a_fresh_metrics_folder_unless_one_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    provide_prometheus_dir()
    assert os.environ[MULTIPROC_ENV] == str(tmp_path)
    monkeypatch.delenv(MULTIPROC_ENV)
    provide_prometheus_dir()
    made = Path(os.environ[MULTIPROC_ENV])
    assert made.is_dir() and not any(made.iterdir()) and made != tmp_path


@pytest.mark.slow
def test_python_m_app_with_two_workers_serves_from_two_processes_and_stops_on_sigterm(
    face_png: bytes,
) -> None:
    with Service(OURS, MODEL_PATH, env={"EMOTION_WORKERS": "2", "EMOTION_LOG_LEVEL": "info"}) as service:
        assert service.process is not None
        children = process_tree(service.pid)[1:]
        workers = [pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 2, children
        for pid in workers:  # each worker listens on the shared port and has the metrics folder
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert any(entry.startswith(MULTIPROC_ENV.encode() + b"=") for entry in environ)
        answers = [service.post("/predict", *png_upload(face_png)) for _ in range(8)]
        assert [status for status, _ in answers] == [200] * 8
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=60) == 0
        assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
        log = service.log_tail(chars=1_000_000)
    messages = [json.loads(line).get("message", "") for line in log.splitlines() if line.startswith("{")]
    assert messages.count("Application startup complete.") == 2
    finished = [m for m in messages if m.startswith("Finished server process")]
    assert len(finished) == 2  # each worker stopped by itself (the parent's exit status is 0, above)
    # A worker logs its drain from its event loop; seen once in three runs with one line only, so at
    # least one is required here (tests/app/test_graceful_shutdown.py checks draining under load).
    assert "SIGTERM: not ready any more" in log


def png_upload(image: bytes) -> tuple[bytes, str]:
    boundary = "speedboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="face.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def face_png(ckplus_dir: Path) -> bytes:
    return sorted((ckplus_dir / "happy").glob("*.png"))[0].read_bytes()


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000\n", None), ("100000 100000\n", 1), ("150000 100000\n", 2), ("garbage", None)],
)
def test_a_container_cpu_quota_caps_the_default_workers(
    tmp_path: Path, cpu_max: str, expected: int | None
) -> None:
    affinity = len(os.sched_getaffinity(0))
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert usable_cores(tmp_path / "cpu.max") == min(affinity, expected or affinity)
    assert usable_cores(tmp_path / "missing") == affinity
