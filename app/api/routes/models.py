"""GET /models (every model served, side by side) and GET /model (one of them in detail: labels, input,
architecture, metrics, batching; the default unless ``?model=NAME``)."""

from fastapi import APIRouter

from app.api.deps import ModelOption, Service, api_key_dependencies, rate_limit_statuses
from app.api.openapi import error_responses
from app.api.schemas import ModelInfo, ModelsResponse, ModelSummary
from app.core.config import Settings


async def model_info(service: Service, model: ModelOption = None) -> ModelInfo:
    served = service.require_model(model)
    meta = served.model.metadata
    return ModelInfo(
        name=served.name,
        model_id=served.model.model_id,
        path=str(served.model.path),
        labels=meta.labels,
        input_shape=meta.input_shape,
        architecture=meta.architecture,
        params=meta.params,
        preprocessing=meta.preprocessing,
        training={k: v for k, v in meta.training.items() if k != "history"},
        metrics=meta.metrics,
        dataset=meta.dataset,
        versions=meta.versions,
        batching=served.engine.stats.as_dict(),
    )


async def list_models(service: Service) -> ModelsResponse:
    service.require_classifier()
    return ModelsResponse(
        models=[
            ModelSummary(
                name=served.name,
                model_id=served.model.model_id,
                default=served.default,
                labels=served.model.labels,
                metrics=served.model.metadata.metrics,
            )
            for served in service.served.values()
        ]
    )


def add_routes(router: APIRouter, settings: Settings) -> None:
    """The response models are the return types."""
    router.add_api_route(
        "/models",
        list_models,
        methods=["GET"],
        tags=["model"],
        dependencies=api_key_dependencies(settings),
        responses=error_responses(401, *rate_limit_statuses(settings), 503),
        summary="Every model served: name (for ?model=), labels, metrics, which is the default",
    )
    router.add_api_route(
        "/model",
        model_info,
        methods=["GET"],
        tags=["model"],
        dependencies=api_key_dependencies(settings),
        responses=error_responses(401, 404, *rate_limit_statuses(settings), 503),
        summary="Labels, input, architecture and metrics of the default model (or of ?model=NAME)",
    )
