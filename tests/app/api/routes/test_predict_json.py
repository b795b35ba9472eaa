"""POST /predict and /predict/batch with JSON bodies (base64 images): the same answers as multipart, the
same limits and error shape, and an OpenAPI schema that describes both bodies."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.json_uploads import json_upload_limit
from tests.app.asgi import http_scope
from tests.app.conftest import (
    LIMITED_BATCH_FILES,
    LIMITED_UPLOAD_BYTES,
    assert_error,
    assert_prediction,
    file_part,
    uniform_gray,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_one_image_gets_the_same_answer_as_multipart(
    client: TestClient, anger_photo: bytes, labels: list[str]
) -> None:
    as_json = client.post("/predict", json={"b64": b64(anger_photo)})
    assert as_json.status_code == 200, as_json.text
    as_file = client.post("/predict", files=file_part(anger_photo, "a.jpg", "image/jpeg")).json()
    body = as_json.json()
    assert_prediction(body, labels)
    assert body["face_found"] is True and body["box"] == as_file["box"]
    assert body["probabilities"] == pytest.approx(as_file["probabilities"], abs=1e-6)
    assert body["model"] == "emotion_cnn" and body["model_id"] == as_file["model_id"]


def test_query_parameters_work_as_with_multipart(client: TestClient, anger_photo: bytes) -> None:
    off = client.post("/predict?faces=off", json={"b64": b64(anger_photo)}).json()
    assert (off["face_detection"], off["face_found"], off["box"]) == ("off", False, None)
    every = client.post("/predict?faces=all", json={"b64": b64(anger_photo)}).json()
    assert every["face_detection"] == "all" and len(every["faces"]) >= 1
    assert_error(client.post("/predict?faces=some", json={"b64": b64(anger_photo)}), 422, "invalid_request")


def test_a_batch_is_answered_in_order_with_errors_per_instance(
    client: TestClient, anger_photo: bytes, labels: list[str]
) -> None:
    instances = [
        {"b64": b64(anger_photo)},
        {"b64": "%%% not base64"},
        {"b64": b64(uniform_gray())},
        {"b64": ""},
    ]
    response = client.post("/predict/batch", json={"instances": instances})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [item["ok"] for item in results] == [True, False, True, False]
    assert all(item["filename"] is None for item in results)
    assert results[0]["result"]["face_found"] is True and results[2]["result"]["face_found"] is False
    for item in (results[0], results[2]):
        assert_prediction(item["result"], labels)
    assert results[1]["error"]["code"] == "invalid_base64"
    assert results[3]["error"]["code"] == "empty_file"


def test_the_batch_shape_matches_multipart(client: TestClient, anger_photo: bytes) -> None:
    as_json = client.post("/predict/batch?faces=off", json={"instances": [{"b64": b64(anger_photo)}]}).json()
    as_files = client.post(
        "/predict/batch?faces=off", files=[("file", ("a.jpg", anger_photo, "image/jpeg"))]
    ).json()
    assert set(as_json) == set(as_files) == {"results"}
    assert set(as_json["results"][0]) == set(as_files["results"][0])
    json_result, file_result = as_json["results"][0]["result"], as_files["results"][0]["result"]
    assert json_result["probabilities"] == pytest.approx(file_result["probabilities"], abs=1e-6)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict", {}),
        ("/predict", {"b64": 5}),
        ("/predict", {"b64": "aGk=", "name": "x"}),
        ("/predict", [{"b64": "aGk="}]),
        ("/predict/batch", {"instances": []}),
        ("/predict/batch", {"instances": [{"image": "aGk="}]}),
        ("/predict/batch", {"b64": "aGk="}),
    ],
    ids=["empty", "not-a-string", "extra-key", "a-list", "no-instances", "wrong-instance-key", "single-body"],
)
def test_schema_errors_are_422(client: TestClient, path: str, body: Any) -> None:
    error = assert_error(client.post(path, json=body), 422, "invalid_request")
    assert "body" in error["message"]


def test_a_body_that_is_not_json_is_422(client: TestClient) -> None:
    response = client.post("/predict", content=b"\x89PNG", headers={"content-type": "application/json"})
    assert "JSON" in assert_error(response, 422, "invalid_request")["message"]


def test_other_content_types_are_415_naming_both_bodies(client: TestClient) -> None:
    for path in ("/predict", "/predict/batch"):
        response = client.post(path, content=b"aGk=", headers={"content-type": "text/plain"})
        message = assert_error(response, 415, "expected_multipart")["message"]
        assert "multipart/form-data" in message and "application/json" in message


def test_too_many_instances_is_422(limited_client: TestClient, small_png: bytes) -> None:
    instances = [{"b64": b64(small_png)}] * (LIMITED_BATCH_FILES + 1)
    response = limited_client.post("/predict/batch", json={"instances": instances})
    assert_error(response, 422, "too_many_files")
    instances = instances[:LIMITED_BATCH_FILES]
    assert limited_client.post("/predict/batch", json={"instances": instances}).status_code == 200


def test_an_image_over_the_file_limit_is_413_but_its_base64_fits_the_body_limit(
    limited_client: TestClient,
) -> None:
    """The file limit applies to the decoded bytes: a file just over it is 413 even though its base64 is
    within the JSON body limit (which is sized for base64); one just under it gets through decoding."""
    over = b"\x89PNG" + b"\0" * (LIMITED_UPLOAD_BYTES - 3)
    assert len(json.dumps({"b64": b64(over)})) < json_upload_limit(LIMITED_UPLOAD_BYTES)
    assert_error(limited_client.post("/predict", json={"b64": b64(over)}), 413, "upload_too_large")
    batch = limited_client.post("/predict/batch", json={"instances": [{"b64": b64(over)}]}).json()
    assert batch["results"][0]["error"]["code"] == "upload_too_large"
    under = over[:-1]
    assert limited_client.post("/predict", json={"b64": b64(under)}).status_code != 413


def test_a_declared_json_body_over_its_limit_is_refused_unread(limited_client: TestClient) -> None:
    limit = json_upload_limit(LIMITED_UPLOAD_BYTES)
    body = json.dumps({"b64": "A" * limit}).encode()
    response = limited_client.post("/predict", content=body, headers={"content-type": "application/json"})
    error = assert_error(response, 413, "upload_too_large")
    assert str(limit) in error["message"]


def test_a_streamed_json_body_stops_being_read_at_its_limit(client: TestClient) -> None:
    """No Content-Length: the body is counted as it arrives and cut off at the JSON limit."""
    chunk, total = 64 * 1024, 60 * 1024 * 1024
    consumed = 0

    def chunks() -> Iterator[bytes]:
        nonlocal consumed
        consumed += 8
        yield b'{"b64": "'
        while consumed < total:
            consumed += chunk
            yield b"A" * chunk

    body = chunks()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": next(body), "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope("/predict", [(b"content-type", b"application/json")])
    client.portal.call(client.app, scope, receive, send)
    answer = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert (sent[0]["status"], answer["error"]["code"]) == (413, "upload_too_large")
    assert consumed <= json_upload_limit(10 * 1024 * 1024) + 2 * chunk < total / 4


def test_the_openapi_schema_describes_both_bodies(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, key in (("/predict", "b64"), ("/predict/batch", "instances")):
        content = paths[path]["post"]["requestBody"]["content"]
        assert set(content) == {"multipart/form-data", "application/json"}
        schema = content["application/json"]["schema"]
        assert schema["required"] == [key] and schema["additionalProperties"] is False
        assert "$ref" not in json.dumps(schema)  # inlined: nothing dangling
    instances = paths["/predict/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    instances = instances["properties"]["instances"]
    assert (instances["minItems"], instances["maxItems"]) == (1, 16)
    assert instances["items"]["required"] == ["b64"]
    assert "404" in paths["/predict"]["post"]["responses"]  # unknown_model
