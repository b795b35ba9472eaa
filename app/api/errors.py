"""Errors of the HTTP layer: a request that is not a usable upload, is too large or too slow, or lacks
a valid key. Rendered like every :class:`~app.core.errors.ServiceError` by ``app.api.error_handlers``.
"""

from __future__ import annotations

from app.core.errors import ServiceError


class UploadTooLargeError(ServiceError):
    status_code = 413
    code = "upload_too_large"


class NotMultipartError(ServiceError):
    status_code = 415
    code = "expected_multipart"


class InvalidMultipartError(ServiceError):
    status_code = 400
    code = "invalid_multipart"


class MissingFileError(ServiceError):
    status_code = 422
    code = "missing_file"


class TooManyFilesError(ServiceError):
    status_code = 422
    code = "too_many_files"


class UnauthorizedError(ServiceError):
    status_code = 401
    code = "unauthorized"


class UnexpectedFieldError(ServiceError):
    status_code = 422
    code = "unexpected_field"


class RequestTimeoutError(ServiceError):
    status_code = 408
    code = "request_timeout"


class ClientDisconnectedError(ServiceError):
    """The client went away before its request body was complete (logged; nobody reads the answer)."""

    status_code = 400
    code = "client_disconnected"
