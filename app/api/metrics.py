"""Prometheus metrics (``GET /metrics``, prometheus-client): requests, latency, batches, predictions.

One process: the values live in a registry of the app (:func:`build_metrics`). Several worker processes
(uvicorn ``--workers``, gunicorn): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory that every
worker can write, emptied before the service starts. Each process then writes its values to files
there, and ``/metrics``, whichever worker answers it, adds them up (prometheus-client's multiprocess
mode). prometheus-client reads the variable when it is first imported: it must be set in the
environment of the server, not changed later.

The core knows nothing of this: the batcher calls :meth:`ServiceMetrics.batch_observer`'s function
as each batch starts, the routes hand each classification to :meth:`ServiceMetrics.record`, and
:class:`MetricsMiddleware` times every request under its route template (``/predict``, never the
raw path, so scans of unknown paths add one series, ``unmatched``, not one per path).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.pipeline import Classification

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED_ROUTE = "unmatched"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, when it is on."""
    return os.environ.get(MULTIPROC_ENV) or None


@dataclass(frozen=True)
class ServiceMetrics:
    """The metrics of one app, and the registry ``/metrics`` exposes."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    batch_size: Histogram
    queue_depth: Gauge
    predictions: Counter
    face_detection: Counter
    model_info: Gauge

    def exposition(self) -> bytes:
        """The text ``/metrics`` answers (every process's values in multiprocess mode)."""
        return generate_latest(self.registry)

    def batch_observer(self, model: str) -> Callable[[int, int], None]:
        """The batcher's ``on_batch(size, queue_depth)`` for ``model``."""
        sizes, depth = self.batch_size.labels(model=model), self.queue_depth.labels(model=model)

        def observe(size: int, queue_depth: int) -> None:
            sizes.observe(size)
            depth.set(queue_depth)

        return observe

    def set_queue_depth(self, model: str, depth: int) -> None:
        self.queue_depth.labels(model=model).set(depth)

    def describe_model(self, model: str, model_id: str, labels: Sequence[str], *, default: bool) -> None:
        self.model_info.labels(
            model=model, model_id=model_id, labels=",".join(labels), default=str(default).lower()
        ).set(1)

    def record(self, model: str, result: Classification) -> None:
        """One classified image: the emotion of each face classified, whether a face was found."""
        outcome = "off" if result.mode == "off" else "found" if result.face_found else "not_found"
        self.face_detection.labels(model=model, outcome=outcome).inc()
        for face in result.faces:
            self.predictions.labels(model=model, emotion=face.emotion).inc()


def build_metrics() -> ServiceMetrics:
    """The metrics, right in both modes.

    One process: the metrics are registered in a new registry, which ``/metrics`` exposes (one per app,
    so two apps in one process, as in the tests, do not share counts). Multiprocess mode: the metrics
    write to files in ``PROMETHEUS_MULTIPROC_DIR`` and are registered nowhere; the exposed registry holds
    a ``MultiProcessCollector`` that reads every process's files when scraped. Gauges say how the
    processes' values combine: the queue depth is summed over the live processes, the model info is the
    same in every process (max).
    """
    exposed = CollectorRegistry()
    directory = multiprocess_dir()
    if directory is not None:
        MultiProcessCollector(exposed, path=directory)
    target = None if directory is not None else exposed
    return ServiceMetrics(
        registry=exposed,
        requests=Counter(
            "emotion_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=target,
        ),
        latency=Histogram(
            "emotion_http_request_duration_seconds",
            "Time from the request's arrival to the end of its answer, by method, route template and status",
            ["method", "route", "status"],
            registry=target,
        ),
        batch_size=Histogram(
            "emotion_model_batch_size",
            "Inputs (faces or whole images) in each call of a model",
            ["model"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=target,
        ),
        queue_depth=Gauge(
            "emotion_model_queue_depth",
            "Inputs waiting for a model (when the last batch started, and at each scrape of this process)",
            ["model"],
            registry=target,
            multiprocess_mode="livesum",
        ),
        predictions=Counter(
            "emotion_predictions",
            "Faces (or whole images) classified, by model and most probable emotion",
            ["model", "emotion"],
            registry=target,
        ),
        face_detection=Counter(
            "emotion_face_detection",
            "Images classified, by model and face search outcome: found, not_found (whole image used), off",
            ["model", "outcome"],
            registry=target,
        ),
        model_info=Gauge(
            "emotion_model_info",
            "The models served (always 1): name, model id, labels in output order, default or not",
            ["model", "model_id", "labels", "default"],
            registry=target,
            multiprocess_mode="max",
        ),
    )


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The path template of the route ``scope`` goes to (``unmatched`` when none does)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    partial = None
    for candidate in routes:
        match, _ = candidate.matches(scope)
        if match == Match.FULL:
            return str(getattr(candidate, "path", UNMATCHED_ROUTE))
        if match == Match.PARTIAL and partial is None:  # the path matches, the method does not (405)
            partial = str(getattr(candidate, "path", UNMATCHED_ROUTE))
    return partial or UNMATCHED_ROUTE


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template and status."""

    def __init__(
        self, app: ASGIApp, metrics: ServiceMetrics, routes: Callable[[], Sequence[BaseRoute]]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            labels = {
                "method": scope["method"] if scope["method"] in HTTP_METHODS else "other",
                "route": route_template(self.routes(), scope),
                "status": str(status),
            }
            self.metrics.requests.labels(**labels).inc()
            self.metrics.latency.labels(**labels).observe(time.perf_counter() - started)
