"""HTTP throughput of the service against the naive baseline, at several concurrency levels.

    python -m bench.load [--model models/emotion_cnn.h5] [--requests 2000] [--concurrency 1,8,32,64]
                         [--image PATH] [--faces off,default] [--markdown out.md] [--json out.json]
    python -m bench.load --tune [--sizes 8,16,32,64] [--waits 0,1,2,5] [--concurrency 32]
    python -m bench.load --images-per-request 16 --faces off --concurrency 8,16
    python -m bench.load --overload 5 [--overload-seconds 20] [--overload-connections 256] [--faces default]
    python -m bench.load --photo --faces default --servers ours --concurrency 32

``--photo`` sends a 640x480 JPEG with one face (``../shared/data/photos/anger_01.jpg`` scaled to 480
pixels high on a gray 640x480 canvas, quality 90), made in memory: a real photo's decoding and face
search rather than a 48x48 crop's.

For each face mode (``off``: ``?faces=off``, the whole image goes to the model; ``default``: the
service's default face detection, which costs CPU per request) and each server (``ours``:
``python -m app``; ``naive``: ``bench/naive_service.py``, FastAPI + ``model.predict`` per request),
it starts the server as a real process (uvicorn, 127.0.0.1, free port), waits for /ready, checks one
answer, then at each concurrency sends a warm-up run and a measured run of ``--requests`` POSTs with
wrk (closed loop, one keep-alive connection per concurrent client). Printed per run: requests/s,
p50/p95/p99 latency, errors (non-2xx, socket errors, missing answers), the server's RSS after the
run and its CPU time per request; then ours/naive per concurrency, and the model's raw batch-32
throughput through the service's compiled function, without HTTP, as the ceiling. The run ends with
one Markdown fragment (conditions, ceiling, tables, ratios) for BENCHMARKS.md; ``--markdown FILE``
also writes it to FILE.

``--tune`` runs only our service, once per (``EMOTION_BATCH_MAX_SIZE``, ``EMOTION_BATCH_MAX_WAIT_MS``).
``--overload F`` runs only our service: per face mode, its capacity (closed loop at the first
``--concurrency`` level), then F times that rate offered open-loop on a fixed schedule
(``bench/load/overload.py``): served and refused (503, Retry-After) counts and latencies.
``--images-per-request N`` (N > 1) posts N copies of the image to ``/predict/batch`` in each request,
our service only (the naive baseline has no batch endpoint), and adds predictions/s to the tables.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import mimetypes
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.load import wrk
from bench.load.overload import OverloadRow, overload_markdown, overload_row
from bench.load.report import FACE_TITLES, Row, markdown
from bench.load.services import NAIVE, OURS, REPO_ROOT, Service, cpu_seconds, rss_mib

DEFAULT_MODEL = REPO_ROOT / "models" / "emotion_cnn.h5"
CKPLUS_DIR = Path(os.environ.get("CKPLUS_DIR", REPO_ROOT.parent / "shared" / "data" / "CK+48"))
PHOTOS_DIR = Path(os.environ.get("PHOTOS_DIR", CKPLUS_DIR.parent / "photos"))
PHOTO_SIZE = (640, 480)
FACE_QUERIES = {"off": "?faces=off", "default": ""}


def request_path(faces: str, upload: wrk.Upload) -> str:
    """``/predict`` for one image, ``/predict/batch`` for several, with the face mode's query."""
    return ("/predict/batch" if upload.files > 1 else "/predict") + FACE_QUERIES[faces]


def default_image() -> Path:
    happy = sorted((CKPLUS_DIR / "happy").glob("*.png"))
    if not happy:
        raise SystemExit(f"no CK+48 images in {CKPLUS_DIR / 'happy'}: pass --image or set CKPLUS_DIR")
    return happy[0]


def photo_jpeg(source: Path, size: tuple[int, int] = PHOTO_SIZE) -> bytes:
    """``source`` (one face) scaled to the canvas height and centred on a gray canvas, as JPEG."""
    from PIL import Image

    width, height = size
    with Image.open(source) as photo:
        face = photo.convert("RGB")
    face = face.resize((round(face.width * height / face.height), height), Image.LANCZOS)
    canvas = Image.new("RGB", size, (128, 128, 128))
    canvas.paste(face, ((width - face.width) // 2, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def float_list(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def machine_description() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit,
        "load_average": round(os.getloadavg()[0], 2),
    }


def model_ceiling(model_path: Path, repeats: int) -> dict[str, float]:
    """Raw model speed without HTTP: ``bench.model_latency.measure`` (the service's compiled function)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from bench.model_latency import measure

    model = keras.models.load_model(model_path, compile=False)
    figures = measure(model, repeats)
    del model
    keras.backend.clear_session()
    return figures


def measure_level(
    service: Service, url: str, upload: wrk.Upload, *, concurrency: int, requests: int, warmup: int
) -> tuple[wrk.LoadResult, dict[str, float]]:
    """A warm-up run (discarded), then the measured run with the server's counters around it."""
    wrk.run(url, upload, concurrency=concurrency, requests=max(warmup, 2 * concurrency))
    load = os.getloadavg()[0]
    cpu_before, batching_before = cpu_seconds(service.pid), service.batching()
    result = wrk.run(url, upload, concurrency=concurrency, requests=requests)
    cpu_used, batching_after = cpu_seconds(service.pid) - cpu_before, service.batching()
    extra = {"cpu_s": cpu_used, "rss_mib": rss_mib(service.pid), "load": load}
    if batching_before is not None and batching_after is not None:
        batches = batching_after["batches"] - batching_before["batches"]
        extra["mean_batch"] = (batching_after["items"] - batching_before["items"]) / batches if batches else 0
    return result, extra


def to_row(
    model: str, faces: str, service: Service, result: wrk.LoadResult, extra: dict[str, float], images: int = 1
) -> Row:
    answered = max(result.answered, 1)
    return Row(
        model=model,
        faces=faces,
        server=service.kind,
        concurrency=result.concurrency,
        requests=result.requests,
        answered=result.answered,
        requests_per_s=round(result.requests_per_s, 1),
        p50_ms=round(result.percentile_ms(50), 2),
        p95_ms=round(result.percentile_ms(95), 2),
        p99_ms=round(result.percentile_ms(99), 2),
        errors=result.errors,
        not_2xx=result.not_2xx,
        socket_errors=result.socket_errors,
        rss_mib=round(extra["rss_mib"], 0),
        server_cpu_ms_per_request=round(1000 * extra["cpu_s"] / answered, 2),
        server_cores_busy=round(extra["cpu_s"] / result.seconds, 2) if result.seconds > 0 else 0.0,
        client_cpu_us_per_request=round(1e6 * result.client_cpu_s / answered, 0),
        client_cores_busy=round(result.client_cpu_s / result.seconds, 3) if result.seconds > 0 else 0.0,
        mean_batch=round(extra["mean_batch"], 1) if "mean_batch" in extra else None,
        load_average_before=round(extra["load"], 2),
        settings=dict(service.env),
        images_per_request=images,
    )


def check_answer(service: Service, path: str, upload: wrk.Upload) -> str:
    status, body = service.post(path, upload.body, upload.content_type)
    if status == 200 and isinstance(body, dict) and upload.files > 1:
        results = body.get("results") or []
        if len(results) == upload.files and all(item.get("ok") for item in results):
            first = results[0]["result"]
            return f"{len(results)} results, the first {first['emotion']} {first['confidence']:.3f}"
    elif status == 200 and isinstance(body, dict) and "probabilities" in body:
        return f"{body['emotion']} {body['confidence']:.3f}, box {body.get('box')}"
    raise RuntimeError(f"{service.kind} {path} answered {status}: {str(body)[:500]}")


def run_server(
    kind: str,
    model: Path,
    faces: str,
    upload: wrk.Upload,
    levels: Iterable[int],
    *,
    requests: int,
    warmup: int,
    env: dict[str, str] | None = None,
) -> list[Row]:
    path = request_path(faces, upload)
    rows = []
    with Service(kind, model, env=env or {}) as service:
        answer = check_answer(service, path, upload)
        print(
            f"  {kind}: ready in {service.started_in_s:.1f} s, RSS {rss_mib(service.pid):.0f} MiB; "
            f"{path} -> {answer}",
            flush=True,
        )
        for concurrency in levels:
            result, extra = measure_level(
                service,
                service.base_url + path,
                upload,
                concurrency=concurrency,
                requests=requests,
                warmup=warmup,
            )
            row = to_row(model.stem, faces, service, result, extra, upload.files)
            rows.append(row)
            batch = f", mean batch {row.mean_batch}" if row.mean_batch is not None else ""
            print(
                f"    c={concurrency:<3} {row.requests_per_s:8.1f} req/s  p50 {row.p50_ms:7.2f}  "
                f"p95 {row.p95_ms:7.2f}  p99 {row.p99_ms:7.2f} ms  errors {row.errors}  "
                f"RSS {row.rss_mib:.0f} MiB  {row.server_cores_busy:.2f} cores{batch}",
                flush=True,
            )
    return rows


def run_comparison(args: argparse.Namespace, upload: wrk.Upload) -> list[Row]:
    rows: list[Row] = []
    for faces in args.faces:
        print(f"\n## {args.model.stem}, {FACE_TITLES[faces]}", flush=True)
        for kind in args.servers:
            rows += run_server(
                kind,
                args.model,
                faces,
                upload,
                args.concurrency,
                requests=args.requests,
                warmup=args.warmup,
                env=dict(args.env),
            )
    return rows


def run_tuning(args: argparse.Namespace, upload: wrk.Upload) -> list[Row]:
    rows: list[Row] = []
    print(f"\n## tuning the batcher on {args.model.stem}, faces=off", flush=True)
    for size in args.sizes:
        for wait in args.waits:
            env = {
                **dict(args.env),
                "EMOTION_BATCH_MAX_SIZE": str(size),
                "EMOTION_BATCH_MAX_WAIT_MS": str(wait),
            }
            print(f" max size {size}, max wait {wait} ms", flush=True)
            rows += run_server(
                OURS,
                args.model,
                "off",
                upload,
                args.concurrency,
                requests=args.requests,
                warmup=args.warmup,
                env=env,
            )
    return rows


def run_overload(args: argparse.Namespace, upload: wrk.Upload) -> list[OverloadRow]:
    rows = []
    for faces in args.faces:
        path = request_path(faces, upload)
        print(f"\n## overload x{args.overload:g}, {FACE_TITLES[faces]}", flush=True)
        with Service(OURS, args.model, env=dict(args.env)) as service:
            check_answer(service, path, upload)
            url = service.base_url + path
            capacity, _ = measure_level(
                service,
                url,
                upload,
                concurrency=args.concurrency[0],
                requests=args.requests,
                warmup=args.warmup,
            )
            rate = args.overload * capacity.requests_per_s
            print(f"  capacity {capacity.requests_per_s:.1f} req/s at c={capacity.concurrency}; "
                  f"offering {rate:.1f} req/s", flush=True)  # fmt: skip
            load = os.getloadavg()[0]
            requests = max(args.overload_connections, round(rate * args.overload_seconds))
            result = wrk.run(
                url,
                upload,
                concurrency=args.overload_connections,
                requests=requests,
                rate=rate,
                max_seconds=600,
            )
            row = overload_row(
                faces,
                capacity,
                args.overload,
                result,
                load_average=round(load, 2),
                settings=dict(service.env),
            )
            rows.append(row)
            print(
                f"  offered {row.offered_rps} req/s: served {row.served} ({row.served_rps} req/s, p50 "
                f"{row.served_p50_ms} p99 {row.served_p99_ms} ms), 503 {row.rejected_503} "
                f"({row.rejected_with_retry_after} with Retry-After, p99 {row.rejected_p99_ms} ms), "
                f"other {row.other_status}, socket errors {row.socket_errors}, late sends {row.late}",
                flush=True,
            )
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL, help="Keras .h5 with its .json beside it"
    )
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per run (default 2000)")
    parser.add_argument(
        "--concurrency",
        type=int_list,
        default=None,
        help="comma-separated levels (default 1,8,32,64; 32 with --tune)",
    )
    parser.add_argument("--image", type=Path, default=None, help="default: the first CK+48 'happy' crop")
    parser.add_argument(
        "--photo", action="store_true", help="send a 640x480 JPEG with one face instead (see above)"
    )
    parser.add_argument(
        "--faces", default="off,default", help="face modes, comma-separated: off, default (default: both)"
    )
    parser.add_argument(
        "--servers", default=None, help="comma-separated: ours, naive (default: both; ours with batches)"
    )
    parser.add_argument(
        "--images-per-request",
        type=int,
        default=1,
        help="N > 1: N copies of the image per request, to /predict/batch (our service only)",
    )
    parser.add_argument(
        "--warmup", type=int, default=200, help="warm-up requests before each run (default 200)"
    )
    parser.add_argument("--ceiling-repeats", type=int, default=200, help="0 skips the raw model measurement")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        type=lambda text: tuple(text.split("=", 1)),
        metavar="KEY=VALUE",
        help="extra environment for our service, e.g. EMOTION_BATCH_MAX_SIZE=16 (repeatable)",
    )
    parser.add_argument("--tune", action="store_true", help="sweep the batcher settings on our service only")
    parser.add_argument(
        "--overload", type=float, default=None, metavar="F", help="offer F x the capacity (our service only)"
    )
    parser.add_argument("--overload-seconds", type=float, default=20.0, help="--overload: run length (20)")
    parser.add_argument(
        "--overload-connections", type=int, default=256, help="--overload: paced connections (default 256)"
    )
    parser.add_argument(
        "--sizes", type=int_list, default=[8, 16, 32, 64], help="--tune: EMOTION_BATCH_MAX_SIZE"
    )
    parser.add_argument(
        "--waits", type=float_list, default=[0, 1, 2, 5], help="--tune: EMOTION_BATCH_MAX_WAIT_MS"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="also write the Markdown tables (conditions, ceiling, tables, ratios) to this file",
    )
    args = parser.parse_args(argv)
    args.concurrency = args.concurrency or ([32] if args.tune or args.overload else [1, 8, 32, 64])
    args.faces = [f.strip() for f in args.faces.split(",") if f.strip()]
    batches = args.images_per_request > 1
    servers = args.servers or (OURS if batches else f"{OURS},{NAIVE}")
    args.servers = [s.strip() for s in servers.split(",") if s.strip()]
    unknown = set(args.faces) - set(FACE_QUERIES) | set(args.servers) - {OURS, NAIVE}
    if unknown:
        parser.error(f"unknown face mode or server: {', '.join(sorted(unknown))}")
    if args.images_per_request < 1:
        parser.error("--images-per-request must be at least 1")
    if batches and (NAIVE in args.servers or args.tune):
        parser.error(
            "--images-per-request > 1 runs our service only: the naive baseline has no batch endpoint"
        )
    if not args.model.is_file():
        parser.error(f"{args.model} does not exist")
    if args.requests < max(args.concurrency):
        parser.error("--requests must be at least the highest concurrency")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk.wrk_path()  # fail early when wrk is missing
    if args.photo:
        source = args.image or PHOTOS_DIR / "anger_01.jpg"
        data = photo_jpeg(source)
        image = Path(f"{source.stem}_{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}.jpg")
    else:
        image = args.image or default_image()
        data = image.read_bytes()
    file_type = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
    upload = wrk.Upload.of(data, image.name, file_type, copies=args.images_per_request)
    machine = machine_description()
    command = shlex.join(["python", "-m", "bench.load", *(sys.argv[1:] if argv is None else argv)])
    print(
        f"{machine['date']}; {machine['cpus']} x {machine['cpu']}; Python {machine['python']}; "
        f"commit {machine['commit']}; load average {machine['load_average']}"
    )
    print(
        f"model {args.model}; image {image} ({len(data)} bytes); {args.requests} requests "
        f"per run after {args.warmup} warm-up; concurrency {args.concurrency}",
        flush=True,
    )
    report: dict[str, Any] = {
        "command": command,
        "machine": machine,
        "model": str(args.model),
        "image": str(image),
        "image_name": image.name,
        "image_bytes": len(data),
        "images_per_request": args.images_per_request,
        "requests": args.requests,
        "warmup": args.warmup,
    }
    if args.overload is not None:
        overload_rows = run_overload(args, upload)
        report["overload"] = [asdict(r) for r in overload_rows]
        fragment = overload_markdown(report, overload_rows)
        print("\n" + fragment)
        if args.markdown:
            args.markdown.write_text(fragment)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        return 0
    if args.ceiling_repeats > 0 and not args.tune:
        ceiling = model_ceiling(args.model, args.ceiling_repeats)
        report["ceiling"] = ceiling
        print(
            f"raw model (compiled function, no HTTP): batch 32 {ceiling['batch32_images_per_s']:,.0f} "
            f"images/s; one image {ceiling['median_ms']:.2f} ms median",
            flush=True,
        )
    rows = run_tuning(args, upload) if args.tune else run_comparison(args, upload)
    report["rows"] = [asdict(r) for r in rows]
    report["load_average_after"] = round(os.getloadavg()[0], 2)
    fragment = markdown(report, rows, tune=args.tune)
    print("\n" + fragment)
    if args.markdown:
        args.markdown.write_text(fragment)
        print(f"Markdown written to {args.markdown}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
