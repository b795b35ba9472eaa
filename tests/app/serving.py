"""The app served over real HTTP by uvicorn in a thread of the test process, on a free 127.0.0.1 port.

Faster than ``python -m app`` in a subprocess (the model is the session's, already loaded) and still a
real server: browsers and command-line clients talk to it over TCP.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

START_TIMEOUT_S = 60


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Yields the base URL once the server (and the app's lifespan) has started; stops it after."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_keep_alive=20))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
