"""Reading JSON bodies of images in base64 (``{"b64": ...}``, ``{"instances": [{"b64": ...}]}``).

The body limit is enforced while the body streams in (``BodyLimitMiddleware``), as for multipart; it is
sized for base64, which is 4/3 of the file's bytes: :func:`json_upload_limit`.
"""

from __future__ import annotations

import base64
import binascii
from typing import TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from app.api.uploads import check_size
from app.core.errors import ClientDisconnectedError, InvalidBase64Error, UploadTooLargeError

# Keys, quotes, brackets and whitespace around the base64 text of one image.
JSON_OVERHEAD = 64 * 1024
_KIB = 1024
_DATA_URL_MARK = ";base64,"

Body = TypeVar("Body", bound=BaseModel)


def base64_length(size: int) -> int:
    """Characters of the padded base64 of ``size`` bytes: 4 for every 3 bytes, rounded up."""
    return 4 * -(-size // 3)


def json_upload_limit(max_upload_bytes: int) -> int:
    """The most bytes a one-image JSON body may hold: the base64 of the largest file plus JSON_OVERHEAD,
    rounded up to whole KiB (the unit of nginx's ``client_max_body_size``)."""
    limit = base64_length(max_upload_bytes) + JSON_OVERHEAD
    return -(-limit // _KIB) * _KIB


async def read_json(request: Request, model: type[Body]) -> Body:
    """The body parsed into ``model``: 422 ``invalid_request`` (as any validation error) when it is not
    JSON or not of the model's shape."""
    try:
        body = await request.body()
    except ClientDisconnect as exc:
        raise ClientDisconnectedError("the client disconnected before the body was complete") from exc
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def decode_base64(text: str, *, max_upload_bytes: int) -> bytes:
    """The image bytes of one ``b64`` value, size checked.

    Standard base64 (``base64 -w0 face.jpg``); padding may be left out, line breaks (plain ``base64``)
    are ignored, and a data URL's ``data:image/...;base64,`` prefix is dropped.
    400 ``invalid_base64`` for anything else, 413 ``upload_too_large`` past the file limit.
    """
    if text.startswith("data:") and _DATA_URL_MARK in text[:200]:
        text = text.split(_DATA_URL_MARK, 1)[1]
    if len(text) > base64_length(max_upload_bytes) + 4 * 1024:  # checked before decoding anything
        raise UploadTooLargeError(f"the file is larger than the limit of {max_upload_bytes} bytes")
    if any(char in text for char in "\r\n \t"):
        text = "".join(text.split())
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: characters outside ASCII
        raise InvalidBase64Error(
            "'b64' is not valid base64 (standard alphabet A-Z a-z 0-9 + /, e.g. `base64 -w0 face.jpg`)"
        ) from exc
    check_size(data, max_upload_bytes)
    return data
