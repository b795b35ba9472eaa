"""What every subcommand shares: the service's address and options, and one upload with retries.

A ``503`` (model not ready yet, or queue full) is retried after the ``Retry-After`` the service sends,
at most ``--retries`` times and never waiting more than MAX_RETRY_WAIT_S at once; other answers are
returned as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import mimetypes
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "EMOTION_URL"
API_KEY_ENV = "EMOTION_API_KEY"
FACE_MODES = ("largest", "all", "off")
DEFAULT_RETRIES = 5
MAX_RETRY_WAIT_S = 30.0
RETRY_STATUS = 503

Sleep = Callable[[float], Awaitable[Any]]


class UsageError(Exception):
    """A command line that cannot be carried out (no images found, an unknown output format)."""


@dataclass(frozen=True)
class ServiceOptions:
    url: str
    api_key: str | None
    faces: str | None  # None: the service's default
    model: str | None  # None: the service's default model
    timeout_s: float
    retries: int

    def params(self) -> dict[str, str]:
        """The query parameters of an upload."""
        chosen = {"faces": self.faces, "model": self.model}
        return {name: value for name, value in chosen.items() if value is not None}


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("service")
    group.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"the service's base URL (default: ${URL_ENV} or {DEFAULT_URL})",
    )
    group.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        help=f"sent as X-API-Key when the service requires one (default: ${API_KEY_ENV})",
    )
    group.add_argument("--faces", choices=FACE_MODES, help="which faces to classify (default: the service's)")
    group.add_argument("--model", metavar="NAME", help="the model to ask (default: the service's default)")
    group.add_argument("--timeout", type=float, default=60.0, metavar="S", help="per request (default: 60)")
    group.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        metavar="N",
        help=f"retries of a 503 answer, after its Retry-After (default: {DEFAULT_RETRIES})",
    )


def service_options(args: argparse.Namespace) -> ServiceOptions:
    if args.retries < 0:
        raise UsageError("--retries must be 0 or more")
    return ServiceOptions(
        url=args.url.rstrip("/"),
        api_key=args.api_key or None,
        faces=args.faces,
        model=args.model,
        timeout_s=args.timeout,
        retries=args.retries,
    )


def open_client(
    options: ServiceOptions, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    headers = {"X-API-Key": options.api_key} if options.api_key else {}
    return httpx.AsyncClient(
        base_url=options.url, headers=headers, timeout=options.timeout_s, transport=transport
    )


def retry_delay(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait before retrying ``response``: its Retry-After (seconds or an HTTP date), else an
    exponential backoff from 0.5 s; at most MAX_RETRY_WAIT_S."""
    value = response.headers.get("Retry-After", "").strip()
    delay = 0.5 * 2**attempt
    if value.isdigit():
        delay = float(value)
    elif value:
        with contextlib.suppress(TypeError, ValueError):  # unreadable: keep the backoff
            delay = max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    return min(delay, MAX_RETRY_WAIT_S)


async def send_with_retries(
    send: Callable[[], Awaitable[httpx.Response]], retries: int, sleep: Sleep = asyncio.sleep
) -> httpx.Response:
    """``send()`` again while the answer is 503, at most ``retries`` more times."""
    for attempt in range(retries + 1):
        response = await send()
        if response.status_code != RETRY_STATUS or attempt == retries:
            return response
        await sleep(retry_delay(response, attempt))
    raise AssertionError("unreachable")


async def upload(
    client: httpx.AsyncClient, endpoint: str, path: Path, data: bytes, options: ServiceOptions
) -> httpx.Response:
    """POST ``data`` as the multipart field ``file`` (503 retried); the body is rebuilt on each try."""
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"

    def send() -> Awaitable[httpx.Response]:
        files = {"file": (path.name, data, content_type)}
        return client.post(endpoint, params=options.params(), files=files)

    return await send_with_retries(send, options.retries)


def error_of(response: httpx.Response) -> tuple[str, str]:
    """The stable ``code`` and the message of an error answer (``http_<status>`` when it is not JSON)."""
    try:
        error = response.json()["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return f"http_{response.status_code}", response.text[:200] or response.reason_phrase
