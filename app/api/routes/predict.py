"""POST /predict (one image) and POST /predict/batch (several): multipart uploads in, emotions out."""

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import FacesOption, Service, api_key_dependencies, rate_limit_statuses
from app.api.openapi import error_responses, multipart_body
from app.api.schemas import BatchItem, BatchResponse, ErrorDetail, PredictResponse
from app.api.uploads import MULTIPART_OVERHEAD, files_in, read_form
from app.core.config import Settings
from app.core.errors import (
    NotReadyError,
    OverloadedError,
    ServiceError,
    TooManyFilesError,
    UploadTooLargeError,
)

PREDICT = "/predict"
PREDICT_BATCH = "/predict/batch"
UPLOAD_ERRORS = (400, 401, 408, 413, 415, 422, 503)


async def predict(request: Request, service: Service, faces: FacesOption = None) -> PredictResponse:
    settings = service.settings
    classifier = service.require_classifier()
    form = await read_form(request, max_files=1, max_file_bytes=settings.max_upload_bytes)
    try:
        uploads = files_in(form, "file")
        if len(uploads) > 1:
            raise TooManyFilesError("/predict takes one file; send several to /predict/batch")
        data = await uploads[0].read()
    finally:
        await form.close()
    _check_size(data, settings.max_upload_bytes)
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
            _check_size(data, settings.max_upload_bytes)
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


def _check_size(data: bytes, max_upload_bytes: int) -> None:
    """``data`` holds at most the limit + 1 bytes (read_form drops the rest)."""
    if len(data) > max_upload_bytes:
        raise UploadTooLargeError(f"the file is larger than the limit of {max_upload_bytes} bytes")


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


def body_limit(settings: Settings) -> Callable[[str], int | None]:
    """The most bytes a request body to a path may hold (for BodyLimitMiddleware); None: no limit here."""
    per_file = settings.max_upload_bytes + MULTIPART_OVERHEAD
    limits = {PREDICT: per_file, PREDICT_BATCH: settings.max_batch_files * per_file}
    return limits.get
