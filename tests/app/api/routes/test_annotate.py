"""POST /annotate: a JPEG of the upright image with the faces drawn; /predict's limits and errors."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.core.annotation import PALETTE
from tests.app.conftest import assert_error, encode, file_part, uniform_gray
from tests.app.test_bad_input_matrix import MATRIX, PREDICTION, Row, exif_rotated_jpeg


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def two_faces(photo: bytes) -> bytes:
    """The face photo beside its mirror image: two faces, both found by the detector."""
    face = Image.open(io.BytesIO(photo)).convert("RGB")
    both = Image.new("RGB", (face.width * 2, face.height))
    both.paste(face, (0, 0))
    both.paste(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (face.width, 0))
    return encode(both, "JPEG", quality=92)


def annotate(client: TestClient, data: bytes, name: str = "face.jpg", **params: str) -> Any:
    return client.post("/annotate", params=params, files=file_part(data, name, "image/jpeg"))


def near(pixels: np.ndarray, color: tuple[int, int, int], tolerance: int = 60) -> np.ndarray:
    return (np.abs(pixels - np.array(color)) < tolerance).all(axis=-1)


def test_the_photo_comes_back_as_a_jpeg_with_its_face_boxed(client: TestClient, anger_photo: bytes) -> None:
    response = annotate(client, anger_photo)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-model-id"] == client.get("/model").json()["model_id"]
    assert response.headers["x-face-count"] == "1"
    box = client.post("/predict", files=file_part(anger_photo, "face.jpg", "image/jpeg")).json()["box"]

    original, drawn = decoded(anger_photo), decoded(response.content)
    assert drawn.shape == original.shape
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    # The border is the first face's colour all the way down its left and right sides...
    for side in (drawn[y + 5 : y + h - 5, x], drawn[y + 5 : y + h - 5, x + w - 1]):
        assert near(side, PALETTE[0]).mean() > 0.9
    assert near(original[y + 5 : y + h - 5, x], PALETTE[0]).mean() < 0.1  # (not the photo's own colour)
    # ...inside the box and below it the photo is as it was (JPEG re-encoding aside).
    inside = np.s_[y + 10 : y + h - 10, x + 10 : x + w - 10]
    below = np.s_[y + h + 5 :, :]
    for region in (inside, below):
        assert np.abs(drawn[region] - original[region]).mean() < 4
    # The label band above the box: the colour, with light text on it.
    band = drawn[max(0, y - 25) : y - 2, x : x + w // 2]
    assert near(band, PALETTE[0]).mean() > 0.4 and (band.min(axis=-1) > 200).any()


def test_every_face_is_drawn_with_faces_all(client: TestClient, anger_photo: bytes) -> None:
    data = two_faces(anger_photo)
    response = annotate(client, data, faces="all")
    assert response.status_code == 200 and response.headers["x-face-count"] == "2"
    boxes = [face["box"] for face in client.post("/predict?faces=all", files=file_part(data)).json()["faces"]]
    drawn = decoded(response.content)
    for rank, box in enumerate(boxes):
        left_side = drawn[box["y"] + 5 : box["y"] + box["height"] - 5, box["x"]]
        assert near(left_side, PALETTE[rank]).mean() > 0.9, rank
    assert annotate(client, data).headers["x-face-count"] == "1"  # the default: the largest only


def test_no_face_gets_the_whole_image_label_in_the_corner_and_nothing_else(client: TestClient) -> None:
    response = annotate(client, uniform_gray(300, value=90), "gray.png")
    assert response.status_code == 200 and response.headers["x-face-count"] == "0"
    drawn = decoded(response.content)
    assert near(drawn[2:6, 2:6].reshape(-1, 3), PALETTE[0]).all()
    assert np.abs(drawn[60:] - 90).max() < 6  # below the label band: untouched gray


def test_an_exif_rotated_photo_comes_back_upright(client: TestClient, anger_photo: bytes) -> None:
    response = annotate(client, exif_rotated_jpeg(anger_photo))
    assert response.status_code == 200 and response.headers["x-face-count"] == "1"
    assert decoded(response.content).shape == decoded(anger_photo).shape  # upright, as the photo


@pytest.mark.parametrize("row", MATRIX, ids=[row.id for row in MATRIX])
def test_the_bad_input_matrix_gets_the_same_answers_from_annotate(
    row: Row, request: pytest.FixtureRequest
) -> None:
    """Every row of docs/hardening.md's matrix, its body and query sent to /annotate: same status and
    code (the batch row's files too: /annotate takes one), except that /annotate takes no JSON: 415."""
    call = row.build(lambda: request.getfixturevalue("anger_photo"))
    client: TestClient = request.getfixturevalue(call.app)
    _, _, query = call.path.partition("?")
    response = client.post(
        "/annotate" + (f"?{query}" if query else ""),
        files=call.files,
        data=call.data,
        content=call.content,
        headers=call.headers,
    )
    if call.headers.get("content-type") == "application/json":
        assert_error(response, 415, "expected_multipart")
    elif row.code == PREDICTION:
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/jpeg" and decoded(response.content).size > 0
    else:
        assert_error(response, row.status, row.code)


def test_the_service_states_are_json_errors_too(
    secured_client: TestClient, idle_client: TestClient, client: TestClient, small_png: bytes
) -> None:
    assert_error(secured_client.post("/annotate", files=file_part(small_png)), 401, "unauthorized")
    assert_error(idle_client.post("/annotate", files=file_part(small_png)), 503, "not_ready")
    assert_error(client.post("/annotate?faces=some", files=file_part(small_png)), 422, "invalid_request")
    assert_error(client.get("/annotate"), 405, "method_not_allowed")


def test_the_openapi_schema_describes_a_jpeg_answer_and_json_errors(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/annotate"]["post"]
    ok = operation["responses"]["200"]
    assert list(ok["content"]) == ["image/jpeg"]
    assert ok["content"]["image/jpeg"]["schema"] == {"type": "string", "format": "binary"}
    assert set(ok["headers"]) == {"X-Model-Id", "X-Model-Name", "X-Face-Count"}
    for status in ("400", "401", "408", "413", "415", "422", "503"):
        assert list(operation["responses"][status]["content"]) == ["application/json"], status
    assert "multipart/form-data" in operation["requestBody"]["content"]
    assert {p["name"] for p in operation["parameters"]} >= {"faces"}
