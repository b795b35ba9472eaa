"""Several server processes on one port (``EMOTION_WORKERS`` > 1): uvicorn's own supervisor.

The parent binds the port, then starts the workers (spawned processes), each of which builds the app
with ``app.main:create_app`` from the environment's settings: its own event loop, model, batcher and
decoding threads. The parent loads no model. It checks the model once before binding, in a child
process, so that a bad model stops the start-up with one line and TensorFlow's memory is not held by
the parent for the life of the service.

Shutdown: on SIGTERM or SIGINT the parent closes its copy of the listening socket and passes SIGTERM
to each worker, which drains and finishes its requests in flight as a single process does
(``app/api/shutdown.py``); the port refuses new connections once every worker has stopped listening.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import shutil
import socket
import tempfile
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from app.api.metrics import MULTIPROC_ENV, multiprocess_dir
from app.core.config import Settings

APP_FACTORY = "app.main:create_app"


def server_options(settings: Settings, log_config: dict[str, Any]) -> dict[str, Any]:
    """uvicorn's options, the same for one process and for several."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": log_config,
        "timeout_keep_alive": settings.keep_alive_s,  # longer than the clients' own idle timeouts
        # SIGTERM: stop accepting, give the requests in flight this long, then exit (app/api/shutdown.py)
        "timeout_graceful_shutdown": settings.shutdown_timeout_s,
        "limit_concurrency": 512,  # beyond this many connections a process answers 503 at once
        "backlog": 1024,
        "server_header": False,
    }


def worker_config(settings: Settings, log_config: dict[str, Any]) -> uvicorn.Config:
    """The config each worker is started with: the app factory, built there from the environment."""
    return uvicorn.Config(
        APP_FACTORY, factory=True, workers=settings.workers, **server_options(settings, log_config)
    )


def _model_problem(settings: Settings) -> str | None:
    """Runs in a child process: load the model as a worker will, and say what is wrong, if anything.

    Every served model (EMOTION_MODELS); with the litert runtime each is also converted once, for
    every worker, into the cache."""
    from app.core.inference import ModelLoadError
    from app.main import load_model_for

    try:
        for path in settings.served_model_paths:  # the default first
            load_model_for(settings, path)
    except ModelLoadError as exc:
        return str(exc)
    return None


def check_model_in_child(settings: Settings) -> str | None:
    """The model's problem, or None; checked in a spawned process, whose memory goes when it exits."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_model_problem, settings).result()


def provide_prometheus_dir() -> None:
    """Workers share metrics through files (prometheus-client's multiprocess mode): give them a fresh
    folder unless one is configured; it is removed when the parent exits."""
    if multiprocess_dir() is not None:
        return
    folder = tempfile.mkdtemp(prefix="emotion-metrics-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ[MULTIPROC_ENV] = folder


class Supervisor(Multiprocess):
    """uvicorn's supervisor; on shutdown it also stops listening itself, so the port refuses new
    connections once the workers have closed theirs (the parent's copy would keep accepting them into
    the backlog, where nobody answers)."""

    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().terminate_all()

    @property
    def failed_to_start(self) -> bool:
        return any(process.exitcode == STARTUP_FAILURE for process in self.processes)


def serve_workers(settings: Settings, log_config: dict[str, Any]) -> int:
    """Bind the port and run ``settings.workers`` worker processes until a termination signal."""
    config = worker_config(settings, log_config)
    sock: socket.socket = config.bind_socket()
    supervisor = Supervisor(config, sockets=[sock])
    supervisor.run()
    return 1 if supervisor.failed_to_start else 0
