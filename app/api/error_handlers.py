"""Every error as JSON ``{"error": {"code", "message", "request_id"}}``, whoever raised it."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.schemas import ErrorDetail, ErrorResponse
from app.core.errors import ServiceError

log = logging.getLogger(__name__)

_STATUS_CODES = {404: "not_found", 405: "method_not_allowed"}


def error_json(request: Request, error: ServiceError) -> JSONResponse:
    request.state.error_code = error.code
    detail = ErrorDetail(
        code=error.code, message=error.message, request_id=getattr(request.state, "request_id", None)
    )
    return JSONResponse(
        ErrorResponse(error=detail).model_dump(), status_code=error.status_code, headers=error.headers
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_json(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        error = ServiceError(f"invalid request: {problems}")
        error.status_code, error.code = 422, "invalid_request"
        return error_json(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = ServiceError(str(exc.detail), headers=dict(exc.headers or {}))
        error.status_code, error.code = exc.status_code, _STATUS_CODES.get(exc.status_code, "http_error")
        return error_json(request, error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_json(request, ServiceError("internal error; the request id identifies it in the logs"))
