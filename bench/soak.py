"""Soak test: a fixed number of requests at fixed concurrency, valid and invalid images mixed.

    python -m bench.soak [--requests 20000] [--concurrency 32] [--invalid-fraction 0.3] [--seed 20260501]
                         [--warmup 500] [--model models/emotion_cnn.h5] [--json out.json]

Starts the real service (``python -m app``: uvicorn on a free 127.0.0.1 port, through
``bench.load.services.Service``), waits for /ready, sends ``--warmup`` requests, reads the server's RSS
(start), then sends ``--requests`` POSTs to /predict from ``--concurrency`` concurrent clients
(httpx.AsyncClient, one connection each, closed loop) in an order fixed by ``--seed``, sampling the
RSS while they run, and reads the RSS again at the end.

Valid inputs are the first CK+48 crop of each emotion as PNG and as JPEG (quality 75), a real photo,
a 16-bit PNG and an RGBA PNG: each must get 200 with probabilities. Invalid inputs each have the 4xx
status and error code of docs/hardening.md's matrix: a text file named .jpg, a truncated JPEG, a
zero-byte file, a PNG whose header declares 100000 x 100000 pixels, the wrong field name and a JSON
body. PASS needs: no valid request answered with anything but 200 (or lost to a transport error), no
5xx, every invalid request answered with its expected status and code, and RSS growth (end over
start) under ``--max-rss-growth`` percent. Exit status 1 on FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import io
import json
import math
import os
import random
import struct
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bench.load.services import OURS, REPO_ROOT, Service, rss_mib
from bench.load.wrk import percentile

DEFAULT_MODEL = REPO_ROOT / "models" / "emotion_cnn.h5"
CKPLUS_DIR = Path(os.environ.get("CKPLUS_DIR", REPO_ROOT.parent / "shared" / "data" / "CK+48"))
PHOTOS_DIR = Path(os.environ.get("PHOTOS_DIR", CKPLUS_DIR.parent / "photos"))
PHOTO_NAME = "anger_01.jpg"
JPEG_QUALITY = 75
RSS_SAMPLE_S = 0.5
TEXT = b"this is a plain text file, not a picture\n" * 10


# --- the inputs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One kind of request: what it carries and the answer it must get (``code`` None: a prediction)."""

    name: str
    status: int
    code: str | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    content: bytes | None = None
    content_type: str | None = None

    @property
    def valid(self) -> bool:
        return self.code is None


def file_case(
    name: str, data: bytes, filename: str, mime: str, status: int = 200, code: str | None = None
) -> Case:
    """A one-file multipart request (field ``file``)."""
    return Case(name, status, code, files={"file": (filename, data, mime)})


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` gray pixels but holds no pixel data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def sixteen_bit_png(crop: Image.Image) -> bytes:
    values = np.asarray(crop.convert("L"), dtype=np.uint16) * 257  # 0..255 -> 0..65535
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16"), image.mode
    return encode(image, "PNG")


def rgba_png(crop: Image.Image) -> bytes:
    rgba = crop.convert("RGBA")
    alpha = np.linspace(64, 255, rgba.width, dtype=np.uint8)[None, :].repeat(rgba.height, axis=0)
    rgba.putalpha(Image.fromarray(alpha))
    return encode(rgba, "PNG")


def first_crops(ckplus_dir: Path) -> list[Path]:
    """The first CK+48 crop (by name) of each emotion folder."""
    crops = []
    for folder in sorted(p for p in ckplus_dir.iterdir() if p.is_dir()):
        pngs = sorted(folder.glob("*.png"))
        if pngs:
            crops.append(pngs[0])
    if not crops:
        raise SystemExit(f"no CK+48 crops in {ckplus_dir} (set CKPLUS_DIR)")
    return crops


def build_cases(ckplus_dir: Path, photo: Path) -> list[Case]:
    """The valid cases, then the invalid ones (status and code as in docs/hardening.md)."""
    cases: list[Case] = []
    crops = first_crops(ckplus_dir)
    for path in crops:
        emotion = path.parent.name
        data = path.read_bytes()
        cases.append(file_case(f"ck-{emotion}.png", data, path.name, "image/png"))
        jpeg = encode(Image.open(io.BytesIO(data)).convert("L"), "JPEG", quality=JPEG_QUALITY)
        cases.append(file_case(f"ck-{emotion}.jpg (q{JPEG_QUALITY})", jpeg, f"{path.stem}.jpg", "image/jpeg"))
    photo_bytes = photo.read_bytes()
    cases.append(file_case(f"photo {photo.name}", photo_bytes, photo.name, "image/jpeg"))
    crop = Image.open(crops[0])
    cases.append(file_case("16-bit gray PNG", sixteen_bit_png(crop), "gray16.png", "image/png"))
    cases.append(file_case("RGBA PNG", rgba_png(crop), "rgba.png", "image/png"))

    half_photo = photo_bytes[: len(photo_bytes) // 2]
    cases += [
        file_case("text file named .jpg", TEXT, "notes.jpg", "image/jpeg", 415, "unsupported_image_type"),
        file_case("truncated JPEG (first half)", half_photo, "cut.jpg", "image/jpeg",
                  400, "image_decode_failed"),
        file_case("zero-byte file", b"", "empty.jpg", "image/jpeg", 400, "empty_file"),
        file_case("bomb: header declares 100000 x 100000", png_header_only(100_000, 100_000), "bomb.png",
                  "image/png", 413, "image_too_large"),
        Case("wrong field name (image)", 422, "missing_file",
             files={"image": (crops[0].name, crops[0].read_bytes(), "image/png")}),
        Case("JSON body of the wrong shape", 422, "invalid_request",
             content=json.dumps({"file": "not an upload"}).encode(), content_type="application/json"),
    ]  # fmt: skip
    return cases


def build_schedule(cases: Sequence[Case], requests: int, invalid_fraction: float, seed: int) -> list[int]:
    """Indices into ``cases``: exactly ``round(requests * invalid_fraction)`` invalid ones, each kind in
    turn (valid and invalid kinds alike get equal shares, to within one), shuffled by ``seed``."""
    if not 0 <= invalid_fraction <= 1:
        raise ValueError(f"invalid_fraction must be in [0, 1], not {invalid_fraction}")
    valid = [i for i, case in enumerate(cases) if case.valid]
    invalid = [i for i, case in enumerate(cases) if not case.valid]
    n_invalid = round(requests * invalid_fraction)
    if (n_invalid and not invalid) or (requests - n_invalid and not valid):
        raise ValueError("the mix needs both valid and invalid cases for this fraction")
    schedule = [invalid[i % len(invalid)] for i in range(n_invalid)]
    schedule += [valid[i % len(valid)] for i in range(requests - n_invalid)]
    random.Random(seed).shuffle(schedule)
    return schedule


# --- one request and its outcome ----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one request got: ``status`` None on a transport error; ``code`` the error code of a non-200
    answer, or ``malformed_prediction`` for a 200 without probabilities."""

    case: int
    status: int | None
    code: str | None
    latency_ms: float
    transport_error: str | None = None


def error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None if response.status_code != 200 else "malformed_prediction"
    if response.status_code == 200:
        ok = isinstance(body, dict) and isinstance(body.get("probabilities"), dict) and body["probabilities"]
        return None if ok else "malformed_prediction"
    try:
        return str(body["error"]["code"])
    except (KeyError, TypeError):
        return None


async def send(client: httpx.AsyncClient, url: str, index: int, case: Case, request_id: str) -> Outcome:
    headers = {"X-Request-ID": request_id}
    if case.content_type:
        headers["Content-Type"] = case.content_type
    started = time.perf_counter()
    try:
        response = await client.post(url, files=case.files, content=case.content, headers=headers)
    except httpx.HTTPError as exc:
        latency = (time.perf_counter() - started) * 1000
        return Outcome(index, None, None, latency, f"{type(exc).__name__}: {exc}"[:200])
    latency = (time.perf_counter() - started) * 1000
    return Outcome(index, response.status_code, error_code(response), latency)


async def run_schedule(
    base_url: str,
    cases: Sequence[Case],
    schedule: Sequence[int],
    concurrency: int,
    *,
    label: str,
    pid: int | None = None,
    rss_samples: list[float] | None = None,
    progress: bool = False,
) -> tuple[list[Outcome], float]:
    """Send ``schedule`` with ``concurrency`` closed-loop clients; the outcomes (in schedule order) and the
    wall time. With ``pid``, the server's RSS is appended to ``rss_samples`` every ``RSS_SAMPLE_S``."""
    outcomes: list[Outcome | None] = [None] * len(schedule)
    positions = iter(range(len(schedule)))
    done = 0
    step = max(1, len(schedule) // 10)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        for position in positions:  # shared iterator: each position is taken by exactly one worker
            index = schedule[position]
            request_id = f"soak-{label}-{position}"
            outcomes[position] = await send(client, "/predict", index, cases[index], request_id)
            done += 1
            if progress and done % step == 0:
                rss = f", server RSS {rss_mib(pid):.1f} MiB" if pid else ""
                print(f"  {done}/{len(schedule)} sent{rss}", file=sys.stderr, flush=True)

    async def sample_rss(stop: asyncio.Event) -> None:
        assert pid is not None and rss_samples is not None
        while not stop.is_set():
            rss_samples.append(rss_mib(pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RSS_SAMPLE_S)

    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(stop)) if pid and rss_samples is not None else None
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=httpx.Timeout(120)) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    stop.set()
    if sampler is not None:
        await sampler
    assert all(o is not None for o in outcomes)
    return [o for o in outcomes if o is not None], seconds


# --- the figures and the verdict ----------------------------------------------------------------------


def answered_as_expected(case: Case, outcome: Outcome) -> bool:
    return outcome.status == case.status and outcome.code == case.code


@dataclass
class CaseCount:
    name: str
    expected: str  # "200" or "415 unsupported_image_type"
    sent: int = 0
    as_expected: int = 0
    got: dict[str, int] = field(default_factory=dict)  # "status code" -> count, for the unexpected answers


@dataclass
class Summary:
    requests: int
    concurrency: int
    duration_s: float
    requests_per_s: float
    valid: int
    valid_200: int
    valid_errors: int  # not a 200 with probabilities, or a transport error
    invalid: int
    invalid_4xx: int
    invalid_expected: int  # the expected status and code
    invalid_mismatches: int
    server_errors: int  # 5xx, valid and invalid
    transport_errors: int
    p50_ms: float
    p99_ms: float
    rss_start_mib: float
    rss_end_mib: float
    rss_max_mib: float
    rss_growth_pct: float
    max_rss_growth_pct: float
    cases: list[CaseCount]
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures


def summarize(
    cases: Sequence[Case],
    outcomes: Sequence[Outcome],
    *,
    concurrency: int,
    duration_s: float,
    rss_start_mib: float,
    rss_end_mib: float,
    rss_samples: Sequence[float] = (),
    max_rss_growth_pct: float = 5.0,
) -> Summary:
    counts = [CaseCount(case.name, "200" if case.valid else f"{case.status} {case.code}") for case in cases]
    valid = valid_200 = valid_errors = invalid = invalid_4xx = invalid_expected = 0
    for outcome in outcomes:
        case, count = cases[outcome.case], counts[outcome.case]
        count.sent += 1
        ok = answered_as_expected(case, outcome)
        if ok:
            count.as_expected += 1
        else:
            key = (
                f"transport error ({outcome.transport_error})"
                if outcome.status is None
                else f"{outcome.status} {outcome.code}"
            )
            count.got[key] = count.got.get(key, 0) + 1
        if case.valid:
            valid += 1
            valid_200 += outcome.status == 200
            valid_errors += not ok
        else:
            invalid += 1
            invalid_4xx += outcome.status is not None and 400 <= outcome.status < 500
            invalid_expected += ok
    server_errors = sum(o.status is not None and o.status >= 500 for o in outcomes)
    transport_errors = sum(o.status is None for o in outcomes)
    latencies = [o.latency_ms for o in outcomes]
    growth = (rss_end_mib - rss_start_mib) / rss_start_mib * 100 if rss_start_mib > 0 else math.nan
    summary = Summary(
        requests=len(outcomes),
        concurrency=concurrency,
        duration_s=duration_s,
        requests_per_s=len(outcomes) / duration_s if duration_s > 0 else math.nan,
        valid=valid,
        valid_200=valid_200,
        valid_errors=valid_errors,
        invalid=invalid,
        invalid_4xx=invalid_4xx,
        invalid_expected=invalid_expected,
        invalid_mismatches=invalid - invalid_expected,
        server_errors=server_errors,
        transport_errors=transport_errors,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        rss_start_mib=rss_start_mib,
        rss_end_mib=rss_end_mib,
        rss_max_mib=max([rss_start_mib, rss_end_mib, *rss_samples]),
        rss_growth_pct=growth,
        max_rss_growth_pct=max_rss_growth_pct,
        cases=counts,
        failures=[],
    )
    summary.failures = verdict(summary)
    return summary


def verdict(summary: Summary) -> list[str]:
    """Why the soak failed; empty when it passed."""
    failures = []
    if summary.valid_errors:
        failures.append(f"{summary.valid_errors} valid requests not answered 200 with probabilities")
    if summary.server_errors:
        failures.append(f"{summary.server_errors} answers were 5xx")
    if summary.invalid_mismatches:
        failures.append(f"{summary.invalid_mismatches} invalid requests without the expected status and code")
    if not summary.rss_growth_pct < summary.max_rss_growth_pct:  # NaN fails too
        failures.append(f"RSS grew {summary.rss_growth_pct:.1f} % (limit {summary.max_rss_growth_pct:g} %)")
    return failures


def report(summary: Summary) -> str:
    s = summary
    lines = [
        f"requests       {s.requests} at concurrency {s.concurrency}",
        f"duration       {s.duration_s:.1f} s ({s.requests_per_s:.1f} req/s)",
        f"valid          {s.valid} sent, {s.valid_200} answered 200, {s.valid_errors} errors",
        f"invalid        {s.invalid} sent, {s.invalid_4xx} answered 4xx, {s.invalid_expected} with the "
        f"expected status and code, {s.invalid_mismatches} mismatches",
        f"5xx            {s.server_errors}",
        f"transport errs {s.transport_errors}",
        f"latency        p50 {s.p50_ms:.1f} ms, p99 {s.p99_ms:.1f} ms",
        f"server RSS     start {s.rss_start_mib:.1f} MiB, end {s.rss_end_mib:.1f} MiB, max "
        f"{s.rss_max_mib:.1f} MiB, growth {s.rss_growth_pct:+.2f} % (limit {s.max_rss_growth_pct:g} %)",
        "",
        f"{'case':<40} {'expected':<30} {'sent':>6} {'as expected':>12}  other answers",
    ]
    for count in s.cases:
        other = ", ".join(f"{k}: {v}" for k, v in sorted(count.got.items()))
        row = f"{count.name:<40} {count.expected:<30} {count.sent:>6} {count.as_expected:>12}"
        lines.append(f"{row}  {other}".rstrip())
    lines.append("")
    lines.append("PASS" if s.passed else "FAIL: " + "; ".join(s.failures))
    return "\n".join(lines)


# --- the command --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--invalid-fraction", type=float, default=0.3)
    parser.add_argument("--warmup", type=int, default=500, help="requests sent before the RSS at start")
    parser.add_argument("--seed", type=int, default=20260501)
    parser.add_argument("--max-rss-growth", type=float, default=5.0, help="percent, end over start")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--ckplus-dir", type=Path, default=CKPLUS_DIR)
    parser.add_argument("--photo", type=Path, default=PHOTOS_DIR / PHOTO_NAME)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--requests and --concurrency must be at least 1, --warmup at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cases = build_cases(args.ckplus_dir, args.photo)
    warmup = build_schedule(cases, args.warmup, args.invalid_fraction, args.seed + 1)
    schedule = build_schedule(cases, args.requests, args.invalid_fraction, args.seed)
    load_before = os.getloadavg()[0]
    print(
        f"soak: {len(cases)} cases ({sum(c.valid for c in cases)} valid), warm-up {args.warmup}, then "
        f"{args.requests} requests at concurrency {args.concurrency}, invalid fraction "
        f"{args.invalid_fraction:g}, seed {args.seed}; {os.cpu_count()} CPUs, load average {load_before:.2f}",
        file=sys.stderr,
    )
    with Service(OURS, args.model) as service:
        print(f"service ready in {service.started_in_s:.1f} s at {service.base_url} (pid {service.pid})",
              file=sys.stderr)  # fmt: skip
        if warmup:
            asyncio.run(run_schedule(service.base_url, cases, warmup, args.concurrency, label="warmup"))
        rss_start = rss_mib(service.pid)
        samples: list[float] = []
        outcomes, seconds = asyncio.run(
            run_schedule(
                service.base_url, cases, schedule, args.concurrency,
                label="run", pid=service.pid, rss_samples=samples, progress=True,
            )
        )  # fmt: skip
        rss_end = rss_mib(service.pid)
        summary = summarize(
            cases, outcomes, concurrency=args.concurrency, duration_s=seconds, rss_start_mib=rss_start,
            rss_end_mib=rss_end, rss_samples=samples, max_rss_growth_pct=args.max_rss_growth,
        )  # fmt: skip
        if summary.server_errors or summary.transport_errors:
            print(f"service log (tail):\n{service.log_tail()}", file=sys.stderr)
    print(report(summary))
    if args.json:
        figures = {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cpus": os.cpu_count(),
            "load_average_before": round(load_before, 2),
            "model": str(args.model),
            "seed": args.seed,
            "warmup": args.warmup,
            "invalid_fraction": args.invalid_fraction,
            "rss_samples": len(samples),
            **asdict(summary),
            "passed": summary.passed,
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if summary.passed else 1


if __name__ == "__main__":
    sys.exit(main())
