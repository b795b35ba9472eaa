"""The FastAPI application: ``app.main:app`` (``python -m app`` runs it with the settings' host/port)."""

# No `from __future__ import annotations` here: FastAPI resolves the route annotations at runtime and
# they name locals of create_app (faces_query, api_key_header), which string annotations cannot reach.

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.errors import TooManyFilesError, UnauthorizedError, UploadTooLargeError
from app.api.observability import RequestContextMiddleware
from app.api.schemas import (
    BatchItem,
    BatchResponse,
    ErrorDetail,
    ErrorResponse,
    HealthResponse,
    ModelInfo,
    PredictResponse,
    ReadyResponse,
)
from app.api.uploads import MULTIPART_OVERHEAD, BodyLimitMiddleware, files_in, read_form
from app.core.batching import DynamicBatcher
from app.core.config import Settings, get_settings
from app.core.errors import NotReadyError, OverloadedError, ServiceError
from app.core.faces import FaceDetector, FaceMode
from app.core.inference import LoadedModel, load_model
from app.core.pipeline import Classifier

log = logging.getLogger(__name__)

DESCRIPTION = """
Upload a face photo, get the probability of each of seven emotions
(anger, contempt, disgust, fear, happy, sadness, surprise).

Faces are found with OpenCV; the largest is classified unless `faces=all` or `faces=off` is asked.
Errors are JSON `{"error": {"code", "message", "request_id"}}` with a stable `code`.
"""

_STATUS_CODES = {404: "not_found", 405: "method_not_allowed"}


@dataclass
class ServiceState:
    settings: Settings
    model: LoadedModel | None = None
    engine: DynamicBatcher | None = None
    classifier: Classifier | None = None
    ready: bool = False

    def require_classifier(self) -> Classifier:
        if not self.ready or self.classifier is None:
            raise NotReadyError(
                "the model is not loaded yet (or the service is shutting down); retry shortly",
                headers={"Retry-After": "1"},
            )
        return self.classifier


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorResponse, "description": "Error with a stable code"} for status in statuses
    }


# The part's declared type is documentation only: the format is sniffed from the bytes.
IMAGE_MEDIA_TYPES = "image/jpeg, image/png, image/gif, image/webp, image/bmp, image/tiff"


def _multipart_body(*, max_files: int | None = None) -> dict[str, Any]:
    file_schema: dict[str, Any] = {"type": "string", "format": "binary"}
    if max_files is not None:
        file_schema = {"type": "array", "items": file_schema, "minItems": 1, "maxItems": max_files}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": file_schema},
                        "additionalProperties": False,  # other fields: 422 unexpected_field
                    },
                    "encoding": {"file": {"contentType": IMAGE_MEDIA_TYPES}},
                }
            },
        }
    }


def _error_json(request: Request, error: ServiceError) -> JSONResponse:
    request.state.error_code = error.code
    detail = ErrorDetail(
        code=error.code, message=error.message, request_id=getattr(request.state, "request_id", None)
    )
    return JSONResponse(
        ErrorResponse(error=detail).model_dump(), status_code=error.status_code, headers=error.headers
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return _error_json(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        error = ServiceError(f"invalid request: {problems}")
        error.status_code, error.code = 422, "invalid_request"
        return _error_json(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = ServiceError(str(exc.detail), headers=dict(exc.headers or {}))
        error.status_code, error.code = exc.status_code, _STATUS_CODES.get(exc.status_code, "http_error")
        return _error_json(request, error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_json(request, ServiceError("internal error; the request id identifies it in the logs"))


def create_app(settings: Settings | None = None, *, model: LoadedModel | None = None) -> FastAPI:
    """Build the application; ``model`` may be preloaded (``python -m app`` does, to fail fast)."""
    settings = settings or get_settings()
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loaded = model or await anyio.to_thread.run_sync(load_model, settings.model_path)
        engine = DynamicBatcher(
            loaded.predict_batch,
            max_batch_size=settings.batch_max_size,
            max_wait_ms=settings.batch_max_wait_ms,
            max_queue=settings.queue_max,
        )
        await engine.start()
        state.model, state.engine = loaded, engine
        state.classifier = Classifier(
            spec=loaded.spec,
            labels=loaded.labels,
            model_id=loaded.model_id,
            detector=FaceDetector(),
            engine=engine,
            max_pixels=settings.max_pixels,
            margin=settings.face_margin,
            decoders=anyio.CapacityLimiter(settings.decode_threads),
        )
        state.ready = True
        log.info("ready", extra={"model_id": loaded.model_id})
        try:
            yield
        finally:
            state.ready = False
            await engine.stop()  # answers every request already queued

    app = FastAPIOffline(
        title="Facial emotion recognition",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.service = state
    _install_error_handlers(app)

    def limit_for_path(path: str) -> int | None:
        if path == "/predict":
            return settings.max_upload_bytes + MULTIPART_OVERHEAD
        if path == "/predict/batch":
            return settings.max_batch_files * (settings.max_upload_bytes + MULTIPART_OVERHEAD)
        return None

    app.add_middleware(
        BodyLimitMiddleware, limit_for_path=limit_for_path, body_timeout_s=settings.body_timeout_s
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "X-Request-ID", "Content-Type"],
        )
    app.add_middleware(RequestContextMiddleware)

    api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Required when configured")

    async def require_api_key(key: Annotated[str | None, Depends(api_key_header)]) -> None:
        expected = settings.api_key
        if expected is None:
            return
        if key is None or not secrets.compare_digest(key.encode(), expected.get_secret_value().encode()):
            raise UnauthorizedError("a valid X-API-Key header is required")

    # Declared (in the OpenAPI schema too) only when a key is configured: the schema tells the truth.
    protected = [Depends(require_api_key)] if settings.api_key is not None else []
    faces_query = Query(  # the default (None: the setting) is the parameter's, not Query's, inside Annotated
        description="`largest` (default setting), `all` faces, or `off` (classify the whole image)"
    )

    @app.get("/health", response_model=HealthResponse, tags=["operations"], summary="The process is alive")
    async def health() -> HealthResponse:
        return HealthResponse()

    @app.get(
        "/ready",
        response_model=ReadyResponse,
        tags=["operations"],
        responses=_error_responses(503),
        summary="The model is loaded and warm (503 before)",
    )
    async def ready() -> ReadyResponse:
        state.require_classifier()
        assert state.model is not None
        return ReadyResponse(model_id=state.model.model_id)

    @app.get(
        "/model",
        response_model=ModelInfo,
        tags=["model"],
        dependencies=protected,
        responses=_error_responses(401, 503),
        summary="Labels, input, architecture and metrics of the model",
    )
    async def model_info() -> ModelInfo:
        state.require_classifier()
        assert state.model is not None and state.engine is not None
        meta = state.model.metadata
        return ModelInfo(
            model_id=state.model.model_id,
            path=str(state.model.path),
            labels=meta.labels,
            input_shape=meta.input_shape,
            architecture=meta.architecture,
            params=meta.params,
            preprocessing=meta.preprocessing,
            training={k: v for k, v in meta.training.items() if k != "history"},
            metrics=meta.metrics,
            dataset=meta.dataset,
            versions=meta.versions,
            batching=state.engine.stats.as_dict(),
        )

    @app.post(
        "/predict",
        response_model=PredictResponse,
        tags=["predict"],
        dependencies=protected,
        openapi_extra=_multipart_body(),
        responses=_error_responses(400, 401, 408, 413, 415, 422, 503),
        summary="Emotion probabilities for one image",
    )
    async def predict(
        request: Request, faces: Annotated[FaceMode | None, faces_query] = None
    ) -> PredictResponse:
        classifier = state.require_classifier()
        form = await read_form(request, max_files=1, max_file_bytes=settings.max_upload_bytes)
        try:
            uploads = files_in(form, "file")
            if len(uploads) > 1:
                raise TooManyFilesError("/predict takes one file; send several to /predict/batch")
            data = await uploads[0].read()
        finally:
            await form.close()
        _check_size(data, settings)
        return PredictResponse.from_classification(
            await classifier.classify(data, faces or settings.face_detection)
        )

    @app.post(
        "/predict/batch",
        response_model=BatchResponse,
        tags=["predict"],
        dependencies=protected,
        openapi_extra=_multipart_body(max_files=settings.max_batch_files),
        responses=_error_responses(400, 401, 408, 413, 415, 422, 503),
        summary="Emotion probabilities for several images (one result per file)",
    )
    async def predict_batch(
        request: Request, faces: Annotated[FaceMode | None, faces_query] = None
    ) -> BatchResponse:
        classifier = state.require_classifier()
        form = await read_form(
            request, max_files=settings.max_batch_files, max_file_bytes=settings.max_upload_bytes
        )
        try:
            uploads = files_in(form, "file")
            if len(uploads) > settings.max_batch_files:
                raise TooManyFilesError(
                    f"{len(uploads)} files sent; /predict/batch takes at most {settings.max_batch_files}"
                )
            files = [(upload.filename, await upload.read()) for upload in uploads]
        finally:
            await form.close()
        mode = faces or settings.face_detection

        async def one(name: str | None, data: bytes) -> BatchItem:
            try:
                _check_size(data, settings)
                result = PredictResponse.from_classification(await classifier.classify(data, mode))
                return BatchItem(filename=name, ok=True, result=result)
            except (NotReadyError, OverloadedError):
                raise  # the service's state, not the file's: the whole request gets the 503
            except ServiceError as exc:
                return BatchItem(
                    filename=name, ok=False, error=ErrorDetail(code=exc.code, message=exc.message)
                )

        # Every file runs to its end before a 503 is raised, so no task is left behind unawaited.
        outcomes = await asyncio.gather(*(one(name, data) for name, data in files), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return BatchResponse(results=[o for o in outcomes if isinstance(o, BatchItem)])

    return app


def _check_size(data: bytes, settings: Settings) -> None:
    """``data`` holds at most the limit + 1 bytes (read_form drops the rest)."""
    if len(data) > settings.max_upload_bytes:
        raise UploadTooLargeError(f"the file is larger than the limit of {settings.max_upload_bytes} bytes")


app = create_app()
