"""The HTTP API end to end (TestClient, lifespan running): every endpoint and every error code.

Real images (CK+48 crops, the photos in ../shared/data/photos/) and images generated here for
formats and corruptions. Nothing depends on which model is shipped beyond its contract: the labels
of its metadata, probabilities that sum to 1.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from app.core.config import Settings
from app.core.errors import OverloadedError
from app.core.faces import face_crop, yunet
from app.core.imaging import decode_image
from app.core.inference import LoadedModel, ModelLoadError, load_model
from app.core.preprocessing import batch_to_model_input, to_model_input
from app.core.test_time_flip import average_views
from app.main import create_app
from tests.app.asgi import http_scope
from tests.app.conftest import (
    API_KEY,
    CORS_ORIGIN,
    LIMITED_BATCH_FILES,
    LIMITED_UPLOAD_BYTES,
    assert_error,
    assert_prediction,
    encode,
    file_part,
    gradient_rgb,
    png_header_only,
    settings_for,
    uniform_gray,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def predict(
    client: TestClient,
    data: bytes,
    *,
    name: str = "image.png",
    faces: str | None = None,
    content_type: str = "image/png",
) -> dict[str, Any]:
    params = {"faces": faces} if faces else None
    response = client.post("/predict", files=file_part(data, name, content_type), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def probabilities(body: dict[str, Any]) -> np.ndarray:
    return np.array(list(body["probabilities"].values()))


def box_inside(box: dict[str, int], width: int, height: int) -> bool:
    return (
        box["x"] >= 0
        and box["y"] >= 0
        and box["width"] > 0
        and box["height"] > 0
        and box["x"] + box["width"] <= width
        and box["y"] + box["height"] <= height
    )


# --- operations endpoints --------------------------------------------------------------------------


def test_health_and_ready(client: TestClient, loaded_model) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model_id": loaded_model.model_id}
    assert re.fullmatch(r"emotion_cnn@[0-9a-f]{12}", loaded_model.model_id)


def test_model_info_comes_from_the_metadata(
    client: TestClient, metadata: dict[str, Any], model_path: Path
) -> None:
    response = client.get("/model")
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["labels"] == metadata["labels"]
    assert info["input_shape"] == metadata["input_shape"]
    assert info["architecture"] == metadata["architecture"]
    assert info["params"] == metadata["params"] > 0
    assert info["metrics"] == metadata["metrics"]
    assert info["training"]["protocol"] == metadata["training"]["protocol"]
    assert "history" not in info["training"]
    assert Path(info["path"]) == model_path
    assert info["model_id"] == client.get("/ready").json()["model_id"]
    assert isinstance(info["batching"], dict)


def test_not_ready_before_the_lifespan_ran(idle_client: TestClient, anger_photo: bytes) -> None:
    assert idle_client.get("/health").status_code == 200  # alive, not ready
    for response in (
        idle_client.get("/ready"),
        idle_client.get("/model"),
        idle_client.post("/predict", files=file_part(anger_photo, "a.jpg", "image/jpeg")),
        idle_client.post("/predict/batch", files=[("file", ("a.jpg", anger_photo, "image/jpeg"))]),
    ):
        assert_error(response, 503, "not_ready")
        assert response.headers["retry-after"] == "1"


def test_not_ready_after_shutdown(model_path: Path, loaded_model, small_png: bytes) -> None:
    client = TestClient(
        create_app(settings_for(model_path), model=loaded_model), raise_server_exceptions=False
    )
    with client:
        assert client.get("/ready").status_code == 200
        client.app.state.service.ready = False  # what the lifespan does when shutting down
        assert_error(client.get("/ready"), 503, "not_ready")
        assert_error(client.post("/predict", files=file_part(small_png)), 503, "not_ready")
        client.app.state.service.ready = True
        assert client.post("/predict", files=file_part(small_png)).status_code == 200


# --- /predict on real images -----------------------------------------------------------------------


def flip_averaged(model, inputs: np.ndarray) -> np.ndarray:
    """What the service answers with test-time flip: the training code's probabilities of each input
    and of its mirror image, combined as the softmax of the mean logits."""
    from training.fit import predict_probabilities

    plain = predict_probabilities(model, inputs)
    mirrored = predict_probabilities(model, inputs[:, :, ::-1])
    return np.stack([average_views([a, b]) for a, b in zip(plain, mirrored, strict=True)])


def test_ckplus_probabilities_equal_the_training_code(
    client: TestClient, ck_samples: list[Path], loaded_model, model_path: Path, labels: list[str]
) -> None:
    """An image sent over HTTP gets exactly the probabilities training computes for it."""
    import keras

    from training.dataset import MAX_PIXELS

    model = keras.models.load_model(model_path, compile=False)
    decoded = [
        decode_image(path.read_bytes(), max_pixels=MAX_PIXELS) for path in ck_samples
    ]  # as load_dataset
    inputs = batch_to_model_input(decoded, loaded_model.spec)
    assert client.app.state.service.settings.test_time_flip  # the default: each face and its mirror image
    expected = flip_averaged(model, inputs)

    detector = client.app.state.service.classifier.detector
    found = 0
    for path, image, want in zip(ck_samples, decoded, expected, strict=True):
        off = predict(client, path.read_bytes(), name=path.name, faces="off")
        assert_prediction(off, labels)
        assert off["face_found"] is False and off["box"] is None and off["face_detection"] == "off"
        np.testing.assert_allclose(probabilities(off), want, rtol=0, atol=1e-6, err_msg=str(path))

        # Default mode: the face in the crop is found and reframed as the training faces were cut;
        # the probabilities are the model's on that crop, computed here with the same core functions.
        default = predict(client, path.read_bytes(), name=path.name)
        assert_prediction(default, labels)
        assert default["face_detection"] == "largest"
        height, width = image.shape[:2]
        if default["face_found"]:
            found += 1
            assert box_inside(default["box"], width, height)
            face = detector.detect(image)[0]
            crop = to_model_input(face_crop(image, face, detector.framing), loaded_model.spec)
            reframed = flip_averaged(model, crop[None])[0]
            np.testing.assert_allclose(probabilities(default), reframed, rtol=0, atol=1e-6, err_msg=str(path))
    assert found >= 0.8 * len(ck_samples), "a face filling a CK+48 crop should be found"


@pytest.mark.parametrize("photo", ["anger_photo", "sadness_photo"])
def test_photo_face_is_found(client: TestClient, photo: str, request, labels: list[str]) -> None:
    data = request.getfixturevalue(photo)
    width, height = Image.open(io.BytesIO(data)).size
    body = predict(client, data, name=f"{photo}.jpg", content_type="image/jpeg")
    assert_prediction(body, labels)
    assert body["face_found"] is True
    assert body["face_detection"] == "largest"
    assert body["faces"] is None
    assert box_inside(body["box"], width, height)
    assert body["box"]["width"] >= 0.2 * min(width, height)  # a face, not a speck
    assert body["model_id"] == client.get("/ready").json()["model_id"]
    if client.app.state.service.settings.face_detector != "haar" and yunet.unavailable_reason() is None:
        assert 0.5 <= body["face_confidence"] <= 1
        eyes = body["eyes"]
        assert eyes["right"]["x"] < eyes["left"]["x"]
        for eye in eyes.values():
            assert box_inside({**{k: int(v) for k, v in eye.items()}, "width": 1, "height": 1}, width, height)


def test_faces_all_lists_every_face(client: TestClient, anger_photo: bytes, labels: list[str]) -> None:
    body = predict(client, anger_photo, name="a.jpg", faces="all", content_type="image/jpeg")
    assert body["face_detection"] == "all" and body["face_found"] is True
    faces = body["faces"]
    assert isinstance(faces, list) and len(faces) >= 1
    for face in faces:
        assert_prediction({**face, "timing": body["timing"]}, labels)
        assert face["face_confidence"] is None or 0 <= face["face_confidence"] <= 1
        assert box_inside(face["box"], *Image.open(io.BytesIO(anger_photo)).size)
    areas = [f["box"]["width"] * f["box"]["height"] for f in faces]
    assert areas == sorted(areas, reverse=True)
    face_keys = ("box", "emotion", "confidence", "probabilities", "face_confidence", "eyes")
    assert {k: body[k] for k in face_keys} == faces[0]
    largest = predict(client, anger_photo, name="a.jpg", content_type="image/jpeg")
    assert largest["box"] == faces[0]["box"]
    np.testing.assert_allclose(probabilities(largest), probabilities(faces[0]), atol=1e-6)


def test_faces_off_classifies_the_whole_photo(
    client: TestClient, anger_photo: bytes, labels: list[str]
) -> None:
    body = predict(client, anger_photo, name="a.jpg", faces="off", content_type="image/jpeg")
    assert_prediction(body, labels)
    assert body["face_found"] is False and body["box"] is None and body["face_detection"] == "off"


@pytest.mark.parametrize("image", [uniform_gray(), gradient_rgb()], ids=["uniform-gray", "gradient"])
def test_no_face_classifies_the_whole_image(client: TestClient, image: bytes, labels: list[str]) -> None:
    for faces in (None, "all"):
        body = predict(client, image, faces=faces)
        assert_prediction(body, labels)
        assert body["face_found"] is False
        assert body["box"] is None and body["face_confidence"] is None and body["eyes"] is None
        if faces == "all":
            assert [f["box"] for f in body["faces"]] == [None]


# --- formats and modes -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upright(anger_photo: bytes) -> Image.Image:
    return Image.open(io.BytesIO(anger_photo)).convert("RGB")


def _variants(upright: Image.Image) -> dict[str, tuple[bytes, str]]:
    rgba = upright.convert("RGBA")
    gray = upright.convert("L")
    sixteen = Image.fromarray(np.asarray(gray).astype(np.uint16) * 257)
    transparent_palette = upright.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    transparent_palette.info["transparency"] = 0
    return {
        "jpeg": (encode(upright, "JPEG", quality=92), "image/jpeg"),
        "jpeg-gray": (encode(gray, "JPEG", quality=92), "image/jpeg"),
        "jpeg-cmyk": (encode(upright.convert("CMYK"), "JPEG", quality=92), "image/jpeg"),
        "png-rgb": (encode(upright, "PNG"), "image/png"),
        "png-rgba-opaque": (encode(rgba, "PNG"), "image/png"),
        "png-gray": (encode(gray, "PNG"), "image/png"),
        "png-16bit": (encode(sixteen, "PNG"), "image/png"),
        "png-palette": (encode(upright.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"), "image/png"),
        "png-palette-transparent": (encode(transparent_palette, "PNG"), "image/png"),
        "gif": (encode(upright.convert("P", palette=Image.Palette.ADAPTIVE), "GIF"), "image/gif"),
        "bmp": (encode(upright, "BMP"), "image/bmp"),
        "webp-lossless": (encode(upright, "WEBP", lossless=True), "image/webp"),
        "webp-lossy": (encode(upright, "WEBP", quality=90), "image/webp"),
        "tiff": (encode(upright, "TIFF"), "image/tiff"),
        "tiff-lzw": (encode(upright, "TIFF", compression="tiff_lzw"), "image/tiff"),
    }


VARIANTS = [
    "jpeg", "jpeg-gray", "jpeg-cmyk", "png-rgb", "png-rgba-opaque", "png-gray", "png-16bit", "png-palette",
    "png-palette-transparent", "gif", "bmp", "webp-lossless", "webp-lossy", "tiff", "tiff-lzw",
]  # fmt: skip


@pytest.fixture(scope="module")
def variant_results(client: TestClient, upright: Image.Image) -> dict[str, dict[str, Any]]:
    results = {}
    for name, (data, content_type) in _variants(upright).items():
        # A neutral file name: the format is sniffed from the bytes.
        results[name] = predict(client, data, name="upload.bin", content_type=content_type)
    return results


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_format_and_mode(
    variant: str, variant_results: dict[str, dict[str, Any]], labels: list[str], upright: Image.Image
) -> None:
    body = variant_results[variant]
    assert_prediction(body, labels)
    assert body["face_found"] is True, f"{variant}: the face of the photo was not found"
    assert box_inside(body["box"], *upright.size)


def test_lossless_encodings_give_identical_results(variant_results: dict[str, dict[str, Any]]) -> None:
    reference = variant_results["png-rgb"]
    for name in ("png-rgba-opaque", "bmp", "webp-lossless", "tiff", "tiff-lzw"):
        assert variant_results[name]["box"] == reference["box"], name
        np.testing.assert_allclose(probabilities(variant_results[name]), probabilities(reference), atol=1e-6)
    # 16-bit gray holding v * 257 decodes to the 8-bit gray v.
    assert variant_results["png-16bit"]["box"] == variant_results["png-gray"]["box"]
    np.testing.assert_allclose(
        probabilities(variant_results["png-16bit"]), probabilities(variant_results["png-gray"]), atol=1e-6
    )


def test_exif_orientation_is_honoured(client: TestClient, upright: Image.Image, anger_photo: bytes) -> None:
    """A JPEG stored sideways with EXIF orientation 8 is classified upright, with upright coordinates."""
    exif = Image.Exif()
    exif[0x0112] = 8  # displayed by rotating 90° counter-clockwise
    sideways = encode(upright.transpose(Image.Transpose.ROTATE_270), "JPEG", quality=95, exif=exif.tobytes())
    stored = Image.open(io.BytesIO(sideways))
    assert stored.size == (521, 425)  # the pixels are stored sideways
    shown = ImageOps.exif_transpose(stored).convert("RGB")
    assert shown.size == (425, 521)

    rotated = predict(client, sideways, name="sideways.jpg", content_type="image/jpeg")
    assert rotated["face_found"] is True  # a frontal-face detector does not find a sideways face
    assert box_inside(rotated["box"], 425, 521)

    # Exactly what the same pixels, already upright, give.
    same_pixels = predict(client, encode(shown, "PNG"))
    assert rotated["box"] == same_pixels["box"]
    np.testing.assert_allclose(probabilities(rotated), probabilities(same_pixels), atol=1e-6)

    # And about what the original upright photo gives (JPEG re-encoding moves pixels a little).
    original = predict(client, anger_photo, name="a.jpg", content_type="image/jpeg")
    for key in ("x", "y", "width", "height"):
        assert abs(rotated["box"][key] - original["box"][key]) <= 0.1 * original["box"]["width"], key


# --- errors: bad images ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "name", "status", "code"),
    [
        (lambda photo: b"", "empty.jpg", 400, "empty_file"),
        (lambda photo: b"hello, this is plain text and not a picture\n" * 20, "notes.jpg", 415,
         "unsupported_image_type"),
        (lambda photo: b"%PDF-1.7\n" + bytes(range(256)) * 4, "scan.png", 415, "unsupported_image_type"),
        (lambda photo: photo[: len(photo) // 2], "half.jpg", 400, "image_decode_failed"),
        (lambda photo: photo[:400], "header-only.jpg", 400, "image_decode_failed"),
        (lambda photo: encode(Image.open(io.BytesIO(photo)), "PNG")[:30_000], "half.png", 400,
         "image_decode_failed"),
        (lambda photo: b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "garbage.png", 400, "image_decode_failed"),
        (lambda photo: b"BM" + b"\xff" * 100, "garbage.bmp", 400, "image_decode_failed"),
        (lambda photo: b"GIF89a" + b"\x01" * 40, "garbage.gif", 400, "image_decode_failed"),
        (lambda photo: png_header_only(100_000, 100_000), "bomb.png", 413, "image_too_large"),
    ],
    ids=["empty", "text-as-jpg", "pdf-as-png", "truncated-jpeg", "jpeg-header-only", "truncated-png",
         "corrupt-png", "corrupt-bmp", "corrupt-gif", "pixel-bomb"],
)  # fmt: skip
def test_bad_image_errors(
    client: TestClient, anger_photo: bytes, make, name: str, status: int, code: str
) -> None:
    response = client.post("/predict", files=file_part(make(anger_photo), name, "image/jpeg"))
    error = assert_error(response, status, code)
    assert error["request_id"] == response.headers["x-request-id"]


def test_too_many_pixels(limited_client: TestClient) -> None:
    big = encode(np.zeros((101, 100), dtype=np.uint8), "PNG")  # 10_100 pixels, a few hundred bytes
    assert len(big) < LIMITED_UPLOAD_BYTES
    assert_error(limited_client.post("/predict", files=file_part(big)), 413, "image_too_large")
    ok = encode(np.zeros((100, 100), dtype=np.uint8), "PNG")
    assert limited_client.post("/predict", files=file_part(ok)).status_code == 200


# --- errors: the request ---------------------------------------------------------------------------


def test_missing_or_misnamed_field(client: TestClient, small_png: bytes) -> None:
    assert_error(
        client.post("/predict", files={"image": ("x.png", small_png, "image/png")}), 422, "missing_file"
    )
    # A plain text field called `file` is not a file.
    assert_error(
        client.post("/predict", data={"file": "x"}, files={"other": ("o.txt", b"o")}), 422, "missing_file"
    )
    empty_form = b"--B--\r\n"
    response = client.post(
        "/predict", content=empty_form, headers={"content-type": "multipart/form-data; boundary=B"}
    )
    assert_error(response, 422, "missing_file")
    assert_error(client.post("/predict/batch", files={"image": ("x.png", small_png)}), 422, "missing_file")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"file=abc", "application/x-www-form-urlencoded"),
        (b"\x89PNG raw bytes", "image/png"),
        (b"", None),
    ],
    ids=["urlencoded", "raw-image", "no-body"],
)
def test_not_multipart(client: TestClient, body: bytes, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    for path in ("/predict", "/predict/batch"):
        assert_error(client.post(path, content=body, headers=headers), 415, "expected_multipart")


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=B"],
    ids=["no-boundary", "garbage-body"],
)
def test_malformed_multipart_is_a_client_error(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/predict", content=b"\x00\x01 not a multipart body", headers={"content-type": content_type}
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"] in ("invalid_multipart", "missing_file")


def test_multipart_without_boundary(client: TestClient) -> None:
    response = client.post("/predict", content=b"--B--\r\n", headers={"content-type": "multipart/form-data"})
    assert_error(response, 400, "invalid_multipart")


def test_invalid_faces_value(client: TestClient, small_png: bytes) -> None:
    error = assert_error(
        client.post("/predict?faces=every", files=file_part(small_png)), 422, "invalid_request"
    )
    assert "faces" in error["message"]
    assert_error(
        client.post("/predict/batch?faces=1", files=[("file", ("x.png", small_png))]), 422, "invalid_request"
    )


def test_two_files_on_predict(client: TestClient, small_png: bytes) -> None:
    files = [("file", ("a.png", small_png, "image/png")), ("file", ("b.png", small_png, "image/png"))]
    assert_error(client.post("/predict", files=files), 422, "too_many_files")
    many = [("file", (f"{i}.png", small_png, "image/png")) for i in range(8)]  # past the parser's cap too
    assert_error(client.post("/predict", files=many), 422, "too_many_files")


def test_unknown_path_and_wrong_method(client: TestClient) -> None:
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.post("/health"), 405, "method_not_allowed")
    assert_error(client.get("/predict"), 405, "method_not_allowed")
    assert_error(client.delete("/predict/batch"), 405, "method_not_allowed")


# --- errors: sizes ---------------------------------------------------------------------------------


def test_file_over_the_upload_limit(limited_client: TestClient) -> None:
    noisy = encode(np.random.default_rng(2).integers(0, 256, (40, 40, 3), dtype=np.uint8), "PNG")
    assert LIMITED_UPLOAD_BYTES < len(noisy) < 64 * 1024  # over the file limit, under the body limit
    error = assert_error(limited_client.post("/predict", files=file_part(noisy)), 413, "upload_too_large")
    assert str(LIMITED_UPLOAD_BYTES) in error["message"]


def test_declared_content_length_over_the_limit_is_refused_unread(limited_client: TestClient) -> None:
    big = b"\0" * (200 * 1024)
    response = limited_client.post("/predict", files=file_part(big))
    assert_error(response, 413, "upload_too_large")
    assert response.headers["x-request-id"]
    # The body is never read: a declared length is enough.
    asgi = limited_client.app
    sent: list[dict[str, Any]] = []
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope(
        "/predict",
        [(b"content-length", b"1000000000"), (b"content-type", b"multipart/form-data; boundary=B")],
    )
    limited_client.portal.call(asgi, scope, receive, send)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"]["code"] == "upload_too_large"
    assert reads == 0


def test_streamed_body_over_the_limit_is_cut_off(limited_client: TestClient) -> None:
    """No Content-Length (chunked): the body is counted as it arrives and reading stops at the limit."""

    def chunks():
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
        for _ in range(400):  # 400 x 16 KiB = 6.4 MiB, far over the ~68 KiB limit
            yield b"\0" * 16384

    response = limited_client.post(
        "/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=B"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "upload_too_large")

    # Over raw ASGI, chunk by chunk: reading stops soon after the limit.
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
        return {"type": "http.request", "body": head if reads == 1 else b"\0" * 16384, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope("/predict", [(b"content-type", b"multipart/form-data; boundary=B")])
    limited_client.portal.call(limited_client.app, scope, receive, send)
    assert sent[0]["status"] == 413
    assert json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["error"]["code"] == "upload_too_large"
    assert reads <= (LIMITED_UPLOAD_BYTES + 64 * 1024) // 16384 + 3


# --- /predict/batch --------------------------------------------------------------------------------


def test_batch_one_result_per_file_and_bad_files_do_not_fail_the_others(
    client: TestClient, anger_photo: bytes, sadness_photo: bytes, labels: list[str]
) -> None:
    files = [
        ("file", ("anger.jpg", anger_photo, "image/jpeg")),
        ("file", ("notes.jpg", b"just some text, not an image", "image/jpeg")),
        ("file", ("sadness.jpg", sadness_photo, "image/jpeg")),
        ("file", ("empty.png", b"", "image/png")),
        ("file", ("half.jpg", anger_photo[: len(anger_photo) // 2], "image/jpeg")),
        ("file", ("gray.png", uniform_gray(), "image/png")),
    ]
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["filename"] for r in results] == [name for _, (name, _, _) in files]
    assert [r["ok"] for r in results] == [True, False, True, False, False, True]
    assert [r["error"]["code"] for r in results if not r["ok"]] == [
        "unsupported_image_type",
        "empty_file",
        "image_decode_failed",
    ]
    for item, (_, (name, data, content_type)) in zip(results, files, strict=True):
        if item["ok"]:
            assert item["error"] is None
            assert_prediction(item["result"], labels)
            single = predict(client, data, name=name, content_type=content_type)
            assert item["result"]["box"] == single["box"]
            np.testing.assert_allclose(probabilities(item["result"]), probabilities(single), atol=1e-6)
        else:
            assert item["result"] is None and item["error"]["message"]
    assert results[0]["result"]["face_found"] and results[2]["result"]["face_found"]
    assert not results[5]["result"]["face_found"]


def test_batch_faces_option(client: TestClient, anger_photo: bytes) -> None:
    files = [("file", ("a.jpg", anger_photo, "image/jpeg"))] * 2
    for faces in ("off", "all"):
        results = client.post(f"/predict/batch?faces={faces}", files=files).json()["results"]
        assert all(r["ok"] and r["result"]["face_detection"] == faces for r in results)
    assert results[0]["result"]["faces"]


def test_batch_limits(limited_client: TestClient, small_png: bytes, labels: list[str]) -> None:
    files = [("file", (f"{i}.png", small_png, "image/png")) for i in range(LIMITED_BATCH_FILES)]
    response = limited_client.post("/predict/batch", files=files)
    assert response.status_code == 200
    assert all(r["ok"] for r in response.json()["results"])

    too_many = [*files, ("file", ("extra.png", small_png, "image/png"))]
    error = assert_error(limited_client.post("/predict/batch", files=too_many), 422, "too_many_files")
    assert str(LIMITED_BATCH_FILES) in error["message"]
    far_too_many = files * 3  # past the multipart parser's own cap as well
    error = assert_error(limited_client.post("/predict/batch", files=far_too_many), 422, "too_many_files")
    assert str(LIMITED_BATCH_FILES) in error["message"]

    # One file over the per-file limit is an error entry; the others are classified.
    noisy = encode(np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8), "PNG")
    mixed = [files[0], ("file", ("big.png", noisy, "image/png")), files[1]]
    results = limited_client.post("/predict/batch", files=mixed).json()["results"]
    assert [r["ok"] for r in results] == [True, False, True]
    assert results[1]["error"]["code"] == "upload_too_large"
    # The pixel limit applies per file too.
    wide = encode(np.zeros((200, 200), dtype=np.uint8), "PNG")
    results = limited_client.post("/predict/batch", files=[files[0], ("file", ("w.png", wide))]).json()[
        "results"
    ]
    assert [r["ok"] for r in results] == [True, False]
    assert results[1]["error"]["code"] == "image_too_large"
    # A body over the batch limit is refused as a whole.
    huge = [("file", (f"{i}.bin", b"\0" * (40 * 1024), "image/png")) for i in range(LIMITED_BATCH_FILES * 2)]
    assert_error(limited_client.post("/predict/batch", files=huge), 413, "upload_too_large")


def test_a_full_queue_fails_the_whole_batch_with_503_not_a_200_of_errors(
    model_path: Path, loaded_model: LoadedModel, small_png: bytes
) -> None:
    with TestClient(create_app(settings_for(model_path), model=loaded_model)) as client:
        classifier = client.app.state.service.classifier
        real = classifier.classify
        calls = 0

        async def overloaded_on_the_second(data: bytes, mode: str) -> Any:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise OverloadedError("queue full", headers={"Retry-After": "1"})
            return await real(data, mode)

        classifier.classify = overloaded_on_the_second
        files = [("file", (f"{i}.png", small_png, "image/png")) for i in range(3)]
        response = client.post("/predict/batch", files=files)
        assert_error(response, 503, "overloaded")
        assert response.headers["retry-after"] == "1"
        assert calls == 3  # every file ran to its end; none was left running


def test_decoding_runs_at_most_decode_threads_uploads_at_once(
    model_path: Path, loaded_model: LoadedModel, small_png: bytes
) -> None:
    settings = settings_for(model_path, decode_threads=2)
    with TestClient(create_app(settings, model=loaded_model)) as client:
        classifier = client.app.state.service.classifier
        detector = classifier.detector
        lock, running, most = threading.Lock(), 0, 0

        def slow_detect(image: np.ndarray) -> list[Any]:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.05)
            with lock:
                running -= 1
            return detector.detect(image)

        classifier.detector = SimpleNamespace(detect=slow_detect, framing=detector.framing)

        def post(_: int) -> int:
            return client.post("/predict", files=file_part(small_png)).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(post, range(8)))
    assert statuses == [200] * 8
    assert most == 2


# --- concurrency -----------------------------------------------------------------------------------


def test_concurrent_requests_get_their_own_results(
    client: TestClient, ck_samples: list[Path], anger_photo: bytes, sadness_photo: bytes
) -> None:
    images = [path.read_bytes() for path in ck_samples] + [anger_photo, sadness_photo, uniform_gray()]
    expected = [predict(client, data) for data in images]

    def call(index: int) -> tuple[int, dict[str, Any]]:
        i = index % len(images)
        response = client.post("/predict", files=file_part(images[i]))
        assert response.status_code == 200, response.text
        return i, response.json()

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(call, range(32)))
    assert len(results) == 32
    for i, body in results:
        assert body["box"] == expected[i]["box"]
        assert body["face_found"] == expected[i]["face_found"]
        np.testing.assert_allclose(probabilities(body), probabilities(expected[i]), rtol=0, atol=1e-6)


def test_inference_does_not_block_the_event_loop(model_path: Path, loaded_model, small_png: bytes) -> None:
    """While a (deliberately slow) model call runs, the service keeps answering other requests."""
    started, release = threading.Event(), threading.Event()

    def slow_call(batch):
        started.set()
        release.wait(timeout=30)
        return loaded_model._call(batch)

    slow_model = dataclasses.replace(loaded_model, _call=slow_call)
    with TestClient(create_app(settings_for(model_path), model=slow_model)) as slow_client:
        started.clear()  # the warm-up happened at load time; only the request's call counts
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(slow_client.post, "/predict", files=file_part(small_png))
            assert started.wait(timeout=30), "the model was never called"
            for _ in range(3):  # the loop is free while the model call is in flight
                assert slow_client.get("/health").status_code == 200
                assert slow_client.get("/ready").status_code == 200
            assert not pending.done()
            release.set()
            assert pending.result(timeout=30).status_code == 200


# --- API key, CORS, request ids ----------------------------------------------------------------------


def test_api_key(secured_client: TestClient, small_png: bytes) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}):
        assert_error(
            secured_client.post("/predict", files=file_part(small_png), headers=headers), 401, "unauthorized"
        )
        assert_error(secured_client.get("/model", headers=headers), 401, "unauthorized")
        batch = secured_client.post("/predict/batch", files=[("file", ("x.png", small_png))], headers=headers)
        assert_error(batch, 401, "unauthorized")
    good = {"X-API-Key": API_KEY}
    assert secured_client.post("/predict", files=file_part(small_png), headers=good).status_code == 200
    assert secured_client.get("/model", headers=good).status_code == 200
    assert (
        secured_client.post(
            "/predict/batch", files=[("file", ("x.png", small_png))], headers=good
        ).status_code
        == 200
    )
    assert secured_client.get("/health").status_code == 200
    assert secured_client.get("/ready").status_code == 200


def test_cors(secured_client: TestClient, client: TestClient) -> None:
    preflight = {"Origin": CORS_ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "X-API-Key"}  # fmt: skip
    response = secured_client.options("/predict", headers=preflight)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    assert (
        secured_client.get("/health", headers={"Origin": CORS_ORIGIN}).headers["access-control-allow-origin"]
        == CORS_ORIGIN
    )
    other = secured_client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    # By default: no CORS at all.
    response = client.options("/predict", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": CORS_ORIGIN}).headers


def test_request_id(client: TestClient) -> None:
    assert (
        client.get("/health", headers={"X-Request-ID": "abc-123.x_y"}).headers["x-request-id"]
        == "abc-123.x_y"
    )
    generated = client.get("/health").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert generated != client.get("/health").headers["x-request-id"]
    unsafe = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe)
    error = client.get("/nope", headers={"X-Request-ID": "trace-1"})
    assert error.headers["x-request-id"] == "trace-1"
    assert error.json()["error"]["request_id"] == "trace-1"


# --- OpenAPI and the docs page -----------------------------------------------------------------------


def test_the_asgi_application_is_app_main_app() -> None:
    import app.main

    paths = {route.path for route in app.main.app.routes}
    assert {"/predict", "/predict/batch", "/health", "/ready", "/model", "/docs", "/openapi.json"} <= paths


def test_openapi_schema(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    expected = {
        "/predict": "post",
        "/predict/batch": "post",
        "/health": "get",
        "/ready": "get",
        "/model": "get",
    }
    for path, method in expected.items():
        assert method in paths[path], path
        ok = paths[path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert "$ref" in ok, (path, ok)
    for path in ("/predict", "/predict/batch"):
        operation = paths[path]["post"]
        form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert "file" in form["required"]
        assert {"400", "413", "415", "422", "503"} <= set(operation["responses"])
        assert operation["responses"]["413"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorResponse"
        )
        assert any(p["name"] == "faces" for p in operation["parameters"])
    components = schema["components"]["schemas"]
    assert {"PredictResponse", "BatchResponse", "ErrorResponse", "ModelInfo", "HealthResponse"} <= set(
        components
    )
    assert components["PredictResponse"]["examples"]
    assert "examples" in components["FacePrediction"]["properties"]["probabilities"]


def test_docs_page_uses_only_local_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.text
    assert "swagger-ui" in html.lower()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html), "the docs page loads a remote asset"
    assets = re.findall(r"(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", html)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert asset.startswith("/"), asset
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 100, asset
    assert "/openapi.json" in html


# --- settings and startup errors -------------------------------------------------------------------


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from app.core.config import DEFAULT_MODEL_PATH, Settings

    for name in list(os.environ):
        if name.startswith("EMOTION_"):
            monkeypatch.delenv(name)
    defaults = Settings()
    assert defaults.model_path == DEFAULT_MODEL_PATH == REPO_ROOT / "models" / "emotion_cnn.h5"
    assert defaults.face_detection == "largest"
    monkeypatch.setenv("EMOTION_MODEL_PATH", str(tmp_path / "m.h5"))
    monkeypatch.setenv("EMOTION_MAX_UPLOAD_BYTES", "2048")
    monkeypatch.setenv("EMOTION_MAX_PIXELS", "1000")
    monkeypatch.setenv("EMOTION_FACE_DETECTION", "off")
    monkeypatch.setenv("EMOTION_LOG_LEVEL", "debug")
    monkeypatch.setenv("EMOTION_PORT", "9123")
    settings = Settings()
    assert settings.model_path == tmp_path / "m.h5"
    assert (settings.max_upload_bytes, settings.max_pixels, settings.port) == (2048, 1000, 9123)
    assert (settings.face_detection, settings.log_level) == ("off", "debug")


@pytest.mark.parametrize("name", ["haar", "yunet"])
def test_face_detector_setting_switches_the_detector(
    name: str, model_path: Path, loaded_model, anger_photo: bytes
) -> None:
    if name == "yunet" and yunet.unavailable_reason() is not None:
        pytest.skip(f"YuNet cannot run here: {yunet.unavailable_reason()}")
    with TestClient(create_app(settings_for(model_path, face_detector=name), model=loaded_model)) as client:
        assert client.app.state.service.classifier.detector.name == name
        body = predict(client, anger_photo, name="a.jpg", content_type="image/jpeg")
    assert body["face_found"] is True
    if name == "haar":  # no score, no eyes
        assert body["face_confidence"] is None and body["eyes"] is None
    else:
        assert 0.5 <= body["face_confidence"] <= 1 and body["eyes"] is not None


def test_face_detection_setting_is_the_default_mode(
    model_path: Path, loaded_model, anger_photo: bytes
) -> None:
    with TestClient(
        create_app(settings_for(model_path, face_detection="off"), model=loaded_model)
    ) as off_client:
        body = predict(off_client, anger_photo, name="a.jpg", content_type="image/jpeg")
        assert body["face_detection"] == "off" and body["box"] is None
        assert predict(off_client, anger_photo, faces="largest")["face_found"] is True


@pytest.fixture
def model_copy(tmp_path: Path, model_path: Path) -> Path:
    target = tmp_path / "copy.h5"
    shutil.copy(model_path, target)
    shutil.copy(model_path.with_suffix(".json"), target.with_suffix(".json"))
    return target


def _drop_checksum(model: Path) -> None:
    meta = json.loads(model.with_suffix(".json").read_text())
    meta.pop("model_sha256", None)
    model.with_suffix(".json").write_text(json.dumps(meta))


def test_model_load_errors_name_the_path(tmp_path: Path, model_copy: Path) -> None:
    missing = tmp_path / "nowhere" / "model.h5"
    with pytest.raises(ModelLoadError, match=re.escape(str(missing))) as info:
        load_model(missing)
    assert "EMOTION_MODEL_PATH" in str(info.value)

    no_json = tmp_path / "alone.h5"
    shutil.copy(model_copy, no_json)
    with pytest.raises(ModelLoadError, match=re.escape(str(no_json.with_suffix(".json")))):
        load_model(no_json)

    bad_json = tmp_path / "badjson.h5"
    shutil.copy(model_copy, bad_json)
    bad_json.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=re.escape(str(bad_json.with_suffix(".json")))):
        load_model(bad_json)

    data = model_copy.read_bytes()
    model_copy.write_bytes(data[: len(data) // 2])  # truncated: the checksum of the metadata catches it
    with pytest.raises(ModelLoadError, match=re.escape(str(model_copy))):
        load_model(model_copy)
    _drop_checksum(model_copy)  # without a checksum the Keras loader itself must refuse it
    with pytest.raises(ModelLoadError, match=re.escape(str(model_copy))) as info:
        load_model(model_copy)
    assert "not a loadable Keras model" in str(info.value)

    model_copy.write_text("this is a text file, not a Keras model\n")
    with pytest.raises(ModelLoadError, match=re.escape(str(model_copy))) as info:
        load_model(model_copy)
    assert "not a loadable Keras model" in str(info.value)


def test_lifespan_fails_fast_on_a_missing_model(tmp_path: Path) -> None:
    missing = tmp_path / "missing.h5"
    app = create_app(settings_for(missing))
    with pytest.raises(ModelLoadError, match=re.escape(str(missing))), TestClient(app):
        pass


@pytest.mark.parametrize("workers", ["1", "2"])  # two: checked in a child process before binding
def test_python_m_app_with_a_missing_model_prints_one_line(workers: str) -> None:
    env = {**os.environ, "EMOTION_MODEL_PATH": "/nonexistent.h5", "EMOTION_WORKERS": workers}
    done = subprocess.run(
        [sys.executable, "-m", "app"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "Started parent process" not in output
    errors = [line for line in output.splitlines() if line.startswith("error: cannot start the service")]
    assert len(errors) == 1, output
    assert "/nonexistent.h5" in errors[0] and "EMOTION_MODEL_PATH" in errors[0]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EMOTION_API_KEY", " "),
        ("EMOTION_MAX_PIXELS", "many"),
        ("EMOTION_PORT", "0"),
        ("EMOTION_API_KEYS", "key-one,,key-two"),
        ("EMOTION_API_KEYS_FILE", "/nonexistent/keys.txt"),
        ("EMOTION_RATE_LIMIT_PER_MINUTE", "60"),
    ],
)
def test_python_m_app_with_invalid_settings_prints_one_line(name: str, value: str) -> None:
    env = {**os.environ, name: value}
    done = subprocess.run(
        [sys.executable, "-m", "app"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error: cannot start the service")]
    assert len(errors) == 1 and name in errors[0], output
    assert "key-one" not in output  # a rejected key list is never printed


def test_python_m_app_closes_idle_connections_after_the_configured_keep_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import app.__main__ as entry

    served: dict[str, Any] = {}
    monkeypatch.setenv("EMOTION_WORKERS", "1")  # several: app/workers.py (tests/app/test_workers.py)
    monkeypatch.setenv("EMOTION_KEEP_ALIVE_S", "33")
    monkeypatch.setenv("EMOTION_SHUTDOWN_TIMEOUT_S", "7")
    monkeypatch.setattr(entry.uvicorn, "run", lambda app, **options: served.update(options))
    entry.get_settings.cache_clear()
    try:
        assert entry.main() == 0
    finally:
        entry.get_settings.cache_clear()
    assert served["timeout_keep_alive"] == 33
    assert served["timeout_graceful_shutdown"] == 7


def test_the_server_keeps_idle_connections_longer_than_httpx_does() -> None:
    """httpx reuses an idle connection for up to 5 s; a server closing at that same moment loses the
    request that the client sends on it (seen in the soak as rare read errors)."""
    httpx_expiry = httpx.Limits().keepalive_expiry
    assert httpx_expiry is not None and Settings().keep_alive_s >= 2 * httpx_expiry


def test_an_empty_api_key_is_a_configuration_error_not_a_locked_service(model_path: Path) -> None:
    with pytest.raises(ValueError, match="EMOTION_API_KEY is set but empty"):
        settings_for(model_path, api_key="")


@pytest.mark.parametrize("flip", [True, False])
def test_test_time_flip_makes_an_image_and_its_mirror_agree(
    flip: bool, model_path: Path, loaded_model, anger_photo: bytes
) -> None:
    image = np.asarray(Image.open(io.BytesIO(anger_photo)).convert("L"))
    original, mirrored = encode(image, "PNG"), encode(np.ascontiguousarray(image[:, ::-1]), "PNG")
    settings = settings_for(model_path, test_time_flip=flip, face_detection="off")
    with TestClient(create_app(settings, model=loaded_model)) as client:
        a, b = probabilities(predict(client, original)), probabilities(predict(client, mirrored))
    if flip:  # the same two views, in the other order
        np.testing.assert_allclose(a, b, atol=1e-6)
    else:  # one view each: the model itself is not mirror-symmetric
        assert np.abs(a - b).max() > 1e-3
