"""Starting the two servers under test as real processes (uvicorn on a free 127.0.0.1 port)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

OURS = "ours"
NAIVE = "naive"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants now (a multi-worker service: the parent and its workers)."""
    tree, index = [pid], 0
    while index < len(tree):
        for task in Path(f"/proc/{tree[index]}/task").glob("*"):
            try:
                tree += [int(child) for child in (task / "children").read_text().split()]
            except OSError:  # the process or thread has just ended
                continue
        index += 1
    return tree


def _own_rss_mib(pid: int) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:  # it has just ended
        return 0.0
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants now (``VmRSS`` added up), in MiB."""
    if not Path(f"/proc/{pid}").exists():
        raise RuntimeError(f"no process {pid}")
    return sum(_own_rss_mib(each) for each in process_tree(pid))


def worker_rss_mib(pid: int) -> list[float]:
    """Resident memory of each process of the service (the parent first), in MiB."""
    return [_own_rss_mib(each) for each in process_tree(pid)]


def _own_cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by every thread of ``pid`` and of its descendants."""
    return sum(_own_cpu_seconds(each) for each in process_tree(pid))


def command_for(kind: str, port: int) -> list[str]:
    if kind == OURS:
        return [sys.executable, "-m", "app"]
    if kind == NAIVE:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.naive_service:app",
            "--host=127.0.0.1",
            f"--port={port}",
            "--log-level=warning",
            "--no-access-log",
        ]
    raise ValueError(f"unknown service {kind!r}")


@dataclass
class Service:
    """One server process; ``with Service(...) as service:`` starts it and waits until it is ready."""

    kind: str  # OURS or NAIVE
    model: Path
    env: dict[str, str] = field(default_factory=dict)  # extra EMOTION_* settings (ours only)
    ready_timeout_s: float = 300
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    started_in_s: float = 0.0
    _log: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> Service:
        self.port = free_port()
        environment = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            # Ours: same host/port mechanism as production, logs at warning like the naive one (no
            # access lines on either side).
            "EMOTION_MODEL_PATH": str(self.model),
            "EMOTION_HOST": "127.0.0.1",
            "EMOTION_PORT": str(self.port),
            "EMOTION_LOG_LEVEL": "warning",
            "NAIVE_MODEL_PATH": str(self.model),
            **self.env,
        }
        self._log = tempfile.TemporaryFile()
        started = time.perf_counter()
        self.process = subprocess.Popen(
            command_for(self.kind, self.port),
            env=environment,
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.started_in_s = time.perf_counter() - started
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the {self.kind} service exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the {self.kind} service was not ready after {self.ready_timeout_s:.0f} s")

    def log_tail(self, chars: int = 3000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-chars:]

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.base_url}{path}", timeout=10) as response:
            return json.load(response)

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=body, headers={"Content-Type": content_type}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def batching(self) -> dict[str, float] | None:
        """The batcher's counters (``GET /model``); None for the naive service."""
        return self.get_json("/model")["batching"] if self.kind == OURS else None

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
