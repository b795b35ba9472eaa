"""Classifier admission: past the decoding threads and EMOTION_DECODE_QUEUE_MAX waiting uploads, a
request is refused at once with 503 overloaded and Retry-After, and the admitted ones are served."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.conftest import assert_error, file_part, settings_for


def wait_until(condition: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds} s"
        time.sleep(0.01)


def test_uploads_past_the_decode_queue_get_503_at_once(
    model_path: Path, loaded_model, small_png: bytes
) -> None:
    settings = settings_for(model_path, decode_threads=1, decode_queue_max=1)
    with TestClient(create_app(settings, model=loaded_model), raise_server_exceptions=False) as client:
        classifier = client.app.state.service.classifier
        detector, release, entered = classifier.detector, threading.Event(), threading.Event()

        def blocked_detect(image: np.ndarray) -> list[Any]:
            entered.set()
            assert release.wait(60)
            return detector.detect(image)

        classifier.detector = SimpleNamespace(detect=blocked_detect, framing=detector.framing)

        def post() -> Any:
            return client.post("/predict", files=file_part(small_png))

        with ThreadPoolExecutor(max_workers=2) as pool:
            decoding = pool.submit(post)
            wait_until(entered.is_set, "the first upload reaching the decoder")
            waiting = pool.submit(post)
            wait_until(lambda: classifier._decoding == 2, "the second upload queueing for the decoder")
            refused = post()  # one decoding, one waiting: the third is turned away while they are held
            assert not decoding.done() and not waiting.done()
            release.set()
            assert decoding.result(timeout=60).status_code == 200
            assert waiting.result(timeout=60).status_code == 200
        assert_error(refused, 503, "overloaded")
        assert refused.headers["retry-after"] == "1"
        assert classifier._decoding == 0
        assert post().status_code == 200  # the count went back down
