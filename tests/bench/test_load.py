"""The load benchmark's own machinery: wrk driven for an exact request count, and result parsing."""

from __future__ import annotations

import json
import math
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import anyio
import pytest
from starlette.requests import Request

from bench.load import wrk
from tests.conftest import require


def require_wrk() -> None:
    """wrk is a system package: skipped without it on a developer's machine, a failure in CI."""
    require(shutil.which("wrk") is not None, "wrk is not installed (apt-get install -y wrk)")


def test_percentile_is_nearest_rank() -> None:
    values = list(range(1, 101))  # 1..100
    assert wrk.percentile(values, 50) == 50
    assert wrk.percentile(values, 95) == 95
    assert wrk.percentile(values, 99) == 99
    assert wrk.percentile(values, 100) == 100
    assert wrk.percentile([7.0], 99) == 7.0
    assert wrk.percentile([3, 1, 2], 50) == 2
    assert math.isnan(wrk.percentile([], 50))


def raw_result(*threads: dict, **errors: int) -> dict:
    counts = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0, **errors}
    return {"wrk_requests": sum(t["answered"] for t in threads), "errors": counts, "threads": list(threads)}


def thread(latencies_us: list[float], first: float, last: float, not_2xx: int = 0) -> dict:
    return {
        "quota": len(latencies_us),
        "answered": len(latencies_us),
        "not_2xx": not_2xx,
        "first_sent": first,
        "last_answered": last,
        "latencies_us": latencies_us,
    }


def test_parse_result_spans_the_threads_and_counts_errors() -> None:
    raw = raw_result(
        thread([1000.0, 3000.0], first=10.0, last=10.5),
        thread([2000.0, 4000.0], first=10.1, last=11.0, not_2xx=1),
        read=1,
    )
    result = wrk.parse_result(raw, concurrency=2, requests=4, client_cpu_s=0.01)
    assert result.answered == 4
    assert result.seconds == pytest.approx(1.0)
    assert result.requests_per_s == pytest.approx(4.0)
    assert result.latencies_ms == (1.0, 3.0, 2.0, 4.0)
    assert result.percentile_ms(50) == 2.0
    assert result.not_2xx == 1 and result.socket_errors == 1
    assert result.errors == 2


def test_unanswered_requests_are_errors() -> None:
    unfinished = {**thread([1000.0], first=1.0, last=-1), "quota": 3}
    result = wrk.parse_result(raw_result(unfinished), concurrency=1, requests=3, client_cpu_s=0.0)
    assert result.answered == 1
    assert result.errors == 2
    assert math.isnan(result.seconds)


def parsed_form(upload: wrk.Upload) -> list[tuple[str, str | None, bytes]]:
    """The upload as Starlette (the service's framework) parses it: (field, filename, bytes) per part."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": upload.body, "more_body": False}

    async def read() -> list[tuple[str, str | None, bytes]]:
        headers = [(b"content-type", upload.content_type.encode())]
        async with Request({"type": "http", "method": "POST", "headers": headers}, receive).form() as form:
            return [(name, part.filename, await part.read()) for name, part in form.multi_items()]

    return anyio.run(read)


def test_upload_parses_as_one_file_or_as_copies_of_it() -> None:
    assert parsed_form(wrk.Upload.of(b"\x89PNG-bytes", "face.png", "image/png")) == [
        ("file", "face.png", b"\x89PNG-bytes")
    ]
    batch = wrk.Upload.of(b"\x89PNG-bytes", "face.png", "image/png", copies=3)
    assert batch.files == 3
    assert parsed_form(batch) == [("file", "face.png", b"\x89PNG-bytes")] * 3


def test_batches_go_to_the_batch_endpoint_of_our_service_only() -> None:
    from bench.load.__main__ import parse_args, request_path

    batch = wrk.Upload.of(b"x", "face.png", "image/png", copies=16)
    single = wrk.Upload.of(b"x", "face.png", "image/png")
    assert request_path("off", batch) == "/predict/batch?faces=off"
    assert request_path("default", single) == "/predict"
    assert parse_args(["--images-per-request", "16"]).servers == ["ours"]
    assert parse_args([]).servers == ["ours", "naive"]
    for argv in (["--servers", "ours,naive"], ["--tune"]):
        with pytest.raises(SystemExit):
            parse_args(["--images-per-request", "16", *argv])


def test_upload_is_one_multipart_file_field() -> None:
    upload = wrk.Upload.of(b"\x89PNG-bytes", "face.png", "image/png")
    boundary = upload.content_type.split("boundary=", 1)[1]
    assert upload.content_type.startswith("multipart/form-data; boundary=")
    assert upload.body.startswith(f"--{boundary}\r\n".encode())
    assert b'name="file"; filename="face.png"' in upload.body
    assert upload.body.endswith(f"\r\n--{boundary}--\r\n".encode())


class _CountingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    lock = threading.Lock()
    bodies: ClassVar[list[bytes]] = []
    fail_every: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            self.bodies.append(body)
            failing = self.fail_every and len(self.bodies) % self.fail_every == 0
        answer = b'{"ok": true}'
        self.send_response(503 if failing else 200)
        if failing:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def counting_server() -> Iterator[tuple[str, type[_CountingHandler]]]:
    require_wrk()
    handler = type("Handler", (_CountingHandler,), {"bodies": [], "fail_every": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    worker = threading.Thread(target=server.serve_forever, daemon=True)
    worker.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/predict", handler
    finally:
        server.shutdown()
        server.server_close()


def test_wrk_sends_exactly_the_requested_count(counting_server) -> None:
    url, handler = counting_server
    upload = wrk.Upload.of(b"image-bytes", "face.png", "image/png")
    result = wrk.run(url, upload, concurrency=4, requests=103, max_seconds=60)
    assert len(handler.bodies) == 103  # no extra request in flight when the run stops
    assert all(body == upload.body for body in handler.bodies)
    assert result.answered == 103 and len(result.latencies_ms) == 103
    assert result.errors == 0
    assert result.seconds > 0 and result.requests_per_s > 0
    assert all(latency > 0 for latency in result.latencies_ms)


def test_wrk_counts_non_2xx_answers(counting_server) -> None:
    url, handler = counting_server
    handler.fail_every = 5
    result = wrk.run(url, wrk.Upload.of(b"x", "face.png", "image/png"), concurrency=2, requests=50)
    assert result.answered == 50
    assert result.not_2xx == 10
    assert result.errors == 10
    assert sorted(result.statuses) == [200] * 40 + [503] * 10
    assert result.retry_after_503 == 10
    assert len(result.latencies_of(503)) == 10 and len(result.latencies_of(200)) == 40


def test_a_paced_run_keeps_to_its_schedule(counting_server) -> None:
    """20 requests at 40 requests/s over 4 connections: one every 100 ms on each, so the run cannot
    take less than the schedule's ~0.5 s however fast the server answers (a closed loop would)."""
    url, handler = counting_server
    result = wrk.run(url, wrk.Upload.of(b"x", "face.png", "image/png"), concurrency=4, requests=20, rate=40)
    assert len(handler.bodies) == 20 and result.answered == 20 and result.errors == 0
    assert result.seconds >= 0.4  # first send to last answer spans the 5 slots of each connection
    assert result.statuses == (200,) * 20


def test_parse_result_reads_statuses_retry_after_and_late_sends() -> None:
    one = thread([1000.0, 2000.0], first=1.0, last=2.0, not_2xx=1)
    one |= {"statuses": [200, 503], "retry_after_503": 1, "late": 2}
    two = thread([5000.0], first=1.0, last=2.0) | {"statuses": [200], "retry_after_503": 0, "late": 1}
    result = wrk.parse_result(raw_result(one, two), concurrency=2, requests=3, client_cpu_s=0.0)
    assert result.statuses == (200, 503, 200)
    assert (result.retry_after_503, result.late) == (1, 3)
    assert result.latencies_of(200) == [1.0, 5.0] and result.latencies_of(503) == [2.0]


@pytest.mark.slow
def test_the_documented_command_runs_end_to_end(tmp_path, ckplus_dir) -> None:
    """Both real services, a tiny run: every request answered, ratios and Markdown written."""
    require_wrk()
    from bench.load.__main__ import main

    out_md, out_json = tmp_path / "load.md", tmp_path / "load.json"
    argv = ["--requests", "6", "--concurrency", "1,2", "--warmup", "2", "--faces", "off"]
    argv += ["--ceiling-repeats", "1", "--markdown", str(out_md), "--json", str(out_json)]
    assert main(argv) == 0
    rows = json.loads(out_json.read_text())["rows"]
    expected = [("ours", 1), ("ours", 2), ("naive", 1), ("naive", 2)]
    assert [(r["server"], r["concurrency"]) for r in rows] == expected
    assert all(r["answered"] == 6 and r["errors"] == 0 and r["rss_mib"] > 0 for r in rows)
    text = out_md.read_text()
    assert "| ours/naive req/s |" in text and "batch 32: **" in text


@pytest.mark.slow
def test_the_batch_mode_runs_end_to_end(tmp_path, ckplus_dir) -> None:
    """Our service only, each request a /predict/batch of 3 images, every one answered."""
    require_wrk()
    from bench.load.__main__ import main

    out_json = tmp_path / "load.json"
    argv = ["--images-per-request", "3", "--requests", "4", "--concurrency", "2", "--warmup", "2"]
    argv += ["--faces", "off", "--ceiling-repeats", "0", "--json", str(out_json)]
    assert main(argv) == 0
    rows = json.loads(out_json.read_text())["rows"]
    assert [(r["server"], r["images_per_request"], r["answered"], r["errors"]) for r in rows] == [
        ("ours", 3, 4, 0)
    ]


def test_the_photo_mode_sends_a_640x480_jpeg_with_one_face(photos_dir) -> None:
    import io

    from PIL import Image

    from app.core.faces import make_detector
    from app.core.imaging import decode_image
    from bench.load.__main__ import parse_args, photo_jpeg

    data = photo_jpeg(photos_dir / "anger_01.jpg")
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size) == ("JPEG", (640, 480))
    detector = make_detector("auto", min_confidence=0.5)
    assert len(detector.detect(decode_image(data, max_pixels=10**6))) == 1
    assert parse_args(["--photo", "--faces", "default"]).photo
