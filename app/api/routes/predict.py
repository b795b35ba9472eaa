"""POST /predict (one image) and POST /predict/batch (several): multipart uploads in, emotions out."""

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import FacesOption, Service, api_key_dependencies, rate_limit_statuses
from app.api.openapi import UPLOAD_ERRORS, error_responses, multipart_body
from app.api.schemas import BatchItem, BatchResponse, ErrorDetail, PredictResponse
from app.api.uploads import check_size, files_in, read_form, read_one_file, single_upload_limit
from app.core.config import Settings
from app.core.errors import (
    NotReadyError,
    OverloadedError,
    ServiceError,
    TooManyFilesError,
)

PREDICT = "/predict"
PREDICT_BATCH = "/predict/batch"


async def predict(request: Request, service: Service, faces: FacesOption = None) -> PredictResponse:
    settings = service.settings
    classifier = service.require_classifier()
    data = await read_one_file(request, max_file_bytes=settings.max_upload_bytes)
    result = await classifier.classify(data, faces or settings.face_detection)
    return PredictResponse.from_classification(result)


async def predict_batch(request: Request, service: Service, faces: FacesOption = None) -> BatchResponse:
    settings = service.settings
    classifier = service.require_classifier()
    max_files = settings.max_batch_files
    form = await read_form(request, max_files=max_files, max_file_bytes=settings.max_upload_bytes)
    try:
        uploads = files_in(form, "file")
        if len(uploads) > max_files:
            raise TooManyFilesError(f"{len(uploads)} files sent; /predict/batch takes at most {max_files}")
        files = [(upload.filename, await upload.read()) for upload in uploads]
    finally:
        await form.close()
    mode = faces or settings.face_detection

    async def one(name: str | None, data: bytes) -> BatchItem:
        try:
            check_size(data, settings.max_upload_bytes)
            result = PredictResponse.from_classification(await classifier.classify(data, mode))
            return BatchItem(filename=name, ok=True, result=result)
        except (NotReadyError, OverloadedError):
            raise  # the service's state, not the file's: the whole request gets the 503
        except ServiceError as exc:
            return BatchItem(filename=name, ok=False, error=ErrorDetail(code=exc.code, message=exc.message))

    # Every file runs to its end before a 503 is raised, so no task is left behind unawaited.
    outcomes = await asyncio.gather(*(one(name, data) for name, data in files), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return BatchResponse(results=[o for o in outcomes if isinstance(o, BatchItem)])


def add_routes(router: APIRouter, settings: Settings) -> None:
    """The response models are the return types."""

    def upload_route(path: str, endpoint: Callable[..., Any], summary: str, **body: Any) -> None:
        router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            tags=["predict"],
            dependencies=api_key_dependencies(settings),
            openapi_extra=multipart_body(**body),
            responses=error_responses(*UPLOAD_ERRORS, *rate_limit_statuses(settings)),
            summary=summary,
        )

    upload_route(PREDICT, predict, "Emotion probabilities for one image")
    # The batch route's schema states the configured most files per request.
    upload_route(
        PREDICT_BATCH,
        predict_batch,
        "Emotion probabilities for several images (one result per file)",
        max_files=settings.max_batch_files,
    )


def body_limits(settings: Settings) -> dict[str, int]:
    """The most bytes a request body to each path may hold (for BodyLimitMiddleware)."""
    per_file = single_upload_limit(settings.max_upload_bytes)
    return {PREDICT: per_file, PREDICT_BATCH: settings.max_batch_files * per_file}
