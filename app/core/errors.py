"""Errors the service answers with: an HTTP status, a stable machine-readable code and a message.

Every failure a client can cause is one of these; the code strings are part of the API contract.
One catalogue for the whole service: the core raises the image and capacity errors, ``app.api`` the
request-level ones (multipart, limits, keys), and ``app.api.error_handlers`` renders them all.
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


class UploadTooLargeError(ServiceError):
    status_code = 413
    code = "upload_too_large"


class NotMultipartError(ServiceError):
    status_code = 415
    code = "expected_multipart"


class MissingFileError(ServiceError):
    status_code = 422
    code = "missing_file"


class TooManyFilesError(ServiceError):
    status_code = 422
    code = "too_many_files"


class NotReadyError(ServiceError):
    status_code = 503
    code = "not_ready"


class OverloadedError(ServiceError):
    status_code = 503
    code = "overloaded"


class UnauthorizedError(ServiceError):
    status_code = 401
    code = "unauthorized"


class RateLimitedError(ServiceError):
    """The API key used up its requests per minute (``EMOTION_RATE_LIMIT_PER_MINUTE``)."""

    status_code = 429
    code = "rate_limited"


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


class InvalidBase64Error(ServiceError):
    """A JSON body's ``b64`` is not base64 (standard alphabet, padding optional)."""

    status_code = 400
    code = "invalid_base64"


class UnknownModelError(ServiceError):
    """``?model=NAME`` names no model this service serves (``GET /models`` lists them)."""

    status_code = 404
    code = "unknown_model"


class ChallengeError(ServiceError):
    """The expression challenge asked for is not open: unknown, already used or expired."""

    status_code = 404
    code = "challenge_unavailable"


class ChallengeLimitError(ServiceError):
    """``EMOTION_CHALLENGE_MAX_OPEN`` challenges are open already."""

    status_code = 503
    code = "too_many_challenges"


class StreamConfigError(ServiceError):
    """The first text message of a /stream connection is not a valid configuration."""

    status_code = 422
    code = "invalid_stream_config"


class FrameTooLargeError(ServiceError):
    """A /stream frame over ``EMOTION_STREAM_MAX_FRAME_BYTES`` (dropped; the stream goes on)."""

    status_code = 413
    code = "frame_too_large"


class ChallengesUnavailableError(ServiceError):
    """The model has too few of ``EMOTION_CHALLENGE_POOL``'s expressions to draw a challenge from."""

    status_code = 503
    code = "challenges_unavailable"
