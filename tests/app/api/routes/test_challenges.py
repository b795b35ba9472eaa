"""The expression challenge end to end: POST /challenges, frames over /stream?challenge=ID, verify.

Frames are CK+48 crops of one subject who posed both expressions (a genuine sequence) and of another
subject (a swapped face). Steps are drawn from a pool of two (happy, surprise) so the test knows them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.core.inference import LoadedModel
from app.main import create_app
from tests.app.conftest import API_KEY, settings_for

SUBJECT, OTHER = "S067", "S136"  # both posed happy and surprise; the model reads both clearly; faces unalike


@pytest.fixture(scope="module")
def challenge_client(model_path: Path, loaded_model: LoadedModel) -> Iterator[TestClient]:
    settings = settings_for(
        model_path,
        challenge_pool=["happy", "surprise"],
        challenge_max_steps=2,
        challenge_hold_frames=3,
        challenge_secret="a test secret of enough bytes....",
        stream_max_fps=10_000,
    )
    with TestClient(create_app(settings, model=loaded_model)) as client:
        yield client


def frames_of(ckplus_dir: Path, subject: str, emotion: str) -> list[bytes]:
    files = sorted((ckplus_dir / emotion).glob(f"{subject}_*.png"))
    assert len(files) >= 3, (subject, emotion)
    return [f.read_bytes() for f in files[:3]]


def take(client: TestClient, challenge_id: str, frames: list[bytes]) -> list[dict[str, Any]]:
    """Send the frames one at a time (each answered before the next: nothing dropped)."""
    out = []
    with client.websocket_connect(f"/stream?challenge={challenge_id}") as ws:
        ws.send_text(json.dumps({"faces": "largest"}))
        assert json.loads(ws.receive_text())["type"] == "ready"
        for frame in frames:
            ws.send_bytes(frame)
            message = json.loads(ws.receive_text())
            assert message["type"] == "frame", message
            out.append(message["challenge"])
    return out


def new_challenge(client: TestClient) -> dict[str, Any]:
    response = client.post("/challenges")
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(body["steps"]) == ["happy", "surprise"]
    assert body["hold_frames"] == 3 and body["id"] and body["expires_at"]
    return body


def sequence(ckplus_dir: Path, steps: list[str], subjects: tuple[str, ...] | None = None) -> list[bytes]:
    subjects = subjects or (SUBJECT,) * len(steps)
    return [
        frame for step, who in zip(steps, subjects, strict=True) for frame in frames_of(ckplus_dir, who, step)
    ]


def verify(client: TestClient, token: str) -> dict[str, Any]:
    response = client.post("/challenges/verify", json={"token": token})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_genuine_sequence_passes_and_its_token_verifies_once(
    challenge_client: TestClient, ckplus_dir: Path
) -> None:
    challenge = new_challenge(challenge_client)
    progress = take(challenge_client, challenge["id"], sequence(ckplus_dir, challenge["steps"]))
    assert [p["status"] for p in progress] == ["pending"] * 5 + ["passed"]
    token = progress[-1]["token"]
    assert token and all(p["token"] is None for p in progress[:-1])
    first = verify(challenge_client, token)
    assert (
        first["valid"] and first["challenge_id"] == challenge["id"] and first["steps"] == challenge["steps"]
    )
    assert verify(challenge_client, token) == {
        "valid": False,
        "reason": "already_used",
        "challenge_id": None,
        "steps": None,
        "passed_at": None,
    }


def test_a_tampered_token_is_refused(challenge_client: TestClient, ckplus_dir: Path) -> None:
    challenge = new_challenge(challenge_client)
    token = take(challenge_client, challenge["id"], sequence(ckplus_dir, challenge["steps"]))[-1]["token"]
    header, payload, signature = token.split(".")
    other_sig = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert verify(challenge_client, f"{header}.{payload}.{other_sig}")["reason"] == "invalid_signature"
    assert verify(challenge_client, f"{header}.{payload[:-2]}xx.{signature}")["valid"] is False
    assert verify(challenge_client, "garbage")["reason"] == "invalid_token"
    assert verify(challenge_client, token)["valid"]  # the genuine one still verifies


def test_a_replayed_photo_fails(challenge_client: TestClient, ckplus_dir: Path) -> None:
    challenge = new_challenge(challenge_client)
    photo = frames_of(ckplus_dir, SUBJECT, challenge["steps"][0])[0]
    progress = take(challenge_client, challenge["id"], [photo] * 12)
    assert progress[-1]["status"] == "pending" and progress[-1]["step"] == 1  # stuck: never passes


def test_wrong_order_fails(challenge_client: TestClient, ckplus_dir: Path) -> None:
    challenge = new_challenge(challenge_client)
    progress = take(challenge_client, challenge["id"], sequence(ckplus_dir, challenge["steps"][::-1]))
    assert progress[-1]["status"] == "failed" and progress[-1]["reason"] == "wrong_order"
    assert all(p["token"] is None for p in progress)


def test_a_face_that_changes_mid_challenge_fails(challenge_client: TestClient, ckplus_dir: Path) -> None:
    challenge = new_challenge(challenge_client)
    frames = sequence(ckplus_dir, challenge["steps"], (SUBJECT, OTHER))
    progress = take(challenge_client, challenge["id"], frames)
    assert progress[-1]["status"] == "failed" and progress[-1]["reason"] == "face_changed"


def test_a_challenge_is_single_use(challenge_client: TestClient, ckplus_dir: Path) -> None:
    challenge = new_challenge(challenge_client)
    take(challenge_client, challenge["id"], frames_of(ckplus_dir, SUBJECT, "happy")[:1])
    with challenge_client.websocket_connect(f"/stream?challenge={challenge['id']}") as ws:
        assert json.loads(ws.receive_text())["error"]["code"] == "challenge_unavailable"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1008


def test_an_expired_challenge_fails(model_path: Path, loaded_model: LoadedModel, ckplus_dir: Path) -> None:
    settings = settings_for(model_path, challenge_pool=["happy", "surprise"], challenge_ttl_s=0.001)
    with TestClient(create_app(settings, model=loaded_model)) as client:
        challenge = client.post("/challenges").json()
        with client.websocket_connect(f"/stream?challenge={challenge['id']}") as ws:
            assert json.loads(ws.receive_text())["error"]["code"] == "challenge_unavailable"


def test_expiry_mid_way_fails(model_path: Path, loaded_model: LoadedModel, ckplus_dir: Path) -> None:
    settings = settings_for(model_path, challenge_pool=["happy", "surprise"], challenge_ttl_s=2)
    with TestClient(create_app(settings, model=loaded_model)) as client:
        challenge = client.post("/challenges").json()
        with client.websocket_connect(f"/stream?challenge={challenge['id']}") as ws:
            time.sleep(2.1)
            ws.send_bytes(frames_of(ckplus_dir, SUBJECT, challenge["steps"][0])[0])
            assert json.loads(ws.receive_text())["type"] == "ready"
            message = json.loads(ws.receive_text())
    assert message["challenge"]["status"] == "failed" and message["challenge"]["reason"] == "expired"


def test_the_number_open_is_bounded(model_path: Path, loaded_model: LoadedModel) -> None:
    settings = settings_for(model_path, challenge_max_open=2)
    with TestClient(create_app(settings, model=loaded_model)) as client:
        assert [client.post("/challenges").status_code for _ in range(3)] == [200, 200, 503]
        assert client.post("/challenges").json()["error"]["code"] == "too_many_challenges"


def test_a_token_from_another_secret_is_refused(
    model_path: Path, loaded_model: LoadedModel, challenge_client: TestClient, ckplus_dir: Path
) -> None:
    challenge = new_challenge(challenge_client)
    token = take(challenge_client, challenge["id"], sequence(ckplus_dir, challenge["steps"]))[-1]["token"]
    other = settings_for(model_path, challenge_secret="another secret of enough bytes...")
    with TestClient(create_app(other, model=loaded_model)) as client:
        assert (
            client.post("/challenges/verify", json={"token": token}).json()["reason"] == "invalid_signature"
        )


def test_challenges_need_the_api_key_when_one_is_set(secured_client: TestClient) -> None:
    assert secured_client.post("/challenges").status_code == 401
    assert secured_client.post("/challenges", headers={"X-API-Key": API_KEY}).status_code == 200
    assert secured_client.post("/challenges/verify", json={"token": "x"}).status_code == 401
