"""Reading multipart uploads with byte limits enforced while the body streams in (JSON bodies:
``app/api/json_uploads.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import (
    ClientDisconnectedError,
    MissingFileError,
    NotMultipartError,
    RequestTimeoutError,
    ServiceError,
    TooManyFilesError,
    UnexpectedFieldError,
    UploadTooLargeError,
)

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file bytes
MULTIPART = "multipart/form-data"
JSON = "application/json"


class InvalidMultipartError(ServiceError):
    status_code = 400
    code = "invalid_multipart"


class BodyLimitMiddleware:
    """Answers 413 as soon as a request body is known to exceed its route's limit, 408 when it is too slow.

    ``limit_for(path, media_type)`` gives the limit of a request (None: no limit): a route may take a
    larger JSON body than a multipart one, since base64 makes the image a third larger.

    A declared Content-Length over the limit is refused before any byte is read; a body without one
    (chunked) is counted as it streams and cut off at the limit, so memory stays flat. Uvicorn has no
    body read timeout, so the whole body must arrive within ``body_timeout_s`` of the first read: a slow
    (or stalled) client cannot hold a request open forever.
    """

    def __init__(
        self, app: ASGIApp, limit_for: Callable[[str, str], int | None], body_timeout_s: float = 30.0
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = self.limit_for(scope["path"], media_type(headers.get(b"content-type", b"").decode("latin-1")))
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            state = scope.setdefault("state", {})
            state["error_code"] = UploadTooLargeError.code
            await _send_too_large(send, limit, state.get("request_id"))
            return
        received = 0
        deadline: float | None = None  # set by the first read
        complete = False

        async def limited_receive() -> Message:
            nonlocal received, deadline, complete
            if complete:  # the body is in; later reads only wait for a disconnect
                return await receive()
            if deadline is None:
                deadline = anyio.current_time() + self.body_timeout_s
            try:
                with anyio.fail_after(max(deadline - anyio.current_time(), 0.0)):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeoutError(
                    f"the request body did not arrive within {self.body_timeout_s:g} s",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # the rest is never read: the connection cannot be reused
                    raise UploadTooLargeError(_too_large_message(limit), headers={"Connection": "close"})
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)


def media_type(content_type: str) -> str:
    """``multipart/form-data; boundary=x`` -> ``multipart/form-data`` (lower case)."""
    return content_type.split(";", 1)[0].strip().lower()


def _too_large_message(limit: int) -> str:
    return f"the upload is larger than the limit of {limit} bytes"


async def _send_too_large(send: Send, limit: int, request_id: str | None) -> None:
    error = {"code": UploadTooLargeError.code, "message": _too_large_message(limit), "request_id": request_id}
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_form(request: Request, *, max_files: int, max_file_bytes: int) -> FormData:
    """Parse a multipart/form-data body; 415 if the body is not multipart, 400 if it is malformed.

    The parser keeps at most ``max_files + 1`` parts, so the caller can count one too many and say so;
    a body with even more parts is refused here with the same 422 ``too_many_files``. Each file keeps
    at most ``max_file_bytes + 1`` bytes: the caller sees that it is too large, memory stays flat.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith(MULTIPART):
        raise NotMultipartError(
            "send the image as multipart/form-data with a field named 'file', "
            f"not {content_type[:100] or 'no content type'}"
        )
    limit = max_files + 1
    parser = _UploadParser(
        request.headers, request.stream(), max_files=limit, max_fields=limit, max_file_bytes=max_file_bytes
    )
    try:
        return await parser.parse()
    except (MultiPartException, HTTPException) as exc:  # inside an app Starlette re-raises it as a 400
        message = exc.message if isinstance(exc, MultiPartException) else str(exc.detail)
        if message.startswith("Too many files"):
            raise TooManyFilesError(
                f"too many files in one request; this endpoint takes at most {max_files}"
            ) from exc
        raise InvalidMultipartError(f"the multipart body could not be parsed: {message}") from exc
    except AssertionError as exc:  # python-multipart asserts on some malformed boundaries
        raise InvalidMultipartError("the multipart body could not be parsed") from exc
    except ClientDisconnect as exc:
        raise ClientDisconnectedError("the client disconnected before the body was complete") from exc


class _UploadParser(MultiPartParser):
    """Starlette's multipart parser, except that:

    - a part declaring a non-text Content-Type is a file even without a filename (RFC 7578 makes the
      filename optional, and some clients leave it out); a part with no Content-Type and no filename
      stays a text field;
    - a part without a Content-Disposition header is malformed (400), not a crash;
    - a file keeps only its first ``max_file_bytes + 1`` bytes, the rest is dropped as it streams in.
    """

    def __init__(self, *args: Any, max_file_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_file_bytes = max_file_bytes
        self._part_bytes = 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._part_bytes = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current_part.file is not None:
            keep = max(0, min(end - start, self._max_file_bytes + 1 - self._part_bytes))
            self._part_bytes += keep
            end = start + keep
            if keep == 0:
                return
        super().on_part_data(data, start, end)

    def on_headers_finished(self) -> None:
        part = self._current_part
        if part.content_disposition is None:
            raise MultiPartException("a part has no Content-Disposition header")
        _, options = parse_options_header(part.content_disposition)
        declared = dict(part.item_headers).get(b"content-type", b"").strip().lower()
        if b"filename" not in options and declared and not declared.startswith(b"text/"):
            part.content_disposition += b'; filename=""'
        super().on_headers_finished()


def single_upload_limit(max_upload_bytes: int) -> int:
    """The most bytes a one-file request body may hold (for BodyLimitMiddleware)."""
    return max_upload_bytes + MULTIPART_OVERHEAD


def check_size(data: bytes, max_upload_bytes: int) -> None:
    """``data`` holds at most the limit + 1 bytes (read_form drops the rest)."""
    if len(data) > max_upload_bytes:
        raise UploadTooLargeError(f"the file is larger than the limit of {max_upload_bytes} bytes")


async def read_one_file(request: Request, *, max_file_bytes: int) -> bytes:
    """The bytes of the one ``file`` of a multipart request (``/predict``, ``/annotate``), size checked;
    422 ``too_many_files`` for more than one."""
    form = await read_form(request, max_files=1, max_file_bytes=max_file_bytes)
    try:
        uploads = files_in(form, "file")
        if len(uploads) > 1:
            raise TooManyFilesError(f"{request.url.path} takes one file; send several to /predict/batch")
        data = await uploads[0].read()
    finally:
        await form.close()
    check_size(data, max_file_bytes)
    return data


def files_in(form: FormData, field: str) -> list[UploadFile]:
    """The files sent in ``field``: 422 ``missing_file`` when there are none, 422 ``unexpected_field``
    when other fields were sent too (e.g. ``faces`` as a form field: it is a query parameter)."""
    files = [value for value in form.getlist(field) if isinstance(value, UploadFile)]
    if not files:
        present = ", ".join(sorted(set(form.keys()))) or "none"
        raise MissingFileError(
            f"the multipart field '{field}' with an image file is required (fields sent: {present})"
        )
    unexpected = sorted(set(form.keys()) - {field})
    if unexpected:
        raise UnexpectedFieldError(
            f"unexpected multipart field(s): {', '.join(name[:40] for name in unexpected[:5])}; "
            f"only '{field}' is accepted "
            "(options such as faces are query parameters)"
        )
    return files
