"""The load benchmark's rows and their Markdown: one fragment per run, ready to paste into BENCHMARKS.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.load.services import NAIVE, OURS

FACE_TITLES = {
    "off": "`?faces=off`: the whole image goes to the model (no face detection)",
    "default": "default face detection (`largest`): the face detector on every request, then the model",
}


@dataclass
class Row:
    """One measured run, flattened for the tables and the JSON file."""

    model: str
    faces: str
    server: str
    concurrency: int
    requests: int
    answered: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    not_2xx: int
    socket_errors: int
    rss_mib: float
    server_cpu_ms_per_request: float
    server_cores_busy: float
    client_cpu_us_per_request: float
    client_cores_busy: float
    mean_batch: float | None
    load_average_before: float
    settings: dict[str, str]
    images_per_request: int = 1  # > 1: /predict/batch with that many images in each request

    @property
    def predictions_per_s(self) -> float:
        return self.requests_per_s * self.images_per_request


def _ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def results_table(rows: Sequence[Row]) -> str:
    """One line per row; a predictions/s column when requests carried several images."""
    several = any(r.images_per_request > 1 for r in rows)
    lines = [
        "| server | concurrency | requests | req/s | "
        + ("predictions/s | " if several else "")
        + "p50 ms | p95 ms | p99 ms | errors | RSS MiB | server CPU ms/req | cores busy | mean batch |",
        "|---|---:|---:|---:|" + ("---:|" if several else "") + "---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        batch = "" if r.mean_batch is None else f"{r.mean_batch:.1f}"
        predictions = f"{r.predictions_per_s:,.0f} | " if several else ""
        lines.append(
            f"| {r.server} | {r.concurrency} | {r.answered} | {r.requests_per_s:,.0f} | {predictions}"
            f"{_ms(r.p50_ms)} "
            f"| {_ms(r.p95_ms)} | {_ms(r.p99_ms)} | {r.errors} | {r.rss_mib:.0f} "
            f"| {r.server_cpu_ms_per_request:.2f} | {r.server_cores_busy:.2f} | {batch} |"
        )
    return "\n".join(lines)


def ratio_table(rows: Sequence[Row]) -> str:
    """ours/naive requests per second at each concurrency both servers ran; "" when none."""
    ours = {r.concurrency: r for r in rows if r.server == OURS}
    naive = {r.concurrency: r for r in rows if r.server == NAIVE}
    levels = [c for c in ours if c in naive and naive[c].requests_per_s > 0]
    if not levels:
        return ""
    return "\n".join(
        [
            "| concurrency | " + " | ".join(str(c) for c in levels) + " |",
            "|---|" + "---:|" * len(levels),
            "| ours/naive req/s | "
            + " | ".join(f"{ours[c].requests_per_s / naive[c].requests_per_s:.1f}x" for c in levels)
            + " |",
        ]
    )


def tuning_table(rows: Sequence[Row]) -> str:
    lines = [
        "| max size | max wait ms | concurrency | req/s | p50 ms | p95 ms | p99 ms | mean batch | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.settings['EMOTION_BATCH_MAX_SIZE']} | {r.settings['EMOTION_BATCH_MAX_WAIT_MS']} "
            f"| {r.concurrency} | {r.requests_per_s:,.0f} | {_ms(r.p50_ms)} | {_ms(r.p95_ms)} "
            f"| {_ms(r.p99_ms)} | {r.mean_batch} | {r.errors} |"
        )
    return "\n".join(lines)


def _conditions(report: dict[str, Any]) -> list[str]:
    machine = report["machine"]
    images = report.get("images_per_request", 1)
    per_request = f"; each request is a `/predict/batch` of {images} copies of it" if images > 1 else ""
    return [
        f"Measured {machine['date']} on {machine['cpus']} x {machine['cpu']}, Python {machine['python']}, "
        f"commit {machine['commit']}; load average (1 min) {machine['load_average']} at the start, "
        f"{report['load_average_after']} at the end.",
        f"Command: `{report['command']}`. Model `{report['model']}`; image `{report['image_name']}` "
        f"({report['image_bytes']:,} bytes){per_request}; {report['requests']} measured requests per "
        f"run after {report['warmup']} warm-up requests.",
    ]


def markdown(report: dict[str, Any], rows: Sequence[Row], *, tune: bool = False) -> str:
    """Everything one run measured, as Markdown: conditions, ceiling, then per face mode the tables."""
    parts = ["\n".join(_conditions(report))]
    if tune:
        parts.append(tuning_table(rows))
        return "\n\n".join(parts) + "\n"
    ceiling = report.get("ceiling")
    if ceiling:
        parts.append(
            "Ceiling, the raw model without HTTP (the service's compiled function, in the benchmark's "
            "own process): "
            f"batch 32: **{ceiling['batch32_images_per_s']:,.0f} images/s**; one image: "
            f"{ceiling['median_ms']:.2f} ms median."
        )
    for faces in dict.fromkeys(r.faces for r in rows):
        selected = [r for r in rows if r.faces == faces]
        parts.append(f"**{FACE_TITLES[faces]}**")
        parts.append(results_table(selected))
        ratios = ratio_table(selected)
        if ratios:
            parts.append(ratios)
        if ceiling:
            rate = ceiling["batch32_images_per_s"]
            ours = [r for r in selected if r.server == OURS]
            best = max(ours, key=lambda r: r.predictions_per_s, default=None)
            if best is not None and rate > 0:
                parts.append(
                    f"Ours at its best here (concurrency {best.concurrency}, "
                    f"{best.predictions_per_s:,.0f} predictions/s) is "
                    f"{100 * best.predictions_per_s / rate:.0f}% of the raw batch-32 model throughput."
                )
    busiest = max(rows, key=lambda r: r.client_cores_busy, default=None)
    if busiest is not None:
        parts.append(
            f"The load generator (wrk) itself used at most {busiest.client_cores_busy:.2f} cores "
            f"({busiest.server} at concurrency {busiest.concurrency}, "
            f"{busiest.client_cpu_us_per_request:.0f} µs of CPU per request) on the same machine."
        )
    return "\n\n".join(parts) + "\n"
