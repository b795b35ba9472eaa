"""The /docs page renders in a real headless Chromium with no internet access.

The real service runs (``python -m app`` under uvicorn, in a subprocess); Debian's ``chromium``
loads /docs with every host but 127.0.0.1 unresolvable, so a CDN asset could not load. Swagger UI
must have rendered the operations (``POST /predict`` in the DOM) and the screenshot must not be blank.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import require

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m app`` on a free port, ready; stopped (SIGTERM) afterwards."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    env = {
        **os.environ,
        "EMOTION_HOST": "127.0.0.1",
        "EMOTION_PORT": str(port),
        "EMOTION_LOG_LEVEL": "warning",
    }
    env.pop("EMOTION_API_KEY", None)
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"the service exited with {server.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the service was not ready within {START_TIMEOUT_S} s:\n{log_path.read_text()}")
            time.sleep(0.25)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no internet: only the service
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_docs_render_offline_in_chromium(live_url: str, tmp_path: Path) -> None:
    require(
        Path(CHROMIUM).is_file(), f"Debian's chromium is not installed ({CHROMIUM}): apt-get install chromium"
    )

    dom = _chromium(["--dump-dom", f"{live_url}/docs"], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "swagger-ui" in html
    # The operations were rendered from /openapi.json (they are not in the served HTML).
    assert "opblock" in html, html[-2000:]
    for path in (
        "/predict",
        "/predict/batch",
        "/annotate",
        "/challenges",
        "/challenges/verify",
        "/health",
        "/ready",
        "/model",
        "/models",
        "/metrics",
    ):
        assert f'class="opblock-summary-path" data-path="{path}"' in html, path
    methods = re.findall(r'class="opblock-summary-method">([A-Z]+)<', html)
    assert sorted(methods) == ["GET"] * 5 + ["POST"] * 5, methods

    shot = tmp_path / "docs.png"
    done = _chromium(
        [f"--screenshot={shot}", "--window-size=1280,1600", f"{live_url}/docs"], tmp_path / "profile-png"
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 1600)
        pixels = np.asarray(image.convert("RGB"))
    colors = np.unique(pixels.reshape(-1, 3), axis=0)
    assert pixels.std() > 10, "the screenshot is blank"
    assert len(colors) > 50, f"the screenshot has only {len(colors)} colours"
    # Swagger UI's coloured method badges (POST green, GET blue) are on screen.
    red, green, blue = (pixels[..., i].astype(int) for i in range(3))
    assert ((green - red > 60) & (green - blue > 20)).sum() > 500, "no green POST badge in the screenshot"
    assert ((blue - red > 60) & (blue > 150)).sum() > 500, "no blue GET badge in the screenshot"


@pytest.mark.slow
def test_live_service_answers_a_real_photo(live_url: str, photos_dir: Path) -> None:
    """The same service over real HTTP (uvicorn): a photo, a batch and an error."""
    photo = (photos_dir / "anger_01.jpg").read_bytes()
    response = httpx.post(
        f"{live_url}/predict", files={"file": ("anger_01.jpg", photo, "image/jpeg")}, timeout=30
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["face_found"] is True and len(body["probabilities"]) == 7
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    files = [("file", ("a.jpg", photo, "image/jpeg")), ("file", ("t.jpg", b"text", "image/jpeg"))]
    results = httpx.post(f"{live_url}/predict/batch", files=files, timeout=30).json()["results"]
    assert [r["ok"] for r in results] == [True, False]
    error = httpx.post(
        f"{live_url}/predict", content=b"x", headers={"content-type": "text/plain"}, timeout=30
    )
    assert error.status_code == 415 and error.json()["error"]["code"] == "expected_multipart"
    as_json = httpx.post(f"{live_url}/predict", json={"b64": base64.b64encode(photo).decode()}, timeout=30)
    assert as_json.json()["probabilities"] == pytest.approx(body["probabilities"], abs=1e-6)
