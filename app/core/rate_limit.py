"""A per-key request budget: at most N requests in any 60 s, counted in this process's memory.

The ``limits`` library's moving window (the one Flask-Limiter and slowapi use) with its in-memory
storage: each key's requests of the last minute are kept as timestamps. The count is per process: with
several workers or replicas, a key may make N requests in each of them.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from app.core.errors import RateLimitedError


class KeyRateLimiter:
    """``hit(key_id)`` once per request; raises :class:`RateLimitedError` past the budget."""

    def __init__(self, per_minute: int) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._item = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key_id: str) -> None:
        """Count one request of ``key_id``, or refuse it with ``Retry-After`` (whole seconds, >= 1)."""
        if self._limiter.hit(self._item, key_id):
            return
        reset_at = self._limiter.get_window_stats(self._item, key_id).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimitedError(
            f"this API key made {self.per_minute} requests in the last minute, its limit; "
            f"retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
