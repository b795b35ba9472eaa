"""What the running service holds: its settings and, between start and stop, the model and its batcher."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio

from app.core.batching import DynamicBatcher
from app.core.config import Settings
from app.core.errors import NotReadyError
from app.core.faces import FaceDetector
from app.core.inference import LoadedModel
from app.core.pipeline import Classifier

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    """One per app (``app.state.service``); the lifespan starts and stops it."""

    settings: Settings
    model: LoadedModel | None = None
    engine: DynamicBatcher | None = None
    classifier: Classifier | None = None
    ready: bool = False

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
            detector=FaceDetector(),
            engine=engine,
            max_pixels=settings.max_pixels,
            margin=settings.face_margin,
            decoders=anyio.CapacityLimiter(settings.decode_threads),
        )
        self.ready = True
        log.info("ready", extra={"model_id": model.model_id})

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
