"""Reading multipart bodies: per-file byte caps while streaming, malformed parts, clients that leave."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.datastructures import UploadFile
from starlette.requests import Request

from app.api.uploads import InvalidMultipartError, read_form
from app.core.errors import ClientDisconnectedError
from tests.app.asgi import http_scope

CONTENT_TYPE = (b"content-type", b"multipart/form-data; boundary=B")


def _request(chunks: list[bytes]) -> Request:
    last = len(chunks) - 1
    messages = [{"type": "http.request", "body": c, "more_body": i < last} for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return Request(http_scope("/predict/batch", [CONTENT_TYPE]), receive)


def _part(name: str, data: bytes) -> bytes:
    head = f'--B\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
    return head.encode() + b"Content-Type: image/png\r\n\r\n" + data + b"\r\n"


def test_each_file_keeps_at_most_one_byte_over_the_limit_as_it_streams() -> None:
    big = b"x" * 300_000
    first = _part("big.png", big[:100_000]).removesuffix(b"\r\n")  # the big part goes on in the next chunk
    chunks = [first, big[100_000:], b"\r\n" + _part("small.png", b"y" * 10), b"--B--\r\n"]

    async def parse() -> list[bytes]:
        form = await read_form(_request(chunks), max_files=4, max_file_bytes=1000)
        files = [value for value in form.getlist("file") if isinstance(value, UploadFile)]
        contents = [await f.read() for f in files]
        await form.close()
        return contents

    contents = asyncio.run(parse())
    assert [len(c) for c in contents] == [1001, 10]  # the caller can tell the first is over the limit
    assert contents[1] == b"y" * 10


def test_a_part_without_content_disposition_is_malformed() -> None:
    body = b"--B\r\nContent-Type: image/png\r\n\r\nabc\r\n--B--\r\n"
    with pytest.raises(InvalidMultipartError, match="Content-Disposition"):
        asyncio.run(read_form(_request([body]), max_files=1, max_file_bytes=1000))


def test_a_client_that_leaves_mid_body_is_a_client_error() -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    request = Request(http_scope("/predict", [CONTENT_TYPE]), receive)
    with pytest.raises(ClientDisconnectedError):
        asyncio.run(read_form(request, max_files=1, max_file_bytes=1000))
