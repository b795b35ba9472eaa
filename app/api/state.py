"""What the running service holds: its settings and, between start and stop, its models and their batchers.

Every model is served side by side (``?model=NAME``), each with its own batcher and classifier; the first
one started is the default, whose model, batcher and classifier the ``model``, ``engine`` and
``classifier`` properties give.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from app.api.metrics import ServiceMetrics, build_metrics
from app.core.api_keys import KeyRing
from app.core.batching import DynamicBatcher
from app.core.config import Settings
from app.core.errors import NotReadyError, UnknownModelError
from app.core.faces import make_detector
from app.core.inference import LoadedModel
from app.core.pipeline import Classifier
from app.core.rate_limit import KeyRateLimiter
from app.core.test_time_flip import with_test_time_flip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """One model in service: its name (the file stem, as in ``?model=``), batcher and classifier."""

    name: str
    model: LoadedModel
    engine: DynamicBatcher
    classifier: Classifier
    default: bool


@dataclass
class ServiceState:
    """One per app (``app.state.service``); the lifespan starts and stops it."""

    settings: Settings
    served: dict[str, ServedModel] = field(default_factory=dict)  # by name, the default first
    ready: bool = False
    draining: bool = False  # a termination signal came: /ready answers 503, requests in flight finish
    keys: KeyRing = field(init=False)
    rate_limiter: KeyRateLimiter | None = field(init=False)
    metrics: ServiceMetrics = field(default_factory=build_metrics)

    def __post_init__(self) -> None:
        settings = self.settings
        self.keys = KeyRing.of(key.get_secret_value() for key in settings.accepted_api_keys)
        per_minute = settings.rate_limit_per_minute
        self.rate_limiter = KeyRateLimiter(per_minute) if per_minute is not None else None

    @property
    def default(self) -> ServedModel | None:
        """The default model in service (None until started)."""
        return next((served for served in self.served.values() if served.default), None)

    @property
    def model(self) -> LoadedModel | None:
        return None if self.default is None else self.default.model

    @property
    def engine(self) -> DynamicBatcher | None:
        return None if self.default is None else self.default.engine

    @property
    def classifier(self) -> Classifier | None:
        return None if self.default is None else self.default.classifier

    async def start(self, model: LoadedModel, others: Sequence[LoadedModel] = ()) -> None:
        """Serve ``model`` (the default) and ``others``: one batcher and classifier each, then turn ready."""
        settings = self.settings
        # One detector for every model, used from the shared pool of decoding threads (as one was before).
        detector = make_detector(settings.face_detector, min_confidence=settings.min_face_confidence)
        decoders = anyio.CapacityLimiter(settings.decode_threads)  # one pool of decoding threads for all
        for loaded in (model, *others):
            name = loaded.path.stem
            predict_batch = loaded.predict_batch
            if settings.test_time_flip:  # each face and its mirror image, in the same model call
                predict_batch = with_test_time_flip(predict_batch)
            engine = DynamicBatcher(
                predict_batch,
                max_batch_size=settings.batch_max_size,
                max_wait_ms=settings.batch_max_wait_ms,
                max_queue=settings.queue_max,
                name=name,
                on_batch=self.metrics.batch_observer(name),
            )
            await engine.start()
            classifier = Classifier(
                spec=loaded.spec,
                labels=loaded.labels,
                model_id=loaded.model_id,
                detector=detector,
                engine=engine,
                max_pixels=settings.max_pixels,
                margin=settings.face_margin,
                align=settings.face_align,
                decoders=decoders,
                decode_queue_max=settings.decode_queue_max,
                decode_min_side=settings.decode_min_side,
            )
            self.served[name] = ServedModel(name, loaded, engine, classifier, default=loaded is model)
            self.metrics.describe_model(name, loaded.model_id, loaded.labels, default=loaded is model)
        self.ready = True
        log.info("ready", extra={"model_id": model.model_id, "models": list(self.served)})

    def begin_draining(self) -> None:
        """A termination signal came (called from the signal handler: sets a flag, nothing more).

        /ready answers 503 from now on, so probes and load balancers stop sending; the server stops
        accepting connections and lets the requests in flight finish, which this flag does not touch.
        """
        self.draining = True

    async def stop(self) -> None:
        """Not ready any more; every request already queued is answered."""
        self.ready = False
        for served in self.served.values():
            await served.engine.stop()

    def require_classifier(self) -> Classifier:
        if not self.ready or self.classifier is None:
            raise NotReadyError(
                "the model is not loaded yet (or the service is shutting down); retry shortly",
                headers={"Retry-After": "1"},
            )
        return self.classifier

    def require_model(self, name: str | None = None) -> ServedModel:
        """The model named ``name`` (None: the default); 503 until started, 404 for an unknown name."""
        self.require_classifier()
        served = self.default if name is None else self.served.get(name)
        if served is None:
            assert name is not None  # the default is there once started
            raise UnknownModelError(
                f"no model named {name[:80]!r}; this service serves {', '.join(self.served)} (GET /models)"
            )
        return served

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
