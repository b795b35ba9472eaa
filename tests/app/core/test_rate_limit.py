"""KeyRateLimiter: N requests a minute per key, then 429 rate_limited with a Retry-After in seconds."""

from __future__ import annotations

import pytest

from app.core.errors import RateLimitedError
from app.core.rate_limit import KeyRateLimiter


def test_the_budget_then_429_with_retry_after() -> None:
    limiter = KeyRateLimiter(3)
    for _ in range(3):
        limiter.hit("key-a")
    with pytest.raises(RateLimitedError) as refused:
        limiter.hit("key-a")
    error = refused.value
    assert (error.status_code, error.code) == (429, "rate_limited")
    retry_after = int(error.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert "3 requests" in error.message


def test_keys_have_their_own_budgets() -> None:
    limiter = KeyRateLimiter(1)
    limiter.hit("key-a")
    limiter.hit("key-b")
    with pytest.raises(RateLimitedError):
        limiter.hit("key-a")
    with pytest.raises(RateLimitedError):
        limiter.hit("key-b")


def test_a_budget_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        KeyRateLimiter(0)
