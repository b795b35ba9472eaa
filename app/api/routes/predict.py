"""POST /predict (one image) and POST /predict/batch (several): multipart uploads or JSON (base64) in,
emotions out; ``?model=NAME`` picks the model."""

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import FacesOption, ModelOption, Service, api_key_dependencies, rate_limit_statuses
from app.api.json_uploads import decode_base64, json_upload_limit, read_json
from app.api.openapi import UPLOAD_ERRORS, error_responses, inline_schema, multipart_body
from app.api.schemas import (
    BatchItem,
    BatchJSONRequest,
    BatchResponse,
    ErrorDetail,
    PredictJSONRequest,
    PredictResponse,
)
from app.api.uploads import (
    JSON,
    MULTIPART,
    check_size,
    files_in,
    media_type,
    read_form,
    read_one_file,
    single_upload_limit,
)
from app.core.config import Settings
from app.core.errors import (
    NotMultipartError,
    NotReadyError,
    OverloadedError,
    ServiceError,
    TooManyFilesError,
)

PREDICT = "/predict"
PREDICT_BATCH = "/predict/batch"


def _is_json(request: Request) -> bool:
    return media_type(request.headers.get("content-type", "")) == JSON


def _check_media_type(request: Request) -> None:
    """415 for a body that is neither multipart nor JSON, naming both (the code predates JSON bodies)."""
    content_type = request.headers.get("content-type", "")
    if media_type(content_type) not in (MULTIPART, JSON):
        raise NotMultipartError(
            "send the image as multipart/form-data with a field named 'file', or as application/json "
            f'{{"b64": "<base64 of the file>"}}, not {content_type[:100] or "no content type"}'
        )


async def predict(
    request: Request, service: Service, faces: FacesOption = None, model: ModelOption = None
) -> PredictResponse:
    settings = service.settings
    served = service.require_model(model)
    _check_media_type(request)
    if _is_json(request):
        body = await read_json(request, PredictJSONRequest)
        data = decode_base64(body.b64, max_upload_bytes=settings.max_upload_bytes)
    else:
        data = await read_one_file(request, max_file_bytes=settings.max_upload_bytes)
    result = await served.classifier.classify(data, faces or settings.face_detection)
    service.metrics.record(served.name, result)
    return PredictResponse.from_classification(result, served.name)


async def _json_images(request: Request, max_files: int) -> list[tuple[str | None, str]]:
    body = await read_json(request, BatchJSONRequest)
    if len(body.instances) > max_files:
        raise TooManyFilesError(
            f"{len(body.instances)} instances sent; /predict/batch takes at most {max_files}"
        )
    return [(None, instance.b64) for instance in body.instances]


async def _multipart_images(
    request: Request, max_files: int, max_bytes: int
) -> list[tuple[str | None, bytes]]:
    form = await read_form(request, max_files=max_files, max_file_bytes=max_bytes)
    try:
        uploads = files_in(form, "file")
        if len(uploads) > max_files:
            raise TooManyFilesError(f"{len(uploads)} files sent; /predict/batch takes at most {max_files}")
        return [(upload.filename, await upload.read()) for upload in uploads]
    finally:
        await form.close()


async def predict_batch(
    request: Request, service: Service, faces: FacesOption = None, model: ModelOption = None
) -> BatchResponse:
    settings = service.settings
    served = service.require_model(model)
    _check_media_type(request)
    max_files, max_bytes = settings.max_batch_files, settings.max_upload_bytes
    images: list[tuple[str | None, bytes | str]] = []
    if _is_json(request):
        images.extend(await _json_images(request, max_files))
    else:
        images.extend(await _multipart_images(request, max_files, max_bytes))
    mode = faces or settings.face_detection

    async def one(name: str | None, image: bytes | str) -> BatchItem:
        try:
            if isinstance(image, str):  # a JSON instance: its base64 is decoded here, its errors its own
                data = decode_base64(image, max_upload_bytes=max_bytes)
            else:
                check_size(image, max_bytes)
                data = image
            result = await served.classifier.classify(data, mode)
            service.metrics.record(served.name, result)
            response = PredictResponse.from_classification(result, served.name)
            return BatchItem(filename=name, ok=True, result=response)
        except (NotReadyError, OverloadedError):
            raise  # the service's state, not the file's: the whole request gets the 503
        except ServiceError as exc:
            return BatchItem(filename=name, ok=False, error=ErrorDetail(code=exc.code, message=exc.message))

    # Every file runs to its end before a 503 is raised, so no task is left behind unawaited.
    outcomes = await asyncio.gather(*(one(name, image) for name, image in images), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return BatchResponse(results=[o for o in outcomes if isinstance(o, BatchItem)])


def batch_json_schema(max_files: int) -> dict[str, Any]:
    """The JSON body of /predict/batch, with the configured most instances."""
    schema = inline_schema(BatchJSONRequest)
    schema["properties"]["instances"]["maxItems"] = max_files
    return schema


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

    upload_route(
        PREDICT,
        predict,
        "Emotion probabilities for one image",
        json_schema=inline_schema(PredictJSONRequest),
    )
    # The batch route's schema states the configured most files per request.
    upload_route(
        PREDICT_BATCH,
        predict_batch,
        "Emotion probabilities for several images (one result per file, in order)",
        max_files=settings.max_batch_files,
        json_schema=batch_json_schema(settings.max_batch_files),
    )


def body_limits(settings: Settings) -> dict[str, dict[str, int]]:
    """The most bytes a request body to each path may hold, by media type (for BodyLimitMiddleware).

    JSON carries each image in base64, 4/3 of its bytes, so its limit is that much larger.
    """
    per_file = single_upload_limit(settings.max_upload_bytes)
    per_json = json_upload_limit(settings.max_upload_bytes)
    files = settings.max_batch_files
    return {
        PREDICT: {MULTIPART: per_file, JSON: per_json},
        PREDICT_BATCH: {MULTIPART: files * per_file, JSON: files * per_json},
    }
