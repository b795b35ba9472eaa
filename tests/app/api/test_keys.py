"""Several API keys over HTTP: each one works, the access log names it by its short hash only, no
key ever shows in a log line or an answer, and a key past its rate limit gets 429 with Retry-After."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.api_keys import key_id
from app.main import create_app
from tests.app.conftest import JsonLines, assert_error, file_part, json_log_lines, settings_for

KEYS = ["first-secret-key-9f1c", "second-secret-key-77ab"]
FILE_KEY = "file-secret-key-03de"
RATE = 3


@pytest.fixture
def logs() -> Iterator[JsonLines]:
    with json_log_lines() as handler:
        yield handler


@pytest.fixture
def keyed(model_path: Path, loaded_model, tmp_path: Path) -> Iterator[TestClient]:
    """Keys from all three settings, and a rate limit of RATE requests a minute per key."""
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"{FILE_KEY}\n")
    settings = settings_for(
        model_path,
        api_key=KEYS[0],
        api_keys=[KEYS[1]],
        api_keys_file=keys_file,
        rate_limit_per_minute=RATE,
    )
    with TestClient(create_app(settings, model=loaded_model), raise_server_exceptions=False) as client:
        yield client


def test_every_configured_key_is_accepted_and_logged_by_its_hash_only(
    keyed: TestClient, small_png: bytes, logs: JsonLines
) -> None:
    for key in [*KEYS, FILE_KEY]:
        response = keyed.post("/predict", files=file_part(small_png), headers={"X-API-Key": key})
        assert response.status_code == 200, response.text
        assert keyed.get("/model", headers={"X-API-Key": key}).status_code == 200
    access = logs.access()
    assert [entry["api_key_id"] for entry in access] == [key_id(k) for k in (*KEYS, FILE_KEY) for _ in (0, 1)]
    text = "\n".join(logs.lines)
    assert not any(key in text for key in (*KEYS, FILE_KEY))


def test_a_wrong_key_is_401_and_never_echoed(keyed: TestClient, small_png: bytes, logs: JsonLines) -> None:
    wrong = "not-a-key-but-looks-secret-5e5e"
    for headers in ({}, {"X-API-Key": wrong}, {"X-API-Key": KEYS[0] + "x"}):
        response = keyed.post("/predict", files=file_part(small_png), headers=headers)
        assert_error(response, 401, "unauthorized")
        assert wrong not in response.text and KEYS[0] not in response.text
    assert [entry["api_key_id"] for entry in logs.access()] == [None, None, None]
    assert wrong not in "\n".join(logs.lines)


def test_a_key_past_its_rate_limit_gets_429_with_retry_after(
    keyed: TestClient, small_png: bytes, logs: JsonLines
) -> None:
    first, second = ({"X-API-Key": key} for key in KEYS)
    for _ in range(RATE):
        assert keyed.post("/predict", files=file_part(small_png), headers=first).status_code == 200
    for refused in (
        keyed.post("/predict", files=file_part(small_png), headers=first),
        keyed.post("/predict/batch", files=[("file", ("a.png", small_png))], headers=first),
        keyed.get("/model", headers=first),
    ):
        error = assert_error(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert KEYS[0] not in error["message"]
    assert keyed.get("/model", headers=second).status_code == 200  # its own budget
    assert keyed.get("/ready").status_code == 200  # probes are never limited
    assert keyed.get("/health").status_code == 200
    refusals = [entry for entry in logs.access() if entry["status"] == 429]
    assert {(entry["error_code"], entry["api_key_id"]) for entry in refusals} == {
        ("rate_limited", key_id(KEYS[0]))
    }


def test_the_schema_declares_429_only_with_a_rate_limit(
    keyed: TestClient, secured_client: TestClient
) -> None:
    limited = keyed.get("/openapi.json").json()["paths"]
    plain = secured_client.get("/openapi.json").json()["paths"]
    for path, method in (("/predict", "post"), ("/predict/batch", "post"), ("/model", "get")):
        assert "429" in limited[path][method]["responses"]
        assert "429" not in plain[path][method]["responses"]
        assert "401" in plain[path][method]["responses"]
