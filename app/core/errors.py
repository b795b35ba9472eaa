"""Errors of the domain: an HTTP status, a stable machine-readable code and a message.

Every failure a client can cause is a :class:`ServiceError`; the code strings are part of the API
contract. These are the ones the core raises (an unusable image, a model that is not ready or is
overloaded); the request-level ones (multipart, limits, keys) are in ``app.api.errors``. The status
and headers are plain data here: ``app.api.error_handlers`` turns any of them into the JSON answer.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A failure with a stable code; rendered as ``{"error": {"code", "message"}}``."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class ImageError(ServiceError):
    """The uploaded bytes are not a usable image."""

    status_code = 400
    code = "invalid_image"


class EmptyImageError(ImageError):
    code = "empty_file"


class UnsupportedImageTypeError(ImageError):
    status_code = 415
    code = "unsupported_image_type"


class ImageDecodeError(ImageError):
    code = "image_decode_failed"


class ImageTooLargeError(ImageError):
    status_code = 413
    code = "image_too_large"


class NotReadyError(ServiceError):
    status_code = 503
    code = "not_ready"


class OverloadedError(ServiceError):
    status_code = 503
    code = "overloaded"
