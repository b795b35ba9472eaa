"""Dynamic batching: concurrent requests share one model call.

:class:`DynamicBatcher` wraps a plain ``run_batch(stacked_inputs) -> rows`` function (no FastAPI, no
Keras here). Callers ``await predict(item)`` with one input; a single worker task collects the queued
inputs, stacks them and runs ``run_batch`` in its own dedicated thread, so the event loop stays free.

Batching policy ("continuous" batching):

* While a batch runs in the thread, new requests queue up. When the worker is free it takes everything
  queued, at most ``max_batch_size``, and runs it as one call. An idle worker runs a lone request at
  once: nobody pays a batching delay unless there is evidence that more requests are coming.
* The evidence, and only then the ``max_wait_ms`` window: (a) the previous batch was full and the
  worker has been busy ever since (saturation; it expires as soon as the worker goes idle), or
  (b) callers announced with :meth:`DynamicBatcher.arriving` are still on their way. The worker then
  holds off at most ``max_wait_ms`` from the moment it is free, and runs sooner when the batch is full,
  when the announced callers have all arrived (or gave up), or when :meth:`DynamicBatcher.stop` is
  called.
* The queue is bounded: with ``max_queue`` inputs already waiting, :meth:`DynamicBatcher.predict` raises
  :class:`~app.core.errors.OverloadedError` (503, ``Retry-After: 1``) at once instead of letting latency grow.
* Row ``i`` of the output goes to the ``i``-th caller of the batch. If ``run_batch`` raises, or returns
  a number of rows other than the batch size (:class:`RuntimeError`), exactly that batch's callers get
  the error; the worker goes on with the next batch. A caller cancelled while queued is dropped from
  the queue; one cancelled in flight has its row discarded.
* :meth:`DynamicBatcher.stop` refuses new work (:class:`~app.core.errors.NotReadyError`), answers every
  request already queued or in flight, then ends the worker thread.

All methods are meant to be called from the event loop the batcher was started on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from app.core.errors import NotReadyError, OverloadedError

RETRY_AFTER = {"Retry-After": "1"}


@dataclass(frozen=True)
class BatcherStats:
    """Counters and settings of a batcher, a snapshot taken when read."""

    batches: int  # calls of run_batch, failed ones included
    items: int  # inputs in those calls
    failed_batches: int  # calls that raised or returned the wrong number of rows
    largest_batch: int
    queue_depth: int  # inputs waiting for the model now
    in_flight: int  # inputs in the call running now
    max_batch_size: int
    max_wait_ms: float
    max_queue: int

    @property
    def mean_batch_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0

    def as_dict(self) -> dict[str, float]:
        return {**dataclasses.asdict(self), "mean_batch_size": round(self.mean_batch_size, 3)}


@dataclass(eq=False)  # identity comparison: deque.remove must not compare arrays
class _Pending:
    item: np.ndarray
    future: asyncio.Future[np.ndarray]


class DynamicBatcher:
    """Runs ``run_batch`` on stacked inputs of concurrent :meth:`predict` calls; see the module doc."""

    def __init__(
        self,
        run_batch: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        max_queue: int = 256,
        name: str = "model",
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        """``on_batch(size, queue_depth)`` is called on the event loop as each batch starts (for metrics:
        its size and the inputs still waiting); it must be quick and not raise."""
        if max_batch_size < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1 and max_wait_ms >= 0")
        self._run_batch = run_batch
        self._max_batch_size = max_batch_size
        self._max_wait_ms = max_wait_ms
        self._max_queue = max_queue
        self._name = name
        self._on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()  # set on every change the worker may be waiting for
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._saturated = False  # the last batch was full and the worker has not been idle since
        self._arriving = 0  # callers announced by arriving() and not yet gone
        self._in_flight = 0
        self._batches = self._items = self._failed = self._largest = 0

    @property
    def stats(self) -> BatcherStats:
        return BatcherStats(
            batches=self._batches,
            items=self._items,
            failed_batches=self._failed,
            largest_batch=self._largest,
            queue_depth=len(self._queue),
            in_flight=self._in_flight,
            max_batch_size=self._max_batch_size,
            max_wait_ms=self._max_wait_ms,
            max_queue=self._max_queue,
        )

    async def start(self) -> None:
        """Start the worker task and its one model thread."""
        if self._task is not None:
            raise RuntimeError(f"the {self._name} batcher was already started")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self._name}-batcher")
        self._task = asyncio.create_task(self._work(), name=f"{self._name}-batcher")

    async def predict(self, item: np.ndarray) -> np.ndarray:
        """The output row for one input (e.g. ``(H, W, C)`` float32 -> ``(classes,)``)."""
        if self._task is None or self._closing:
            raise NotReadyError(
                "the model is not accepting requests (starting or shutting down)", headers=RETRY_AFTER
            )
        if len(self._queue) >= self._max_queue:
            raise OverloadedError(
                f"{len(self._queue)} images are already waiting for the model; retry shortly",
                headers=RETRY_AFTER,
            )
        pending = _Pending(item, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._wakeup.set()
        try:
            return await pending.future
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):  # still queued: free its place
                self._queue.remove(pending)
            raise

    @contextlib.contextmanager
    def arriving(self, count: int = 1) -> Iterator[None]:
        """Announce ``count`` :meth:`predict` calls on their way (e.g. images still being decoded).

        While announced callers are pending, the worker may wait up to ``max_wait_ms`` to batch them
        with what is queued. Leave the block before awaiting :meth:`predict`, or the worker waits for
        a caller that is already there::

            with batcher.arriving():
                x = await preprocess(upload)
            row = await batcher.predict(x)
        """
        self._arriving += count
        try:
            yield
        finally:
            self._arriving -= count
            self._wakeup.set()

    async def stop(self) -> None:
        """Refuse new work, answer everything queued or in flight, then end the worker thread."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def _more_coming(self) -> bool:
        return self._saturated or self._arriving > 0

    async def _fill_window(self) -> None:
        """Wait up to ``max_wait_ms`` for the batch to fill while more requests are expected."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._max_wait_ms / 1000):
                while len(self._queue) < self._max_batch_size and self._more_coming() and not self._closing:
                    self._wakeup.clear()
                    await self._wakeup.wait()

    def _take_batch(self) -> list[_Pending]:
        batch: list[_Pending] = []
        while self._queue and len(batch) < self._max_batch_size:
            pending = self._queue.popleft()
            if not pending.future.done():  # a caller that gave up is skipped
                batch.append(pending)
        return batch

    def _call(self, items: list[np.ndarray]) -> np.ndarray:
        """In the model thread: stack, run, check the row count."""
        outputs = np.asarray(self._run_batch(np.stack(items)))
        if outputs.ndim == 0 or len(outputs) != len(items):
            rows = "a scalar" if outputs.ndim == 0 else f"{len(outputs)} rows"
            raise RuntimeError(f"{self._name} returned {rows} for a batch of {len(items)}")
        return outputs

    async def _work(self) -> None:
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    self._saturated = False  # idle: a past full batch is no evidence any more
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if self._max_wait_ms > 0 and self._more_coming():
                    await self._fill_window()
                batch = self._take_batch()
                if batch:
                    await self._run(batch)
        finally:  # normally empty; not so only if the worker itself was cancelled
            self._closing = True
            while self._queue:
                _fail(self._queue.popleft(), NotReadyError("the model worker stopped", headers=RETRY_AFTER))

    async def _run(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        self._in_flight = len(batch)
        self._batches += 1
        self._items += len(batch)
        self._largest = max(self._largest, len(batch))
        self._saturated = len(batch) == self._max_batch_size
        if self._on_batch is not None:
            self._on_batch(len(batch), len(self._queue))
        try:
            outputs = await loop.run_in_executor(self._executor, self._call, [p.item for p in batch])
        except Exception as exc:  # goes to exactly the callers of this batch
            self._failed += 1
            for pending in batch:
                _fail(pending, exc)
            return
        except BaseException:  # the worker is cancelled: do not leave these callers hanging
            for pending in batch:
                _fail(pending, NotReadyError("the model worker stopped", headers=RETRY_AFTER))
            raise
        finally:
            self._in_flight = 0
        for pending, row in zip(batch, outputs, strict=True):
            if not pending.future.done():  # a caller cancelled in flight: its row is dropped
                pending.future.set_result(row)


def _fail(pending: _Pending, exc: BaseException) -> None:
    if not pending.future.done():
        pending.future.set_exception(exc)
