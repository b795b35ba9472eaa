"""on_termination: a termination signal calls the app's callback, then the server's own handler; and
a draining service answers /ready with 503 while it still serves the requests that reach it."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path
from types import FrameType

import pytest
from fastapi.testclient import TestClient

from app.api.shutdown import on_termination
from app.main import create_app
from tests.app.conftest import assert_error, file_part, settings_for


@pytest.fixture
def server_handler() -> list[int]:
    """Stands in for uvicorn's handler (which sets should_exit); restored afterwards."""
    received: list[int] = []

    def handler(sig: int, frame: FrameType | None) -> None:
        received.append(sig)

    before = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield received
    for sig, previous in before.items():
        signal.signal(sig, previous)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_callback_runs_first_then_the_server_handler(
    server_handler: list[int], sig: signal.Signals
) -> None:
    order: list[str] = []
    installed = signal.getsignal(sig)

    async def serve() -> None:
        with on_termination(lambda: order.append(f"callback, server saw {len(server_handler)}")):
            signal.raise_signal(sig)
            await asyncio.sleep(0)  # the loop logs the signal
        assert signal.getsignal(sig) is installed  # the server's handler is back

    asyncio.run(serve())
    assert order == ["callback, server saw 0"]
    assert server_handler == [sig]


def test_outside_the_main_thread_nothing_is_installed(server_handler: list[int]) -> None:
    installed = signal.getsignal(signal.SIGTERM)
    seen: list[object] = []

    def in_thread() -> None:
        async def serve() -> None:
            with on_termination(lambda: None):
                seen.append(signal.getsignal(signal.SIGTERM))

        asyncio.run(serve())

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert seen == [installed]


def test_draining_turns_ready_503_and_requests_still_served(
    model_path: Path, loaded_model, small_png: bytes
) -> None:
    with TestClient(
        create_app(settings_for(model_path), model=loaded_model), raise_server_exceptions=False
    ) as client:
        assert client.get("/ready").status_code == 200
        client.app.state.service.begin_draining()  # what the SIGTERM handler calls
        response = client.get("/ready")
        assert_error(response, 503, "not_ready")
        assert "shutting down" in response.json()["error"]["message"]
        assert response.headers["retry-after"] == "1"
        assert client.get("/health").status_code == 200
        # A request that reaches the process while it drains (on a kept-alive connection) is served.
        assert client.post("/predict", files=file_part(small_png)).status_code == 200
