"""Driving a server with ``wrk`` for a fixed number of requests, and reading back every latency.

``wrk`` (C, epoll; Debian package ``wrk``) runs for a duration, not a request count, and its latency
histogram is "corrected" for coordinated omission by adding synthetic samples, which inflates the
tail of a closed-loop test. ``fixed_count.lua`` turns it into a fixed-count closed-loop generator
with exact latencies: one connection per wrk thread, each thread sends its share of the requests,
times each one with the monotonic clock, and stops; the script then writes every latency as JSON.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("fixed_count.lua")


@dataclass(frozen=True)
class Upload:
    """A ready-made ``multipart/form-data`` body: one ``file`` field (``/predict``), or ``copies``
    ``file`` fields holding the same image (``/predict/batch``)."""

    body: bytes
    content_type: str
    files: int = 1

    @classmethod
    def of(cls, data: bytes, filename: str, file_type: str, copies: int = 1) -> Upload:
        boundary = f"bench{uuid.uuid4().hex}"
        part = (
            (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                f"Content-Type: {file_type}\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
        return cls(
            part * copies + f"--{boundary}--\r\n".encode(),
            f"multipart/form-data; boundary={boundary}",
            copies,
        )


@dataclass(frozen=True)
class LoadResult:
    """One fixed-count run at one concurrency."""

    concurrency: int
    requests: int  # asked for
    answered: int  # responses received (any status)
    not_2xx: int
    socket_errors: int  # connect, read, write errors and timeouts as wrk counts them
    seconds: float  # first request sent to last response received
    latencies_ms: tuple[float, ...]
    client_cpu_s: float  # user + system CPU of the wrk process
    statuses: tuple[int, ...] = ()  # each answer's status, in the order of latencies_ms
    retry_after_503: int = 0  # 503 answers that carried Retry-After
    late: int = 0  # paced runs: sends that came after their slot (the answer before was slower)

    @property
    def errors(self) -> int:
        return self.not_2xx + self.socket_errors + (self.requests - self.answered)

    @property
    def requests_per_s(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, p: float) -> float:
        return percentile(self.latencies_ms, p)

    def latencies_of(self, status: int) -> list[float]:
        """The latencies of the answers with ``status``."""
        return [ms for ms, code in zip(self.latencies_ms, self.statuses, strict=True) if code == status]


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``p`` % of the values at or below it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def parse_result(raw: dict, *, concurrency: int, requests: int, client_cpu_s: float) -> LoadResult:
    """The JSON ``fixed_count.lua`` writes, as a :class:`LoadResult`."""
    threads = raw["threads"]
    latencies = tuple(us / 1000 for thread in threads for us in thread["latencies_us"])
    statuses = tuple(int(code) for thread in threads for code in thread.get("statuses", []))
    answered = sum(thread["answered"] for thread in threads)
    started = [t["first_sent"] for t in threads if t["answered"] > 0]
    ended = [
        t["last_answered"] if t["last_answered"] >= 0 else math.nan for t in threads if t["answered"] > 0
    ]
    seconds = max(ended) - min(started) if started and not any(map(math.isnan, ended)) else math.nan
    errors = raw["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    return LoadResult(
        concurrency=concurrency,
        requests=requests,
        answered=answered,
        not_2xx=sum(thread["not_2xx"] for thread in threads),
        socket_errors=socket_errors,
        seconds=seconds,
        latencies_ms=latencies,
        client_cpu_s=client_cpu_s,
        statuses=statuses,
        retry_after_503=sum(thread.get("retry_after_503", 0) for thread in threads),
        late=sum(thread.get("late", 0) for thread in threads),
    )


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu)")
    return path


def run(
    url: str,
    upload: Upload,
    *,
    concurrency: int,
    requests: int,
    max_seconds: float = 1800,
    rate: float | None = None,
) -> LoadResult:
    """POST ``upload`` to ``url`` ``requests`` times over ``concurrency`` keep-alive connections.

    Closed loop (each connection sends when its last answer came), or with ``rate`` paced: the
    connections together offer ``rate`` requests/s on a fixed schedule, whatever the answers take
    (fixed_count.lua). ``max_seconds`` bounds the run (a server that stops answering); the result then
    counts the missing responses as errors.
    """
    if requests < concurrency:
        raise ValueError(f"{requests} requests cannot keep {concurrency} connections busy")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        body_path, out_path = Path(tmp, "body"), Path(tmp, "result.json")
        body_path.write_bytes(upload.body)
        env = {
            **os.environ,
            "BENCH_BODY": str(body_path),
            "BENCH_CONTENT_TYPE": upload.content_type,
            "BENCH_REQUESTS": str(requests),
            "BENCH_THREADS": str(concurrency),
            "BENCH_OUT": str(out_path),
        }
        if rate is not None:
            env["BENCH_INTERVAL_MS"] = f"{1000 * concurrency / rate:.3f}"  # each connection's interval
        command = [
            wrk_path(),
            f"--threads={concurrency}",
            f"--connections={concurrency}",
            f"--duration={math.ceil(max_seconds)}s",
            "--timeout=120s",
            f"--script={LUA_SCRIPT}",
            url,
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # wrk exits 1 after its SIGINT ends the run early; the result file is what counts.
        if not out_path.is_file():
            raise RuntimeError(
                f"wrk wrote no result (exit {completed.returncode}):\n{completed.stderr[-2000:]}"
            )
        raw = json.loads(out_path.read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return parse_result(raw, concurrency=concurrency, requests=requests, client_cpu_s=cpu)
