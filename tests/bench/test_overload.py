"""bench.load.overload: the figures of a paced overload run, from a made-up wrk result."""

from __future__ import annotations

from bench.load import wrk
from bench.load.overload import overload_markdown, overload_row


def result(latencies: list[float], statuses: list[int], **extra: object) -> wrk.LoadResult:
    values = {
        "concurrency": 4,
        "requests": len(latencies) + 1,  # one never answered
        "answered": len(latencies),
        "not_2xx": sum(s != 200 for s in statuses),
        "socket_errors": 1,
        "seconds": 2.0,
        "latencies_ms": tuple(latencies),
        "client_cpu_s": 0.1,
        "statuses": tuple(statuses),
        "retry_after_503": 2,
        "late": 3,
        **extra,
    }
    return wrk.LoadResult(**values)  # type: ignore[arg-type]


def test_served_and_refused_are_counted_and_timed_apart() -> None:
    capacity = result([10.0] * 10, [200] * 10, concurrency=32, seconds=0.5)  # 20 req/s
    run = result([100.0, 300.0, 200.0, 1.0, 2.0, 5.0], [200, 200, 200, 503, 503, 429])
    row = overload_row("default", capacity, 5, run, load_average=1.5, settings={"EMOTION_QUEUE_MAX": "8"})
    assert (row.capacity_rps, row.capacity_concurrency, row.target_rps) == (20.0, 32, 100.0)
    assert (row.offered_rps, row.served, row.served_rps) == (3.0, 3, 1.5)
    assert (row.rejected_503, row.rejected_with_retry_after, row.other_status) == (2, 2, 1)
    assert (row.socket_errors, row.unanswered, row.late) == (1, 1, 3)
    assert (row.served_p50_ms, row.served_p99_ms, row.served_max_ms) == (200.0, 300.0, 300.0)
    assert (row.rejected_p50_ms, row.rejected_p99_ms) == (1.0, 2.0)
    report = {
        "machine": {"date": "today", "cpus": 2, "cpu": "a CPU", "commit": "abc"},
        "image_name": "face.png",
        "command": "python -m bench.load --overload 5",
    }
    text = overload_markdown(report, [row])
    assert "| default | 20.0 (c=32) | 3.0 (100.0) | 4 | 7 | 3 | 1.5 | 200.0 / 300.0 / 300.0 | 2 | 2 |" in text
    assert "`python -m bench.load --overload 5`" in text
