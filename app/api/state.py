"""What the running service holds: its settings and, between start and stop, the model and its batcher."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import anyio

from app.core.api_keys import KeyRing
from app.core.batching import DynamicBatcher
from app.core.config import Settings
from app.core.errors import NotReadyError
from app.core.faces import make_detector
from app.core.inference import LoadedModel
from app.core.pipeline import Classifier
from app.core.rate_limit import KeyRateLimiter

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    """One per app (``app.state.service``); the lifespan starts and stops it."""

    settings: Settings
    model: LoadedModel | None = None
    engine: DynamicBatcher | None = None
    classifier: Classifier | None = None
    ready: bool = False
    draining: bool = False  # a termination signal came: /ready answers 503, requests in flight finish
    keys: KeyRing = field(init=False)
    rate_limiter: KeyRateLimiter | None = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.keys = KeyRing.of(key.get_secret_value() for key in settings.accepted_api_keys)
        per_minute = settings.rate_limit_per_minute
        self.rate_limiter = KeyRateLimiter(per_minute) if per_minute is not None else None

    async def start(self, model: LoadedModel) -> None:
        """Serve ``model``: start its batcher, build the classifier from the settings, turn ready."""
        settings = self.settings
        engine = DynamicBatcher(
            model.predict_batch,
            max_batch_size=settings.batch_max_size,
            max_wait_ms=settings.batch_max_wait_ms,
            max_queue=settings.queue_max,
        )
        await engine.start()
        self.model, self.engine = model, engine
        self.classifier = Classifier(
            spec=model.spec,
            labels=model.labels,
            model_id=model.model_id,
            detector=make_detector(settings.face_detector, min_confidence=settings.min_face_confidence),
            engine=engine,
            max_pixels=settings.max_pixels,
            margin=settings.face_margin,
            align=settings.face_align,
            test_time_flip=settings.test_time_flip,
            decoders=anyio.CapacityLimiter(settings.decode_threads),
            decode_queue_max=settings.decode_queue_max,
        )
        self.ready = True
        log.info("ready", extra={"model_id": model.model_id})

    def begin_draining(self) -> None:
        """A termination signal came (called from the signal handler: sets a flag, nothing more).

        /ready answers 503 from now on, so probes and load balancers stop sending; the server stops
        accepting connections and lets the requests in flight finish, which this flag does not touch.
        """
        self.draining = True

    async def stop(self) -> None:
        """Not ready any more; every request already queued is answered."""
        self.ready = False
        if self.engine is not None:
            await self.engine.stop()

    def require_classifier(self) -> Classifier:
        if not self.ready or self.classifier is None:
            raise NotReadyError(
                "the model is not loaded yet (or the service is shutting down); retry shortly",
                headers={"Retry-After": "1"},
            )
        return self.classifier

    def require_ready(self) -> LoadedModel:
        """The model, when this process should get traffic: started and not draining (else 503)."""
        if self.draining:
            raise NotReadyError(
                "the service is shutting down; requests in flight finish, new ones go elsewhere",
                headers={"Retry-After": "1"},
            )
        self.require_classifier()
        assert self.model is not None
        return self.model
