"""Overload: the service offered several times what it can serve, on a fixed schedule.

``python -m bench.load --overload 5`` (see ``bench/load/__main__.py``) measures the capacity of our
service with a closed-loop run at ``--concurrency`` (requests/s at the first level), then offers
``factor`` times that rate with a paced, open-loop wrk run over ``--overload-connections`` connections
for ``--overload-seconds``. What it shows: how many requests were served and at what latency, how many
were turned away with 503 (and whether they carried Retry-After) and how fast, and whether anything
else happened (other statuses, socket errors). A closed loop cannot show this: its clients slow down
with the server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.load import wrk
from bench.load.report import FACE_TITLES, _ms


@dataclass
class OverloadRow:
    faces: str
    capacity_rps: float  # closed loop, at capacity_concurrency
    capacity_concurrency: int
    factor: float
    target_rps: float
    connections: int
    requests: int
    offered_rps: float  # requests sent / the run's seconds (below target when connections were late)
    late: int
    served: int  # 200
    served_rps: float
    rejected_503: int
    rejected_with_retry_after: int
    other_status: int
    socket_errors: int
    unanswered: int
    served_p50_ms: float
    served_p99_ms: float
    served_max_ms: float
    rejected_p50_ms: float
    rejected_p99_ms: float
    load_average_before: float
    settings: dict[str, str]


def overload_row(
    faces: str,
    capacity: wrk.LoadResult,
    factor: float,
    result: wrk.LoadResult,
    *,
    load_average: float,
    settings: dict[str, str],
) -> OverloadRow:
    served, rejected = result.latencies_of(200), result.latencies_of(503)
    seconds = result.seconds if result.seconds > 0 else float("nan")
    return OverloadRow(
        faces=faces,
        capacity_rps=round(capacity.requests_per_s, 1),
        capacity_concurrency=capacity.concurrency,
        factor=factor,
        target_rps=round(factor * capacity.requests_per_s, 1),
        connections=result.concurrency,
        requests=result.requests,
        offered_rps=round(result.answered / seconds, 1),
        late=result.late,
        served=len(served),
        served_rps=round(len(served) / seconds, 1),
        rejected_503=len(rejected),
        rejected_with_retry_after=result.retry_after_503,
        other_status=len(result.statuses) - len(served) - len(rejected),
        socket_errors=result.socket_errors,
        unanswered=result.requests - result.answered,
        served_p50_ms=round(wrk.percentile(served, 50), 1),
        served_p99_ms=round(wrk.percentile(served, 99), 1),
        served_max_ms=round(max(served), 1) if served else float("nan"),
        rejected_p50_ms=round(wrk.percentile(rejected, 50), 2),
        rejected_p99_ms=round(wrk.percentile(rejected, 99), 2),
        load_average_before=load_average,
        settings=settings,
    )


def overload_markdown(report: dict[str, Any], rows: Sequence[OverloadRow]) -> str:
    machine = report["machine"]
    lines = [
        f"Measured {machine['date']} on {machine['cpus']} x {machine['cpu']} (commit {machine['commit']}), "
        f"image `{report['image_name']}`, command `{report['command']}`.",
        "",
        "| faces | capacity req/s (closed loop) | offered req/s (target) | connections | requests | served | "
        "served req/s | served p50 / p99 / max ms | 503 | with Retry-After | 503 p50 / p99 ms | other | "
        "socket errors | late sends |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.faces} | {r.capacity_rps} (c={r.capacity_concurrency}) | "
            f"{r.offered_rps} ({r.target_rps}) | {r.connections} | {r.requests} | "
            f"{r.served} | {r.served_rps} | "
            f"{_ms(r.served_p50_ms)} / {_ms(r.served_p99_ms)} / {_ms(r.served_max_ms)} | {r.rejected_503} | "
            f"{r.rejected_with_retry_after} | {_ms(r.rejected_p50_ms)} / {_ms(r.rejected_p99_ms)} | "
            f"{r.other_status} | {r.socket_errors} | {r.late} |"
        )
    lines.append("")
    lines += [f"- {r.faces}: {FACE_TITLES[r.faces]}" for r in rows]
    return "\n".join(lines) + "\n"
