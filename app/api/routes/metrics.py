"""GET /metrics: the Prometheus exposition (app/api/metrics.py); off with EMOTION_METRICS_ENABLED=false."""

from fastapi import APIRouter, Response

from app.api.deps import Service, api_key_dependencies, rate_limit_statuses
from app.api.metrics import CONTENT_TYPE
from app.api.openapi import error_responses
from app.core.config import Settings

METRICS = "/metrics"


class PrometheusResponse(Response):
    media_type = CONTENT_TYPE


async def metrics(service: Service) -> PrometheusResponse:
    for served in service.served.values():  # this process's queues, now
        service.metrics.set_queue_depth(served.name, served.engine.stats.queue_depth)
    return PrometheusResponse(service.metrics.exposition())


def add_routes(router: APIRouter, settings: Settings) -> None:
    if not settings.metrics_enabled:
        return
    protected = settings.metrics_require_api_key
    router.add_api_route(
        METRICS,
        metrics,
        methods=["GET"],
        tags=["operations"],
        dependencies=api_key_dependencies(settings) if protected else [],
        response_class=PrometheusResponse,
        responses={
            200: {"description": "Prometheus text format (the media type says its version)"},
            **error_responses(*((401, *rate_limit_statuses(settings)) if protected else ())),
        },
        summary="Prometheus metrics: requests, latency, batches, queues, predictions, faces, models",
    )
