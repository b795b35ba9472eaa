"""Graceful shutdown of the real process (``python -m app``) under load.

SIGTERM arrives while clients keep sending /predict and two uploads are still streaming their bodies.
What must hold: every request the service accepted (it wrote an access-log line for it) was answered
200 and that answer reached its client; the clients' other requests failed only at the transport
level, never with an error status, and never reached the app; the two half-sent uploads finish with
200 after the signal; new connections are refused while they do; the process exits by itself. A
second test shows the bound: a request that never finishes is cancelled after
EMOTION_SHUTDOWN_TIMEOUT_S and the process still exits.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from bench.load.services import OURS, Service
from tests.app.conftest import MODEL_PATH

pytestmark = pytest.mark.slow

LOAD_CLIENTS = 8


@dataclass
class Outcomes:
    """What the clients saw, by request id."""

    ok: set[str] = field(default_factory=set)  # answered 200
    statuses: dict[str, int] = field(default_factory=dict)  # answered anything else
    transport: dict[str, str] = field(default_factory=dict)  # no answer: the exception's name
    lock: threading.Lock = field(default_factory=threading.Lock)


def multipart(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="face.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def load_client(base_url: str, image: bytes, index: int, stop: threading.Event, seen: Outcomes) -> None:
    """Keeps sending until told to stop or the server refuses to connect."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for n in range(1_000_000):
            if stop.is_set():
                return
            request_id = f"load-{index}-{n}"
            try:
                response = client.post(
                    "/predict",
                    files={"file": ("face.png", image, "image/png")},
                    headers={"X-Request-ID": request_id},
                )
            except httpx.TransportError as exc:
                with seen.lock:
                    seen.transport[request_id] = type(exc).__name__
                if isinstance(exc, httpx.ConnectError):
                    return  # the port is closed: the server is going away
                continue
            with seen.lock:
                if response.status_code == 200:
                    seen.ok.add(request_id)
                else:
                    seen.statuses[request_id] = response.status_code


def slow_upload(
    port: int, image: bytes, request_id: str, sent_half: threading.Event, go_on: threading.Event
) -> int:
    """Headers and half the body, then waits for ``go_on``, then the rest; returns the status."""
    body, content_type = multipart(image)
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-ID: {request_id}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + body[: len(body) // 2])
        sent_half.set()
        assert go_on.wait(60)
        sock.sendall(body[len(body) // 2 :])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def log_entries(service: Service) -> list[dict]:
    entries = []
    for line in service.log_tail(chars=50_000_000).splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # TensorFlow's own start-up lines
    return entries


@pytest.fixture
def face_png(ckplus_dir: Path) -> bytes:
    return sorted((ckplus_dir / "happy").glob("*.png"))[0].read_bytes()


def test_sigterm_under_load_loses_no_accepted_request(face_png: bytes) -> None:
    # Two worker processes behind one port (EMOTION_WORKERS): each drains its own requests.
    env = {"EMOTION_LOG_LEVEL": "info", "EMOTION_SHUTDOWN_TIMEOUT_S": "30", "EMOTION_WORKERS": "2"}
    with Service(OURS, MODEL_PATH, env=env) as service:
        seen, stop = Outcomes(), threading.Event()
        clients = [
            threading.Thread(target=load_client, args=(service.base_url, face_png, i, stop, seen))
            for i in range(LOAD_CLIENTS)
        ]
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + 60
        while len(seen.ok) < 20 * LOAD_CLIENTS:  # the load is flowing
            assert time.monotonic() < deadline and not seen.statuses and not seen.transport, seen
            time.sleep(0.05)

        go_on, slow_status = threading.Event(), {}
        halves = [threading.Event() for _ in range(2)]

        def run_slow(i: int) -> None:
            slow_status[f"slow-{i}"] = slow_upload(service.port, face_png, f"slow-{i}", halves[i], go_on)

        slow = [threading.Thread(target=run_slow, args=(i,)) for i in range(2)]
        for thread in slow:
            thread.start()
        assert all(half.wait(30) for half in halves)
        time.sleep(0.5)  # the server has read their headers: these requests are accepted and in flight

        service.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while not refuses_connections(service.port):
            assert time.monotonic() < deadline, "the port still accepts connections 30 s after SIGTERM"
            time.sleep(0.05)
        refused_while_draining = service.process.poll() is None  # the slow uploads keep it alive
        go_on.set()
        for thread in slow:
            thread.join(60)
        stop.set()
        for thread in clients:
            thread.join(60)
        returncode = service.process.wait(timeout=60)  # it exits by itself
        entries = log_entries(service)

    assert refused_while_draining
    assert returncode in (0, -signal.SIGTERM), returncode
    assert slow_status == {"slow-0": 200, "slow-1": 200}
    access = {
        e["request_id"]: e["status"]
        for e in entries
        if e.get("logger") == "app.access" and e["path"] == "/predict"
    }
    accepted_load = {rid for rid in access if rid.startswith("load-")}
    assert {
        rid: status for rid, status in access.items() if status != 200
    } == {}  # no accepted request failed
    assert accepted_load == seen.ok  # each accepted request's 200 reached its client, and only those
    assert seen.statuses == {}  # no client ever got an error status
    assert not set(seen.transport) & set(access)  # the failed attempts never reached the app
    assert seen.transport, "no client attempt was refused: the signal came after the load had stopped"
    messages = [e.get("message", "") for e in entries]
    draining_at = next(i for i, m in enumerate(messages) if m.startswith("SIGTERM: not ready"))
    slow_logged_at = [i for i, e in enumerate(entries) if str(e.get("request_id", "")).startswith("slow-")]
    assert len(slow_logged_at) == 2 and min(slow_logged_at) > draining_at  # answered after the signal


def test_a_request_that_never_finishes_is_cut_off_at_the_shutdown_bound(face_png: bytes) -> None:
    env = {
        "EMOTION_LOG_LEVEL": "info",
        "EMOTION_SHUTDOWN_TIMEOUT_S": "2",
        "EMOTION_BODY_TIMEOUT_S": "600",
        "EMOTION_WORKERS": "1",  # one process (as in a Kubernetes pod); two: the test above
    }
    with Service(OURS, MODEL_PATH, env=env) as service:
        sent_half, answer = threading.Event(), []

        def stall() -> None:
            body, content_type = multipart(face_png)
            head = (
                f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            with socket.create_connection(("127.0.0.1", service.port), timeout=300) as sock:
                sock.sendall(head + body[: len(body) // 2])  # and never the rest
                sent_half.set()
                with contextlib.suppress(OSError):
                    answer.append(sock.recv(65536))  # whatever the server does when it gives up

        stalled = threading.Thread(target=stall, daemon=True)
        stalled.start()
        assert sent_half.wait(30)
        time.sleep(0.5)
        service.process.send_signal(signal.SIGTERM)
        # Without the bound it would wait for the body for up to 600 s (EMOTION_BODY_TIMEOUT_S).
        returncode = service.process.wait(timeout=120)
        messages = [e.get("message", "") for e in log_entries(service)]
    assert returncode in (0, -signal.SIGTERM), returncode
    assert any("timeout graceful shutdown exceeded" in m for m in messages), messages[-10:]
