"""WebSocket /stream end to end (TestClient, the shipped model): messages, track ids, backpressure, misuse."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.api.routes.stream import LatestFrame, StreamSession
from app.core.config import Settings
from app.core.inference import LoadedModel
from app.core.pipeline import Classification
from app.main import create_app
from tests.app.conftest import API_KEY, settings_for

FLOOD_FRAMES = 40
MEGABYTE = 1024 * 1024


@pytest.fixture(scope="module")
def stream_client(model_path: Path, loaded_model: LoadedModel) -> Iterator[TestClient]:
    settings = settings_for(model_path, stream_max_fps=10_000, stream_max_frame_bytes=300_000)
    with TestClient(create_app(settings, model=loaded_model)) as client:
        yield client


@pytest.fixture(scope="module")
def keyed_client(model_path: Path, loaded_model: LoadedModel) -> Iterator[TestClient]:
    settings = settings_for(model_path, api_key=API_KEY, stream_max_fps=2)
    with TestClient(create_app(settings, model=loaded_model)) as client:
        yield client


def receive(ws: Any) -> dict[str, Any]:
    return json.loads(ws.receive_text())


def test_one_message_per_frame_with_stable_track_ids(stream_client: TestClient, anger_photo: bytes) -> None:
    with stream_client.websocket_connect("/stream") as ws:
        ws.send_text(json.dumps({"faces": "all", "half_life": 2}))
        ready = receive(ws)
        assert ready["type"] == "ready" and ready["faces"] == "all" and ready["half_life"] == 2
        labels = ready["labels"]
        messages = []
        for _ in range(5):
            ws.send_bytes(anger_photo)
            messages.append(receive(ws))
    assert [m["type"] for m in messages] == ["frame"] * 5
    assert [m["frame"] for m in messages] == list(range(5))
    assert all(m["dropped"] == 0 for m in messages)
    tracks = {face["track_id"] for m in messages for face in m["faces"]}
    assert len(messages[0]["faces"]) >= 1 and tracks == {f["track_id"] for f in messages[0]["faces"]}
    first = messages[0]["faces"][0]
    assert first["track_id"] >= 1 and first["box"]["width"] > 0
    assert list(first["probabilities"]) == labels and list(first["smoothed"]) == labels
    assert first["emotion"] == max(first["smoothed"], key=first["smoothed"].get)
    assert sum(first["smoothed"].values()) == pytest.approx(1.0, abs=1e-6)


def test_smoothing_follows_the_half_life(stream_client: TestClient, ck_samples: list[Path]) -> None:
    happy = next(p for p in ck_samples if p.parent.name == "happy").read_bytes()
    surprise = next(p for p in ck_samples if p.parent.name == "surprise").read_bytes()
    with stream_client.websocket_connect("/stream") as ws:
        ws.send_text(json.dumps({"faces": "largest", "half_life": 1}))
        receive(ws)
        ws.send_bytes(happy)
        one = receive(ws)["faces"][0]
        ws.send_bytes(surprise)
        two = receive(ws)["faces"][0]
    assert one["track_id"] == two["track_id"]  # same crop size: the same box
    for label, p in two["smoothed"].items():
        assert p == pytest.approx((one["smoothed"][label] + two["probabilities"][label]) / 2, abs=1e-9)


def test_a_flood_drops_frames_and_every_frame_is_accounted_for(
    stream_client: TestClient, anger_photo: bytes
) -> None:
    with stream_client.websocket_connect("/stream") as ws:
        receive_ready = True
        for _ in range(FLOOD_FRAMES):
            ws.send_bytes(anger_photo)
        processed = []
        while True:
            message = receive(ws)
            if receive_ready:
                assert message["type"] == "ready"
                receive_ready = False
                continue
            assert message["type"] == "frame", message
            processed.append(message)
            if message["frame"] == FLOOD_FRAMES - 1:  # the newest frame is never dropped
                break
    frames = [m["frame"] for m in processed]
    assert frames == sorted(frames)
    last = processed[-1]
    assert last["dropped"] > 0
    assert len(processed) + last["dropped"] == FLOOD_FRAMES


def test_the_mailbox_keeps_only_the_newest_frame() -> None:
    async def scenario() -> None:
        box = LatestFrame()
        for i in range(1000):
            box.put(i, bytes(1000))
        assert box.dropped == 999
        assert await box.take() == (999, bytes(1000))
        box.put(1000, b"x")
        assert await box.take() == (1000, b"x")
        assert box.dropped == 999

    asyncio.run(scenario())


def test_bad_and_too_large_frames_get_an_error_and_the_stream_goes_on(
    stream_client: TestClient, anger_photo: bytes
) -> None:
    with stream_client.websocket_connect("/stream") as ws:
        ws.send_bytes(b"not an image at all")
        assert receive(ws)["type"] == "ready"
        bad = receive(ws)
        assert bad["type"] == "error" and bad["frame"] == 0
        assert bad["error"]["code"] == "unsupported_image_type"
        ws.send_bytes(b"\xff" * 300_001)
        big = receive(ws)
        assert big["frame"] == 1 and big["error"]["code"] == "frame_too_large"
        ws.send_bytes(anger_photo)
        good = receive(ws)
        assert good["type"] == "frame" and good["frame"] == 2


@pytest.mark.parametrize(
    "config",
    ['{"faces": "some"}', '{"half_life": -1}', '{"model": "another"}', '{"colour": 1}', "not json"],
)
def test_a_bad_configuration_closes_with_1008(stream_client: TestClient, config: str) -> None:
    with stream_client.websocket_connect("/stream") as ws:
        ws.send_text(config)
        message = receive(ws)
        assert message["error"]["code"] == "invalid_stream_config"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1008


def test_a_configuration_after_frames_closes_with_1008(stream_client: TestClient, anger_photo: bytes) -> None:
    with stream_client.websocket_connect("/stream") as ws:
        ws.send_bytes(anger_photo)
        assert receive(ws)["type"] == "ready"
        assert receive(ws)["type"] == "frame"
        ws.send_text("{}")
        assert receive(ws)["error"]["code"] == "invalid_stream_config"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1008


def test_the_served_model_may_be_named(stream_client: TestClient, loaded_model: LoadedModel) -> None:
    with stream_client.websocket_connect("/stream") as ws:
        ws.send_text(json.dumps({"model": loaded_model.model_id.partition("@")[0]}))
        assert receive(ws)["model_id"] == loaded_model.model_id


def test_an_api_key_is_required_when_configured(keyed_client: TestClient) -> None:
    with keyed_client.websocket_connect("/stream") as ws:
        assert receive(ws)["error"]["code"] == "unauthorized"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1008
    for kwargs in ({"headers": {"X-API-Key": API_KEY}}, {"params": {"api_key": API_KEY}}):
        url = "/stream" + (f"?api_key={API_KEY}" if "params" in kwargs else "")
        with keyed_client.websocket_connect(url, headers=kwargs.get("headers") or {}) as ws:
            ws.send_text("{}")
            assert receive(ws)["type"] == "ready"


def test_frames_past_the_rate_limit_are_dropped(keyed_client: TestClient, anger_photo: bytes) -> None:
    with keyed_client.websocket_connect("/stream", headers={"X-API-Key": API_KEY}) as ws:
        for _ in range(6):  # within a second or two; at most 2 a second are taken
            ws.send_bytes(anger_photo)
        assert receive(ws)["type"] == "ready"
        first = receive(ws)
    assert first["type"] == "frame"
    # Rate-dropped frames are counted as they arrive; the mailbox keeps at most one of the rest.
    assert first["frame"] <= 1 or first["dropped"] >= 1


def test_not_ready_closes_with_1013(idle_client: TestClient) -> None:
    with idle_client.websocket_connect("/stream") as ws:
        assert receive(ws)["error"]["code"] == "not_ready"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1013


class BlockedClassifier:
    """Classifies nothing until ``gate`` opens: the service is slower than the frames come."""

    model_id = "fake@0"
    max_pixels = 10**6

    def __init__(self) -> None:
        self.labels = ["a", "b"]
        self.gate = asyncio.Event()
        self.calls = 0

    async def classify(self, data: bytes, mode: str) -> Classification:
        self.calls += 1
        await self.gate.wait()
        return Classification([], mode, False, self.model_id, 0.0, 0.0, 0.0)  # type: ignore[arg-type]


class FloodingSocket:
    """Sends ``count`` frames of ``size`` bytes as fast as they are read, each made when it is read."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size, self.read = count, size, 0
        self.sent: list[str] = []
        self.peak_while_flooding = 0

    async def receive(self) -> dict[str, Any]:
        await asyncio.sleep(0)  # the processing task gets its turns
        if self.read == self.count:
            self.peak_while_flooding = tracemalloc.get_traced_memory()[1]
            return {"type": "websocket.disconnect"}
        self.read += 1
        return {"type": "websocket.receive", "bytes": bytes([self.read % 256]) * self.size}

    async def send_text(self, text: str) -> None:
        self.sent.append(text)


def test_a_flood_holds_at_most_a_few_frames_in_memory() -> None:
    """200 frames of 1 MiB against a service that answers none of them: memory stays at a few frames."""

    async def scenario() -> tuple[StreamSession, FloodingSocket, BlockedClassifier, int]:
        socket, classifier = FloodingSocket(200, MEGABYTE), BlockedClassifier()
        settings = Settings(stream_max_fps=10**6, stream_max_frame_bytes=2 * MEGABYTE)
        session = StreamSession(socket, classifier, settings, b"secret", None)  # type: ignore[arg-type]
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            worker = asyncio.create_task(session.work())
            await session.receive()
            classifier.gate.set()
            await asyncio.sleep(0.05)  # the blocked frame and the newest one are answered
            worker.cancel()
            return session, socket, classifier, socket.peak_while_flooding - baseline
        finally:
            tracemalloc.stop()

    session, socket, classifier, growth = asyncio.run(scenario())
    assert socket.read == 200
    assert growth < 5 * MEGABYTE, growth  # 200 MiB went through
    assert classifier.calls == 2  # the first frame (blocked) and the newest one
    assert session.mailbox.dropped == 198
    answers = [json.loads(text) for text in socket.sent if '"frame"' in text]
    assert [a["frame"] for a in answers if a["type"] == "frame"] == [0, 199]
    assert answers[-1]["dropped"] == 198


def test_a_stream_may_ask_for_another_served_model(
    model_path: Path, loaded_model: LoadedModel, anger_photo: bytes
) -> None:
    from app.core.config import SHIPPED_MODELS_DIR
    from app.core.inference import load_model

    neutral = load_model(SHIPPED_MODELS_DIR / "emotion_cnn_neutral.h5")
    app = create_app(settings_for(model_path, models=None), model=loaded_model, models=[neutral])
    with TestClient(app) as client, client.websocket_connect("/stream") as ws:
        ws.send_text(json.dumps({"model": "emotion_cnn_neutral"}))
        ready = receive(ws)
        assert ready["model_id"] == neutral.model_id and "neutral" in ready["labels"]
        ws.send_bytes(anger_photo)
        frame = receive(ws)
    assert frame["model_id"] == neutral.model_id and list(frame["faces"][0]["smoothed"]) == ready["labels"]
