"""Uploads with retries: a 503 is retried after its Retry-After, a bounded number of times."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from client.service import (
    MAX_RETRY_WAIT_S,
    ServiceOptions,
    error_of,
    retry_delay,
    send_with_retries,
)


def answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("POST", "http://service/predict"))


def test_retry_delay_follows_retry_after_in_seconds_or_as_a_date_within_a_cap() -> None:
    assert retry_delay(answer(503, **{"Retry-After": "3"}), attempt=0) == 3.0
    assert retry_delay(answer(503, **{"Retry-After": "3600"}), attempt=0) == MAX_RETRY_WAIT_S
    in_five_s = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    assert 3.0 < retry_delay(answer(503, **{"Retry-After": in_five_s}), attempt=0) <= 5.0
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=5), usegmt=True)
    assert retry_delay(answer(503, **{"Retry-After": past}), attempt=0) == 0.0


def test_without_a_readable_retry_after_the_wait_backs_off() -> None:
    assert [retry_delay(answer(503), attempt) for attempt in range(3)] == [0.5, 1.0, 2.0]
    assert retry_delay(answer(503, **{"Retry-After": "soon"}), attempt=1) == 1.0
    assert retry_delay(answer(503), attempt=20) == MAX_RETRY_WAIT_S


def run_retries(statuses: list[int], retries: int) -> tuple[httpx.Response, list[float], int]:
    answers = iter(statuses)
    waits: list[float] = []
    sent = 0

    async def send() -> httpx.Response:
        nonlocal sent
        sent += 1
        return answer(next(answers), **{"Retry-After": "2"})

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    response = asyncio.run(send_with_retries(send, retries, sleep))
    return response, waits, sent


def test_a_503_is_retried_after_its_retry_after_until_it_succeeds() -> None:
    response, waits, sent = run_retries([503, 503, 200], retries=5)
    assert (response.status_code, waits, sent) == (200, [2.0, 2.0], 3)


def test_retries_are_bounded() -> None:
    response, waits, sent = run_retries([503] * 10, retries=3)
    assert (response.status_code, len(waits), sent) == (503, 3, 4)
    response, waits, sent = run_retries([503] * 10, retries=0)
    assert (response.status_code, waits, sent) == (503, [], 1)


@pytest.mark.parametrize("status", [200, 400, 413, 500])
def test_other_answers_are_not_retried(status: int) -> None:
    response, waits, sent = run_retries([status, 200], retries=3)
    assert (response.status_code, waits, sent) == (status, [], 1)


def test_options_become_query_parameters_only_when_given() -> None:
    options = ServiceOptions("http://s", None, faces=None, model=None, timeout_s=5, retries=1)
    assert options.params() == {}
    chosen = ServiceOptions(
        "http://s", None, faces="all", model="emotion_cnn_neutral", timeout_s=5, retries=1
    )
    assert chosen.params() == {"faces": "all", "model": "emotion_cnn_neutral"}


def test_error_of_reads_the_stable_code_or_names_the_status() -> None:
    json_error = httpx.Response(415, json={"error": {"code": "unsupported_image_type", "message": "no"}})
    assert error_of(json_error) == ("unsupported_image_type", "no")
    assert error_of(httpx.Response(502, text="Bad Gateway")) == ("http_502", "Bad Gateway")
