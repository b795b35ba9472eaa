"""The dynamic batcher with plain functions for a model: fast, no Keras, no FastAPI."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import pytest

from app.core.batching import DynamicBatcher
from app.core.errors import NotReadyError, OverloadedError


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), timeout=20))  # a hang fails the test instead of the run


def image(value: float) -> np.ndarray:
    return np.full((2, 3, 1), value, dtype=np.float32)


def row_sum(batch: np.ndarray) -> np.ndarray:
    return batch.reshape(len(batch), -1).sum(1, keepdims=True)


class Recorder:
    """A ``run_batch`` that records batch sizes, optionally sleeps, and may block on a gate."""

    def __init__(self, delay: float = 0.0, gated: bool = False) -> None:
        self.sizes: list[int] = []
        self.delay = delay
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.started = threading.Event()  # set when a call begins

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.sizes.append(len(batch))
        self.started.set()
        self.gate.wait(timeout=10)
        time.sleep(self.delay)
        return row_sum(batch)

    async def wait_started(self) -> None:
        assert await asyncio.to_thread(self.started.wait, 5), "run_batch was never called"
        self.started.clear()


async def started(batcher: DynamicBatcher) -> DynamicBatcher:
    await batcher.start()
    return batcher


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.001)


def test_each_of_50_concurrent_callers_gets_its_own_row() -> None:
    async def main() -> None:
        batcher = await started(DynamicBatcher(row_sum, max_batch_size=8))
        results = await asyncio.gather(*(batcher.predict(image(i)) for i in range(50)))
        await batcher.stop()
        assert [float(r[0]) for r in results] == [6.0 * i for i in range(50)]
        assert all(r.shape == (1,) for r in results)

        identity = await started(DynamicBatcher(lambda x: x, max_batch_size=16))
        inputs = [np.random.default_rng(i).random((4, 4, 3), dtype=np.float32) for i in range(50)]
        outputs = await asyncio.gather(*(identity.predict(x) for x in inputs))
        await identity.stop()
        for x, y in zip(inputs, outputs, strict=True):
            np.testing.assert_array_equal(x, y)

    run(main)


def test_concurrent_requests_share_model_calls() -> None:
    async def main() -> None:
        model = Recorder(delay=0.005)
        batcher = await started(DynamicBatcher(model, max_batch_size=8))
        await asyncio.gather(*(batcher.predict(image(i)) for i in range(50)))
        stats = batcher.stats
        await batcher.stop()
        assert len(model.sizes) < 50
        assert max(model.sizes) <= 8
        assert sum(model.sizes) == 50
        assert (stats.batches, stats.items, stats.queue_depth) == (len(model.sizes), 50, 0)
        assert stats.mean_batch_size == pytest.approx(50 / len(model.sizes))
        assert stats.as_dict()["mean_batch_size"] == round(50 / len(model.sizes), 3)

    run(main)


def test_a_partial_batch_runs_without_waiting_for_more() -> None:
    async def main() -> None:
        model = Recorder()
        batcher = await started(DynamicBatcher(model, max_batch_size=32, max_wait_ms=500))
        begin = time.monotonic()
        results = await asyncio.gather(*(batcher.predict(image(i)) for i in range(3)))
        elapsed = time.monotonic() - begin
        await batcher.stop()
        assert model.sizes == [3]
        assert [float(r[0]) for r in results] == [0.0, 6.0, 12.0]
        assert elapsed < 0.25

    run(main)


def test_a_lone_request_pays_no_batching_delay() -> None:
    async def main() -> None:
        model = Recorder()
        batcher = await started(DynamicBatcher(model, max_batch_size=4, max_wait_ms=500))
        for _ in range(3):
            begin = time.monotonic()
            assert float((await batcher.predict(image(1)))[0]) == 6.0
            assert time.monotonic() - begin < 0.25
        # A full batch is evidence of load only while the worker stays busy: once it is idle, a lone
        # request is again served at once.
        await asyncio.gather(*(batcher.predict(image(i)) for i in range(4)))
        begin = time.monotonic()
        await batcher.predict(image(1))
        assert time.monotonic() - begin < 0.25
        await batcher.stop()
        assert model.sizes == [1, 1, 1, 4, 1]

    run(main)


def test_after_a_full_batch_requests_arriving_in_the_window_are_batched() -> None:
    async def main() -> None:
        model = Recorder(gated=True)
        batcher = await started(DynamicBatcher(model, max_batch_size=4, max_wait_ms=2000))
        first = [asyncio.create_task(batcher.predict(image(i))) for i in range(4)]
        await model.wait_started()  # a full batch is in flight
        second = [asyncio.create_task(batcher.predict(image(4)))]
        await until(lambda: batcher.stats.queue_depth == 1)
        begin = time.monotonic()
        model.gate.set()
        await asyncio.gather(*first)
        await asyncio.sleep(0.05)  # the worker is free but waits for more: the last batch was full
        assert batcher.stats.queue_depth == 1
        second += [asyncio.create_task(batcher.predict(image(i))) for i in (5, 6, 7)]
        results = await asyncio.gather(*second)  # the batch is full: it runs without the whole window
        assert time.monotonic() - begin < 1.0
        await batcher.stop()
        assert model.sizes == [4, 4]
        assert [float(r[0]) for r in results] == [24.0, 30.0, 36.0, 42.0]

    run(main)


def test_the_window_ends_after_max_wait_ms() -> None:
    async def main() -> None:
        model = Recorder(gated=True)
        batcher = await started(DynamicBatcher(model, max_batch_size=4, max_wait_ms=150))
        first = [asyncio.create_task(batcher.predict(image(i))) for i in range(4)]
        await model.wait_started()
        late = asyncio.create_task(batcher.predict(image(9)))
        await until(lambda: batcher.stats.queue_depth == 1)
        model.gate.set()
        await asyncio.gather(*first)
        begin = time.monotonic()
        assert float((await late)[0]) == 54.0
        assert time.monotonic() - begin > 0.1  # it waited for company, in vain
        await batcher.stop()
        assert model.sizes == [4, 1]

    run(main)


def test_announced_callers_are_waited_for_and_batched() -> None:
    async def main() -> None:
        model = Recorder()
        batcher = await started(DynamicBatcher(model, max_batch_size=8, max_wait_ms=2000))
        begin = time.monotonic()
        with batcher.arriving(2):
            first = asyncio.create_task(batcher.predict(image(1)))
            await asyncio.sleep(0.05)  # the other one is still "decoding"
            assert model.sizes == []
            second = asyncio.create_task(batcher.predict(image(2)))
        assert [float((await t)[0]) for t in (first, second)] == [6.0, 12.0]
        assert model.sizes == [2]
        # An announced caller that gives up ends the wait when it leaves, not after max_wait_ms.
        with batcher.arriving(2):
            third = asyncio.create_task(batcher.predict(image(3)))
            await asyncio.sleep(0.05)
        assert float((await third)[0]) == 18.0
        assert time.monotonic() - begin < 1.0
        await batcher.stop()
        assert model.sizes == [2, 1]

    run(main)


def test_a_full_queue_answers_overloaded_at_once() -> None:
    async def main() -> None:
        model = Recorder(gated=True)
        batcher = await started(DynamicBatcher(model, max_batch_size=1, max_queue=2))
        try:
            tasks = [asyncio.create_task(batcher.predict(image(0)))]
            await model.wait_started()  # in flight, not queued
            tasks += [asyncio.create_task(batcher.predict(image(i))) for i in (1, 2)]
            await until(lambda: batcher.stats.queue_depth == 2)
            with pytest.raises(OverloadedError) as caught:
                await batcher.predict(image(3))
            assert caught.value.status_code == 503
            assert caught.value.headers == {"Retry-After": "1"}
        finally:
            model.gate.set()
        assert [float(r[0]) for r in await asyncio.gather(*tasks)] == [0.0, 6.0, 12.0]
        await batcher.stop()

    run(main)


def test_a_failing_batch_reaches_exactly_its_callers() -> None:
    def model(batch: np.ndarray) -> np.ndarray:
        if (batch < 0).any():
            raise ValueError("poisoned batch")
        return row_sum(batch)

    async def main() -> None:
        batcher = await started(DynamicBatcher(model, max_batch_size=3))
        values = [0, -1, 2, 3, 4, 5]  # batches [0, -1, 2] and [3, 4, 5]
        results = await asyncio.gather(*(batcher.predict(image(v)) for v in values), return_exceptions=True)
        assert all(isinstance(r, ValueError) for r in results[:3])
        assert [float(r[0]) for r in results[3:]] == [18.0, 24.0, 30.0]  # type: ignore[index]
        assert float((await batcher.predict(image(7)))[0]) == 42.0  # the worker goes on
        assert batcher.stats.failed_batches == 1
        await batcher.stop()

    run(main)


@pytest.mark.parametrize(
    "wrong",
    [lambda b: row_sum(b)[:-1], lambda b: np.concatenate([row_sum(b), row_sum(b)]), lambda b: np.float32(1)],
    ids=["too-few-rows", "too-many-rows", "scalar"],
)
def test_a_wrong_row_count_is_an_error_not_a_wrong_answer(wrong: Callable[[np.ndarray], Any]) -> None:
    calls = 0

    def model(batch: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        return wrong(batch) if calls == 1 else row_sum(batch)

    async def main() -> None:
        batcher = await started(DynamicBatcher(model))
        results = await asyncio.gather(*(batcher.predict(image(i)) for i in range(3)), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results), results
        assert float((await batcher.predict(image(1)))[0]) == 6.0
        await batcher.stop()

    run(main)


def test_cancelled_callers_do_not_break_the_worker() -> None:
    async def main() -> None:
        model = Recorder(gated=True)
        batcher = await started(DynamicBatcher(model, max_batch_size=8))
        try:
            in_flight = [asyncio.create_task(batcher.predict(image(i))) for i in (0, 1)]
            await model.wait_started()
            queued = [asyncio.create_task(batcher.predict(image(i))) for i in (2, 3, 4)]
            await until(lambda: batcher.stats.queue_depth == 3)
            queued[1].cancel()  # a client gone while queued: its place is freed
            in_flight[0].cancel()  # and one gone while its batch runs: its row is dropped
            await asyncio.sleep(0)
            assert batcher.stats.queue_depth == 2
        finally:
            model.gate.set()
        assert float((await in_flight[1])[0]) == 6.0
        assert [float((await t)[0]) for t in (queued[0], queued[2])] == [12.0, 24.0]
        for task in (queued[1], in_flight[0]):
            with pytest.raises(asyncio.CancelledError):
                await task
        assert float((await batcher.predict(image(5)))[0]) == 30.0
        await batcher.stop()
        assert model.sizes == [2, 2, 1]

    run(main)


def test_stop_drains_queued_and_in_flight_requests() -> None:
    async def main() -> None:
        model = Recorder(gated=True)
        batcher = DynamicBatcher(model, max_batch_size=2)
        with pytest.raises(NotReadyError):
            await batcher.predict(image(0))  # not started
        await batcher.start()
        try:
            tasks = [asyncio.create_task(batcher.predict(image(i))) for i in range(2)]
            await model.wait_started()
            tasks += [asyncio.create_task(batcher.predict(image(i))) for i in range(2, 7)]
            await until(lambda: batcher.stats.queue_depth == 5)
            stopping = asyncio.create_task(batcher.stop())
            await asyncio.sleep(0.01)
            assert not stopping.done()
            with pytest.raises(NotReadyError) as caught:
                await batcher.predict(image(9))
            assert caught.value.status_code == 503
        finally:
            model.gate.set()
        await stopping
        assert [float((await t)[0]) for t in tasks] == [6.0 * i for i in range(7)]
        assert model.sizes == [2, 2, 2, 1]
        with pytest.raises(NotReadyError):
            await batcher.predict(image(0))
        await batcher.stop()  # twice is harmless

    run(main)


def test_the_event_loop_stays_responsive_during_a_model_call() -> None:
    async def main() -> None:
        model = Recorder(gated=True)
        batcher = await started(DynamicBatcher(model))
        try:
            task = asyncio.create_task(batcher.predict(image(1)))
            await model.wait_started()
            ticks = 0
            for _ in range(5):
                await asyncio.sleep(0.001)
                ticks += 1
            assert ticks == 5 and not task.done()
        finally:
            model.gate.set()
        assert float((await task)[0]) == 6.0
        await batcher.stop()

    run(main)


@pytest.mark.parametrize("kwargs", [{"max_batch_size": 0}, {"max_queue": 0}, {"max_wait_ms": -1.0}], ids=str)
def test_invalid_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DynamicBatcher(row_sum, **kwargs)


def test_start_twice_is_an_error() -> None:
    async def main() -> None:
        batcher = await started(DynamicBatcher(row_sum))
        with pytest.raises(RuntimeError):
            await batcher.start()
        await batcher.stop()

    run(main)


def test_on_batch_sees_each_batch_size_and_what_is_left_waiting() -> None:
    """The hook metrics use: called once per batch, with its size and the queue left behind."""

    async def main() -> None:
        seen: list[tuple[int, int]] = []
        model = Recorder(gated=True)
        batcher = await started(
            DynamicBatcher(model, max_batch_size=4, on_batch=lambda size, depth: seen.append((size, depth)))
        )
        first = asyncio.create_task(batcher.predict(image(0)))
        await model.wait_started()  # the first batch (1 input) holds the model thread
        rest = [asyncio.create_task(batcher.predict(image(i))) for i in range(1, 7)]
        await until(lambda: batcher.stats.queue_depth == 6)
        model.gate.set()
        await asyncio.gather(first, *rest)
        await batcher.stop()
        assert seen == [(1, 0), (4, 2), (2, 0)]
        assert [size for size, _ in seen] == model.sizes

    run(main)
