"""GET /health (the process is alive) and GET /ready (the model is loaded and warm)."""

from fastapi import APIRouter

from app.api.deps import Service
from app.api.openapi import error_responses
from app.api.schemas import HealthResponse, ReadyResponse
from app.core.config import Settings


async def health() -> HealthResponse:
    return HealthResponse()


async def ready(service: Service) -> ReadyResponse:
    return ReadyResponse(model_id=service.require_ready().model_id)


def add_routes(router: APIRouter, settings: Settings) -> None:
    """Open to all (no API key): probes must work without one. The response models are the return types."""
    router.add_api_route(
        "/health", health, methods=["GET"], tags=["operations"], summary="The process is alive"
    )
    router.add_api_route(
        "/ready",
        ready,
        methods=["GET"],
        tags=["operations"],
        responses=error_responses(503),
        summary="The model is loaded and warm (503 before, and once shutting down)",
    )
