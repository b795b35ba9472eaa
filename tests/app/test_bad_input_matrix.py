"""Hardening: the bad-input matrix as one table, slow clients, flat memory, and logs without image bytes.

MATRIX is the table docs/hardening.md shows (a test below keeps the two in step): each row is an input,
the status it gets and either its stable error code or ``prediction`` (valid-but-odd images are
classified). Every answer is checked for what the issue asks of all of them: never a 5xx, and a 4xx
is JSON with an ``error.code``. Cases test_api.py explores further (every format, EXIF coordinates,
Content-Length refusals) are single rows here.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import re
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from app.main import create_app
from tests.app.asgi import http_scope
from tests.app.conftest import (
    API_KEY,
    LIMITED_BATCH_FILES,
    LIMITED_UPLOAD_BYTES,
    assert_error,
    assert_prediction,
    encode,
    file_part,
    gradient_rgb,
    json_log_lines,
    png_header_only,
    settings_for,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs" / "hardening.md"
MULTIPART_B = {"content-type": "multipart/form-data; boundary=B"}
PREDICTION = "prediction"


# --- inputs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request: which app (a fixture of tests/app/conftest.py), where, and what it carries."""

    path: str = "/predict"
    files: Any = None
    data: dict[str, str] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    app: str = "client"


def one_file(data: bytes, name: str = "image.png", content_type: str = "image/png", **kw: Any) -> Call:
    return Call(files=file_part(data, name, content_type), **kw)


JSON_TYPE = {"content-type": "application/json"}


def json_call(body: Any, **kw: Any) -> Call:
    return Call(content=json.dumps(body).encode(), headers=JSON_TYPE, **kw)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def raw_part(data: bytes, disposition: str | None, content_type: str | None) -> bytes:
    """A multipart body with one hand-written part (for what HTTP client libraries will not send)."""
    head = "--B\r\n" if disposition is None else f"--B\r\nContent-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + data + b"\r\n--B--\r\n"


def gradient() -> Image.Image:
    return Image.open(io.BytesIO(gradient_rgb(120, 100))).convert("RGB")


def jpeg() -> bytes:
    return encode(gradient(), "JPEG", quality=90)


def png() -> bytes:
    return encode(gradient(), "PNG")


def rgba_png() -> bytes:
    rgba = gradient().convert("RGBA")
    alpha = np.linspace(0, 255, rgba.width, dtype=np.uint8)[None, :].repeat(rgba.height, axis=0)
    rgba.putalpha(Image.fromarray(alpha))  # real transparency, composited on white
    return encode(rgba, "PNG")


def sixteen_bit_png() -> bytes:
    values = np.linspace(0, 65535, 90 * 110).reshape(90, 110).astype(np.uint16)
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    return encode(image, "PNG")


def palette_gif() -> bytes:
    return encode(gradient().convert("P", palette=Image.Palette.ADAPTIVE, colors=32), "GIF")


def animated_gif(frames: list[Image.Image] | None = None) -> bytes:
    frames = frames or [Image.new("RGB", (80, 80), (v, v, v)) for v in (30, 130, 230)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    data = buffer.getvalue()
    assert Image.open(io.BytesIO(data)).n_frames == len(frames)
    return data


def exif_rotated_jpeg(photo: bytes) -> bytes:
    """The face photo stored sideways, EXIF orientation 8 (display rotated 90° counter-clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = 8
    upright = Image.open(io.BytesIO(photo)).convert("RGB")
    return encode(upright.transpose(Image.Transpose.ROTATE_270), "JPEG", quality=92, exif=exif.tobytes())


@functools.cache
def small_file_huge_image() -> bytes:
    """A real, decodable PNG: 20000 x 20000 1-bit pixels (400 M) in about 50 KB."""
    data = encode(Image.new("1", (20000, 20000)), "PNG")
    assert len(data) < 100_000
    return data


def noisy_png(side: int = 40) -> bytes:
    """Incompressible: a 40x40 RGB PNG is ~5 KB, over `limited_client`'s 4 KiB file limit."""
    return encode(np.random.default_rng(7).integers(0, 256, (side, side, 3), dtype=np.uint8), "PNG")


def batch_of(count: int, data: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (f"{i}.png", data, "image/png")) for i in range(count)]


TEXT = b"this is a plain text file, not a picture\n" * 10
TINY = encode(np.array([[200]], dtype=np.uint8), "PNG")


@dataclass(frozen=True)
class Row:
    """input -> status -> code (or PREDICTION); `build` gets the face photo for the rows that need one."""

    input: str
    build: Callable[[Callable[[], bytes]], Call]
    status: int
    code: str

    @property
    def id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.input.lower()).strip("-")[:60]


MATRIX = [
    # the request itself
    Row("empty body (multipart header, zero bytes)", lambda _: Call(content=b"", headers=MULTIPART_B),
        422, "missing_file"),
    Row("empty body, no content type", lambda _: Call(content=b""), 415, "expected_multipart"),
    Row("missing field (multipart with no parts)", lambda _: Call(content=b"--B--\r\n", headers=MULTIPART_B),
        422, "missing_file"),
    Row("wrong field name (`image` instead of `file`)",
        lambda _: Call(files={"image": ("a.png", png(), "image/png")}), 422, "missing_file"),
    Row("extra form field (`faces` sent as a field, not a query parameter)",
        lambda _: Call(files=file_part(png()), data={"faces": "all"}), 422, "unexpected_field"),
    Row("JSON body of the wrong shape (`file` instead of `b64`)",
        lambda _: json_call({"file": base64.b64encode(png()).decode()}), 422, "invalid_request"),
    Row("JSON body that is not JSON", lambda _: Call(content=b'{"b64": ', headers=JSON_TYPE),
        422, "invalid_request"),
    Row("JSON `b64` that is not base64", lambda _: json_call({"b64": "not base64!"}), 400, "invalid_base64"),
    Row("JSON batch with no instances",
        lambda _: json_call({"instances": []}, path="/predict/batch"), 422, "invalid_request"),
    Row("JSON batch over the file limit (4 instances, limit 3)",
        lambda _: json_call({"instances": [{"b64": b64(TINY)}] * 4}, path="/predict/batch",
                            app="limited_client"), 422, "too_many_files"),
    Row("unknown model (`?model=nope`)", lambda _: one_file(TINY, path="/predict?model=nope"),
        404, "unknown_model"),
    Row("wrong request content type (`text/plain` holding a PNG)",
        lambda _: Call(content=png(), headers={"content-type": "text/plain"}), 415, "expected_multipart"),
    Row("multipart without a boundary",
        lambda _: Call(content=b"--B--\r\n", headers={"content-type": "multipart/form-data"}),
        400, "invalid_multipart"),
    Row("malformed multipart (part without a name)",
        lambda _: Call(content=raw_part(png(), "form-data", "image/png"), headers=MULTIPART_B),
        400, "invalid_multipart"),
    Row("malformed multipart (part without a Content-Disposition header)",
        lambda _: Call(content=raw_part(png(), None, "image/png"), headers=MULTIPART_B),
        400, "invalid_multipart"),
    Row("too many files in a batch (4, limit 3)",
        lambda _: Call("/predict/batch", files=batch_of(LIMITED_BATCH_FILES + 1, TINY), app="limited_client"),
        422, "too_many_files"),
    Row("two files to /predict", lambda _: Call(files=batch_of(2, TINY)), 422, "too_many_files"),
    Row("no API key when one is configured", lambda _: one_file(TINY, app="secured_client"),
        401, "unauthorized"),
    Row("a wrong API key", lambda _: one_file(TINY, app="secured_client", headers={"X-API-Key": "wrong"}),
        401, "unauthorized"),
    Row("a key past its rate limit (1 a minute, spent)",
        lambda _: one_file(TINY, app="rate_limited_client", headers={"X-API-Key": API_KEY}),
        429, "rate_limited"),
    # sizes
    Row("upload over the byte limit (5 KB file, limit 4 KiB)",
        lambda _: one_file(noisy_png(), app="limited_client"), 413, "upload_too_large"),
    Row("JSON image over the byte limit (5 KB file, limit 4 KiB)",
        lambda _: json_call({"b64": b64(noisy_png())}, app="limited_client"), 413, "upload_too_large"),
    Row("body over the request limit (200 KB, declared length)",
        lambda _: one_file(b"\0" * 200_000, app="limited_client"), 413, "upload_too_large"),
    Row("decompression bomb: header declares 100000 x 100000",
        lambda _: one_file(png_header_only(100_000, 100_000)), 413, "image_too_large"),
    Row("decompression bomb: 50 KB PNG of 20000 x 20000 pixels",
        lambda _: one_file(small_file_huge_image()), 413, "image_too_large"),
    Row("image over the pixel limit (101 x 100, limit 10000)",
        lambda _: one_file(encode(np.zeros((101, 100), np.uint8), "PNG"), app="limited_client"),
        413, "image_too_large"),
    # files that are not (whole) images
    Row("zero-byte file", lambda _: one_file(b"", "empty.jpg", "image/jpeg"), 400, "empty_file"),
    Row("text file named .jpg", lambda _: one_file(TEXT, "notes.jpg", "image/jpeg"), 415,
        "unsupported_image_type"),
    Row("truncated JPEG (first half)", lambda _: one_file(jpeg()[: len(jpeg()) // 2], "a.jpg", "image/jpeg"),
        400, "image_decode_failed"),
    Row("truncated PNG (first half)", lambda _: one_file(png()[: len(png()) // 2]), 400,
        "image_decode_failed"),
    # valid but odd images: classified
    Row("1x1 image", lambda _: one_file(TINY), 200, PREDICTION),
    Row("JSON image (`b64`)",
        lambda _: json_call({"b64": b64(png())}), 200, PREDICTION),
    Row("1 x 40000 strip (not enlarged without bound for face detection)",
        lambda _: one_file(encode(np.full((1, 40_000), 90, np.uint8), "PNG")), 200, PREDICTION),
    Row("16-bit gray PNG", lambda _: one_file(sixteen_bit_png()), 200, PREDICTION),
    Row("RGBA PNG with transparency", lambda _: one_file(rgba_png()), 200, PREDICTION),
    Row("palette GIF", lambda _: one_file(palette_gif(), "a.gif", "image/gif"), 200, PREDICTION),
    Row("animated GIF (first frame used)", lambda _: one_file(animated_gif(), "a.gif", "image/gif"),
        200, PREDICTION),
    Row("CMYK JPEG", lambda _: one_file(encode(gradient().convert("CMYK"), "JPEG"), "a.jpg", "image/jpeg"),
        200, PREDICTION),
    Row("TIFF", lambda _: one_file(encode(gradient(), "TIFF"), "a.tif", "image/tiff"), 200, PREDICTION),
    Row("EXIF-rotated JPEG (rotated upright, face found)",
        lambda photo: one_file(exif_rotated_jpeg(photo()), "a.jpg", "image/jpeg"), 200, PREDICTION),
    Row("PNG in a part declared `text/plain`, named .txt",
        lambda _: one_file(png(), "notes.txt", "text/plain"), 200, PREDICTION),
    Row("image part without a filename",
        lambda _: Call(content=raw_part(png(), 'form-data; name="file"', "image/png"), headers=MULTIPART_B),
        200, PREDICTION),
]  # fmt: skip


@pytest.mark.parametrize("row", MATRIX, ids=[row.id for row in MATRIX])
def test_bad_input_matrix(row: Row, request: pytest.FixtureRequest, labels: list[str]) -> None:
    def photo() -> bytes:
        return request.getfixturevalue("anger_photo")

    call = row.build(photo)
    client: TestClient = request.getfixturevalue(call.app)
    headers = {"X-Request-ID": f"matrix-{row.id}"[:64], **call.headers}
    response = client.post(call.path, files=call.files, data=call.data, content=call.content, headers=headers)
    assert response.status_code < 500, response.text  # never a server error
    assert response.headers["x-request-id"] == headers["X-Request-ID"]
    if row.code == PREDICTION:
        assert response.status_code == 200, response.text
        body = response.json()
        assert_prediction(body, labels)
        if "EXIF" in row.input:  # a frontal-face detector finds the face only once it is upright
            assert body["face_found"] is True
    else:
        assert 400 <= row.status < 500
        error = assert_error(response, row.status, row.code)
        assert error["request_id"] == headers["X-Request-ID"]


def test_the_docs_show_the_matrix() -> None:
    """docs/hardening.md lists every row of MATRIX as `| input | status | code |`, in order."""
    text = DOCS.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (.+?) \| (\d{3}) \| `?([a-z0-9_]+)`? \|$", text, flags=re.MULTILINE)
    assert rows == [(row.input, str(row.status), row.code) for row in MATRIX]


def test_animated_gif_is_classified_on_its_first_frame(client: TestClient, anger_photo: bytes) -> None:
    face = Image.open(io.BytesIO(anger_photo)).convert("RGB")
    frames = [face, Image.new("RGB", face.size, (128, 128, 128)), Image.new("RGB", face.size, (0, 0, 0))]
    data = animated_gif(frames)
    first = Image.open(io.BytesIO(data)).convert("RGB")  # Pillow opens a GIF on its first frame
    animated = client.post("/predict", files=file_part(data, "a.gif", "image/gif")).json()
    alone = client.post("/predict", files=file_part(encode(first, "PNG"))).json()
    assert animated["face_found"] is True
    assert animated["box"] == alone["box"]
    assert animated["probabilities"] == pytest.approx(alone["probabilities"], abs=1e-6)


# --- streaming: an oversized body is not read to the end ---------------------------------------------


def _call(client: TestClient, receive: Callable[[], Any], path: str = "/predict") -> list[dict[str, Any]]:
    """The app over raw ASGI (chunked: no Content-Length), on the TestClient's event loop."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope(path, [(b"content-type", MULTIPART_B["content-type"].encode())])
    client.portal.call(client.app, scope, receive, send)
    return sent


def _status_and_error(sent: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


def test_fifty_megabytes_streamed_stop_being_read_at_the_limit(client: TestClient) -> None:
    """50 MB from a generator to the default app (10 MiB file limit): 413 long before the generator is
    exhausted, and the bytes read so far are spooled, not held: Python memory stays far below the size."""
    chunk, total = 64 * 1024, 50 * 1024 * 1024
    consumed = 0

    def body() -> Iterator[bytes]:
        nonlocal consumed
        head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
        consumed += len(head)
        yield head
        while consumed < total:
            consumed += chunk
            yield b"\0" * chunk

    chunks = body()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": next(chunks), "more_body": True}

    tracemalloc.start()
    try:
        sent = _call(client, receive)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    status, error = _status_and_error(sent)
    assert (status, error["error"]["code"]) == (413, "upload_too_large")
    limit = 10 * 1024 * 1024 + 64 * 1024
    assert consumed <= limit + 2 * chunk, consumed  # stopped at the limit...
    assert consumed < total / 4  # ...so the generator was far from exhausted
    assert peak < 8 * 1024 * 1024, f"{peak / 2**20:.1f} MiB of Python memory for a 10 MiB body"


# --- slow clients: the whole body within EMOTION_BODY_TIMEOUT_S ----------------------------------------


@pytest.fixture(scope="module")
def impatient_client(model_path: Path, loaded_model) -> Iterator[TestClient]:
    app = create_app(settings_for(model_path, body_timeout_s=0.3), model=loaded_model)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _multipart_chunks(data: bytes, pieces: int) -> list[bytes]:
    body = raw_part(data, 'form-data; name="file"; filename="x.png"', "image/png")
    size = -(-len(body) // pieces)
    return [body[i : i + size] for i in range(0, len(body), size)]


def test_a_stalled_body_is_answered_408(impatient_client: TestClient) -> None:
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads == 1:
            head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
            return {"type": "http.request", "body": head, "more_body": True}
        await anyio.sleep(60)  # the client stops sending; cancelled by the deadline
        raise AssertionError("unreachable")

    started = time.monotonic()
    sent = _call(impatient_client, receive)
    assert time.monotonic() - started < 10
    status, error = _status_and_error(sent)
    assert (status, error["error"]["code"]) == (408, "request_timeout")
    assert (b"connection", b"close") in [(k.lower(), v) for k, v in sent[0]["headers"]]


def test_a_trickling_body_is_cut_off_at_the_total_deadline(impatient_client: TestClient) -> None:
    """Every chunk arrives quickly (0.05 s), but the body as a whole takes longer than 0.3 s."""
    chunks = iter(_multipart_chunks(png(), 20))

    async def receive() -> dict[str, Any]:
        await anyio.sleep(0.05)
        return {"type": "http.request", "body": next(chunks, b""), "more_body": True}

    status, error = _status_and_error(_call(impatient_client, receive))
    assert (status, error["error"]["code"]) == (408, "request_timeout")


def test_a_body_within_the_deadline_is_classified(impatient_client: TestClient, labels: list[str]) -> None:
    pieces = _multipart_chunks(png(), 4)
    chunks = iter(pieces)

    async def receive() -> dict[str, Any]:
        await anyio.sleep(0.01)
        body = next(chunks)
        return {"type": "http.request", "body": body, "more_body": body is not pieces[-1]}

    sent = _call(impatient_client, receive)
    assert sent[0]["status"] == 200
    assert_prediction(json.loads(b"".join(m.get("body", b"") for m in sent[1:])), labels)


# --- logs: one JSON line per request, never the image ------------------------------------------------


def _marked_png(marker: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", marker)
    return encode(gradient(), "PNG", pnginfo=info)


def _forms_of(data: bytes) -> list[str]:
    """Ways image bytes could show up in a log line."""
    return [
        base64.b64encode(data[:48]).decode(),
        data[8:40].hex(),
        repr(data[8:40])[2:-1],
        data[8:40].decode("latin-1"),
    ]


def test_logs_are_json_with_request_fields_and_never_image_bytes(client: TestClient) -> None:
    marker = "IMAGE-BYTES-MUST-NOT-BE-LOGGED-7f3a"
    valid = _marked_png(marker)
    uploads = [
        (valid, 200, None),
        (valid[: len(valid) // 2], 400, "image_decode_failed"),
        (marker.encode() * 20, 415, "unsupported_image_type"),
    ]
    with json_log_lines() as handler:
        for data, status, code in uploads:
            handler.lines.clear()
            response = client.post("/predict", files=file_part(data, f"{marker}.png"))
            assert response.status_code == status
            lines = list(handler.lines)
            text = "\n".join(lines)
            assert marker not in text
            for form in _forms_of(data):
                assert form not in text
            access = [json.loads(line) for line in lines if json.loads(line)["logger"] == "app.access"]
            assert len(access) == 1, lines
            entry = access[0]
            assert entry["request_id"] == response.headers["x-request-id"]
            assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/predict", status)
            assert entry["error_code"] == code
            assert isinstance(entry["latency_ms"], float) and entry["latency_ms"] >= 0


def test_limits_of_the_limited_client_are_what_the_matrix_says() -> None:
    assert LIMITED_UPLOAD_BYTES < len(noisy_png()) < 64 * 1024
    assert LIMITED_BATCH_FILES == 3
