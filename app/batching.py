"""Dynamic batching: concurrent requests share one model call.

Policy. Requests queue up while the model is busy; when the worker is free it takes everything queued
(at most ``max_batch_size``) and runs it as one call in its own thread. An idle service runs a lone
request at once, with no batching delay. Only under concurrency (the previous batch held more than
one image) does the worker wait up to ``max_wait_ms`` for a batch to fill. The queue is bounded:
past ``max_queue`` waiting images, :class:`~app.errors.OverloadedError` (503, ``Retry-After``) is
raised at once rather than letting latency grow without bound. :meth:`DynamicBatcher.stop` refuses
new work and answers everything already queued before it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from app.errors import NotReadyError, OverloadedError


@dataclass
class BatcherStats:
    batches: int = 0
    items: int = 0
    largest_batch: int = 0
    queue_depth: int = 0
    max_batch_size: int = 0
    max_wait_ms: float = 0.0
    max_queue: int = 0

    @property
    def mean_batch_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "mean_batch_size": round(self.mean_batch_size, 3)}


@dataclass
class _Pending:
    item: np.ndarray
    future: asyncio.Future[np.ndarray]


class DynamicBatcher:
    def __init__(
        self,
        run_batch: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        max_queue: int = 256,
        name: str = "model",
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1 and max_wait_ms >= 0")
        self._run_batch = run_batch
        self._max_batch_size = max_batch_size
        self._max_wait = max_wait_ms / 1000
        self._max_queue = max_queue
        self._name = name
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_batch_size = 0
        self._stats = BatcherStats(
            max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, max_queue=max_queue
        )

    @property
    def stats(self) -> BatcherStats:
        self._stats.queue_depth = len(self._queue)
        return self._stats

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the batcher is already started")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self._name}-batcher")
        self._task = asyncio.create_task(self._work(), name=f"{self._name}-batcher")

    async def predict(self, item: np.ndarray) -> np.ndarray:
        """The model's output row for one input; waits while it is batched and run."""
        if self._task is None or self._closing:
            raise NotReadyError(
                "the model is not accepting requests (starting or shutting down)",
                headers={"Retry-After": "1"},
            )
        if len(self._queue) >= self._max_queue:
            raise OverloadedError(
                f"{len(self._queue)} images are already waiting for the model; retry shortly",
                headers={"Retry-After": "1"},
            )
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, future))
        self._wakeup.set()
        return await future

    async def stop(self) -> None:
        """Refuse new work, answer everything queued, then end the worker."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def _fill_window(self) -> None:
        deadline = time.monotonic() + self._max_wait
        while len(self._queue) < self._max_batch_size and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        while self._queue and len(batch) < self._max_batch_size:
            pending = self._queue.popleft()
            if not pending.future.done():  # a caller that gave up (cancelled) is skipped
                batch.append(pending)
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._last_batch_size > 1 and self._max_wait > 0:
                await self._fill_window()
            batch = self._take_batch()
            if not batch:
                continue
            self._last_batch_size = len(batch)
            try:
                stacked = np.stack([pending.item for pending in batch])
                outputs = await loop.run_in_executor(self._executor, self._run_batch, stacked)
                if len(outputs) != len(batch):
                    raise RuntimeError(f"the model returned {len(outputs)} rows for a batch of {len(batch)}")
            except Exception as exc:  # delivered to exactly the callers of this batch
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            self._stats.batches += 1
            self._stats.items += len(batch)
            self._stats.largest_batch = max(self._stats.largest_batch, len(batch))
            for pending, row in zip(batch, outputs, strict=True):
                if not pending.future.done():
                    pending.future.set_result(row)
