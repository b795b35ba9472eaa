"""GET /model: what the served model is (labels, input, architecture, metrics) and how it is batched."""

from fastapi import APIRouter

from app.api.deps import Service, api_key_dependencies, rate_limit_statuses
from app.api.openapi import error_responses
from app.api.schemas import ModelInfo
from app.core.config import Settings


async def model_info(service: Service) -> ModelInfo:
    service.require_classifier()
    assert service.model is not None and service.engine is not None
    meta = service.model.metadata
    return ModelInfo(
        model_id=service.model.model_id,
        path=str(service.model.path),
        labels=meta.labels,
        input_shape=meta.input_shape,
        architecture=meta.architecture,
        params=meta.params,
        preprocessing=meta.preprocessing,
        training={k: v for k, v in meta.training.items() if k != "history"},
        metrics=meta.metrics,
        dataset=meta.dataset,
        versions=meta.versions,
        batching=service.engine.stats.as_dict(),
    )


def add_routes(router: APIRouter, settings: Settings) -> None:
    """The response model is the return type."""
    router.add_api_route(
        "/model",
        model_info,
        methods=["GET"],
        tags=["model"],
        dependencies=api_key_dependencies(settings),
        responses=error_responses(401, *rate_limit_statuses(settings), 503),
        summary="Labels, input, architecture and metrics of the model",
    )
