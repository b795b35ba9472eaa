"""WebSocket /stream: frames in, one JSON message per processed frame out, faces tracked across frames.

Protocol: an optional first text message, the configuration (``StreamConfig``); then binary messages,
each one encoded image (JPEG, PNG, ...). The service answers ``ready`` once, then for each frame it
processes a ``frame`` message (track ids, boxes, raw and smoothed probabilities), or an ``error``
message for a frame it could not use, and the stream goes on.

Backpressure: a connection holds at most one waiting frame (``LatestFrame``). A frame that arrives while
another waits replaces it, and the replaced one is counted in ``dropped``; frames past
``EMOTION_STREAM_MAX_FPS`` in a second are dropped and counted too. Each frame goes through
``Classifier.classify``, the same bounded decoding pool and dynamic batcher as /predict.

Misuse closes the connection with a code: 1008 (policy: no or wrong API key, rate limit, a bad
configuration, a text message after the frames began, a challenge not open), 1013 (try again later: the
model is not ready).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from app.api.challenge_desk import get_desk
from app.api.schemas import ErrorDetail, FaceBox
from app.api.state import ServiceState
from app.api.stream_schemas import (
    ChallengeProgress,
    StreamConfig,
    StreamError,
    StreamFace,
    StreamFrameResult,
    StreamReady,
)
from app.core import challenge_tokens
from app.core.challenge import ChallengeAttempt
from app.core.config import Settings
from app.core.errors import (
    FrameTooLargeError,
    ServiceError,
    StreamConfigError,
    UnauthorizedError,
)
from app.core.pipeline import Classifier
from app.core.tracking import Detection, FaceTracker, TrackedFace, face_signatures

log = logging.getLogger(__name__)

STREAM = "/stream"
CLOSE_POLICY = 1008
CLOSE_TRY_LATER = 1013
CLOSE_INTERNAL = 1011


class LatestFrame:
    """A mailbox of one: the newest frame wins, the one it replaces is counted as dropped."""

    def __init__(self) -> None:
        self._frame: tuple[int, bytes] | None = None
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, index: int, data: bytes) -> None:
        if self._frame is not None:
            self.dropped += 1
        self._frame = (index, data)
        self._ready.set()

    async def take(self) -> tuple[int, bytes]:
        await self._ready.wait()
        self._ready.clear()
        frame, self._frame = self._frame, None
        assert frame is not None
        return frame


@dataclass
class FrameRate:
    """At most ``per_second`` frames in each whole second (a fixed window)."""

    per_second: float
    _window: int = -1
    _count: int = 0

    def allow(self, now: float) -> bool:
        window = int(now)
        if window != self._window:
            self._window, self._count = window, 0
        self._count += 1
        return self._count <= self.per_second


@dataclass
class StreamSession:
    """The state of one connection: small, and gone when the connection ends."""

    websocket: WebSocket
    classifier: Classifier
    settings: Settings
    secret: bytes
    attempt: ChallengeAttempt | None
    config: StreamConfig = field(default_factory=StreamConfig)
    tracker: FaceTracker = field(init=False)
    mailbox: LatestFrame = field(default_factory=LatestFrame)
    rate_dropped: int = 0
    frames: int = 0  # frames received
    find_model: Callable[[str], Classifier] | None = None  # a served model's classifier by name
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.tracker = self.new_tracker()

    def new_tracker(self) -> FaceTracker:
        return FaceTracker(
            half_life=self.config.half_life, min_similarity=self.settings.challenge_min_similarity
        )

    @property
    def dropped(self) -> int:
        return self.mailbox.dropped + self.rate_dropped

    async def send(self, message: StreamFrameResult | StreamError | StreamReady) -> None:
        async with self._send_lock:
            await self.websocket.send_text(message.model_dump_json())

    async def send_error(self, frame: int | None, error: ServiceError) -> None:
        detail = ErrorDetail(code=error.code, message=error.message)
        await self.send(StreamError(frame=frame, dropped=self.dropped, error=detail))

    def configure(self, text: str) -> None:
        try:
            config = StreamConfig.model_validate_json(text)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()
            )
            raise StreamConfigError(f"invalid configuration: {problems}") from None
        if config.model is not None:  # one of the models served side by side (GET /models)
            if self.find_model is None:
                raise StreamConfigError("this stream cannot switch models")
            try:
                self.classifier = self.find_model(config.model)
                if self.attempt is not None:  # the challenge's steps must be labels of that model
                    attempt = self.attempt
                    self.attempt = ChallengeAttempt(
                        attempt.challenge, self.classifier.labels, attempt.hold_frames, attempt.threshold
                    )
            except ServiceError as exc:
                raise StreamConfigError(f"invalid configuration: {exc.message}") from None
        self.config = config
        self.tracker = self.new_tracker()

    def ready_message(self) -> StreamReady:
        return StreamReady(
            model_id=self.classifier.model_id,
            labels=self.classifier.labels,
            faces=self.config.faces,
            half_life=self.config.half_life,
            max_frame_bytes=self.settings.stream_max_frame_bytes,
            max_fps=self.settings.stream_max_fps,
        )

    async def process(self, index: int, data: bytes) -> StreamFrameResult:
        started = time.perf_counter()
        classifier = self.classifier
        result = await classifier.classify(data, self.config.faces)
        boxes = [face.box for face in result.faces]
        signatures: list[np.ndarray | None] = [None] * len(boxes)
        if self.attempt is not None and self.attempt.status == "pending":
            # The appearance of each face, so that another face put in the same place breaks the track.
            signatures = await anyio.to_thread.run_sync(
                lambda: face_signatures(data, boxes, max_pixels=classifier.max_pixels),
                limiter=classifier.decoders,
            )
        detections = [
            Detection(face.box, np.array(list(face.probabilities.values())), signature)
            for face, signature in zip(result.faces, signatures, strict=True)
        ]
        tracked = self.tracker.update(detections)
        labels = classifier.labels
        faces = []
        for face, track in zip(result.faces, tracked, strict=True):
            smoothed = {label: float(p) for label, p in zip(labels, track.smoothed, strict=True)}
            faces.append(
                StreamFace(
                    track_id=track.track_id,
                    box=FaceBox.of(face.box),
                    face_confidence=face.face_confidence,
                    emotion=max(smoothed, key=smoothed.__getitem__),
                    probabilities=face.probabilities,
                    smoothed=smoothed,
                )
            )
        return StreamFrameResult(
            frame=index,
            dropped=self.dropped,
            faces=faces,
            face_found=result.face_found,
            model_id=result.model_id,
            processing_ms=round((time.perf_counter() - started) * 1000, 3),
            challenge=self.judge(tracked),
        )

    def judge(self, tracked: list[TrackedFace]) -> ChallengeProgress | None:
        attempt = self.attempt
        if attempt is None:
            return None
        was_pending = attempt.status == "pending"
        now = time.time()
        status = attempt.observe(tracked, now)
        token = None
        if was_pending and status == "passed":
            challenge = attempt.challenge
            token = challenge_tokens.sign(
                self.secret, challenge.id, challenge.steps, now, self.settings.challenge_token_ttl_s
            )
        return ChallengeProgress(
            id=attempt.challenge.id,
            status=status,
            steps=list(attempt.challenge.steps),
            step=attempt.step,
            held=attempt.held,
            reason=attempt.reason,
            token=token,
        )

    async def work(self) -> None:
        """The processing task: the newest waiting frame, one at a time."""
        while True:
            index, data = await self.mailbox.take()
            try:
                message = await self.process(index, data)
            except ServiceError as exc:  # a bad frame, or the service is busy: say so, go on
                await self.send_error(index, exc)
                continue
            except Exception:  # a bug: say so and close (1011), never leave the client waiting
                log.exception("stream frame %d failed", index)
                await close_with(self.websocket, CLOSE_INTERNAL, ServiceError("internal error"))
                raise
            del data  # the frame's bytes are not kept while the answer is sent
            await self.send(message)

    async def receive(self) -> None:
        """The receiving loop: configuration first, then frames into the mailbox."""
        settings = self.settings
        rate = FrameRate(settings.stream_max_fps)
        configured = False
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text, data = message.get("text"), message.get("bytes")
            if text is not None:
                if configured or self.frames:
                    raise StreamConfigError("the configuration is the first message and comes once")
                self.configure(text)
                configured = True
                await self.send(self.ready_message())
                continue
            if data is None:
                continue
            if not configured:
                configured = True
                await self.send(self.ready_message())
            index = self.frames
            self.frames += 1
            if len(data) > settings.stream_max_frame_bytes:
                limit = settings.stream_max_frame_bytes
                await self.send_error(index, FrameTooLargeError(f"frame of {len(data)} bytes; limit {limit}"))
                continue
            if not rate.allow(time.monotonic()):
                self.rate_dropped += 1
                continue
            self.mailbox.put(index, data)


def authorize(websocket: WebSocket, service: ServiceState) -> None:
    """An accepted key in the X-API-Key header or the api_key query parameter (browsers cannot set
    headers on a WebSocket), when keys are configured; then the key's rate limit, once per connection."""
    if not service.settings.accepted_api_keys:
        return
    key = websocket.headers.get("x-api-key") or websocket.query_params.get("api_key")
    name = service.keys.identify(key)
    if name is None:
        raise UnauthorizedError("a valid X-API-Key header or api_key query parameter is required")
    if service.rate_limiter is not None:
        service.rate_limiter.hit(name)


async def close_with(websocket: WebSocket, code: int, error: ServiceError) -> None:
    detail = ErrorDetail(code=error.code, message=error.message)
    with contextlib.suppress(Exception):  # the client may be gone already
        await websocket.send_text(StreamError(frame=None, dropped=0, error=detail).model_dump_json())
        await websocket.close(code=code, reason=error.code)


async def stream(websocket: WebSocket) -> None:
    service: ServiceState = websocket.app.state.service
    await websocket.accept()
    try:
        authorize(websocket, service)
    except ServiceError as exc:
        await close_with(websocket, CLOSE_POLICY, exc)
        return
    try:
        classifier = service.require_classifier()
    except ServiceError as exc:
        await close_with(websocket, CLOSE_TRY_LATER, exc)
        return
    desk = get_desk(websocket)
    attempt = None
    challenge_id = websocket.query_params.get("challenge")
    if challenge_id is not None:
        try:
            book = desk.book(classifier.labels)
            challenge = book.claim(challenge_id, time.time())
            attempt = ChallengeAttempt(
                challenge, classifier.labels, book.rules.hold_frames, book.rules.threshold
            )
        except ServiceError as exc:
            await close_with(websocket, CLOSE_POLICY, exc)
            return
    session = StreamSession(
        websocket,
        classifier,
        service.settings,
        desk.secret,
        attempt,
        find_model=lambda name: service.require_model(name).classifier,
    )
    worker = asyncio.create_task(session.work())
    try:
        await session.receive()
    except StreamConfigError as exc:
        await close_with(websocket, CLOSE_POLICY, exc)
    except WebSocketDisconnect:
        pass
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker


def add_routes(router: APIRouter, settings: Settings) -> None:
    router.add_api_websocket_route(STREAM, stream, name="stream")
