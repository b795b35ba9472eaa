"""A replica dies under load behind the load balancer: how many client requests are lost?

    python -m bench.replica_kill [--replicas 2] [--clients 16] [--seconds 30] [--kill-at 10]
                                 [--signal KILL] [--template deploy/nginx/nginx.conf] [--json out.json]

Starts ``--replicas`` copies of the service (``python -m app`` on free local ports, each with the
compose replicas' one-thread TensorFlow settings) and the compose profile's nginx in front of them
(``bench/local_balancer.py``: deploy/nginx/nginx.conf, or ``--template``, pointed at those ports). Then
``--clients`` closed-loop clients (httpx, one connection each) POST a CK+48 face to ``/predict``
through nginx for ``--seconds``; ``--kill-at`` seconds in, the first replica gets ``--signal`` (KILL:
it dies at once, mid-request; TERM: it drains). Every request counts: a 200 with probabilities is
served, anything else (another status, a transport error) is lost. Printed: requests, served, lost by
kind, latency p50 / p99 / max before and after the kill, and the upstream failures nginx logged (the
requests it had to send again). Exit status 1 when a request was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import re
import shlex
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from bench.load.services import OURS, REPO_ROOT, Service, free_port
from bench.load.wrk import percentile
from bench.local_balancer import NGINX_CONF, LocalNginx

DEFAULT_MODEL = REPO_ROOT / "models" / "emotion_cnn.h5"
CKPLUS_DIR = Path(os.environ.get("CKPLUS_DIR", REPO_ROOT.parent / "shared" / "data" / "CK+48"))
# The compose "scaled" replicas' settings (docker-compose.yml): one TensorFlow thread each.
REPLICA_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}
_NGINX_ERROR = re.compile(r"\*\d+ (?P<reason>.+?)(?: while |, client:)")


@dataclass(frozen=True)
class Outcome:
    """One request: when it was sent (seconds from the start), what came back, how long it took."""

    sent_s: float
    latency_ms: float
    status: int | None  # None: no answer (transport error)
    error: str | None = None  # the transport error's type, or the error code of a non-200

    @property
    def served(self) -> bool:
        return self.status == 200 and self.error is None


@dataclass(frozen=True)
class Phase:
    """The figures of the requests sent before, or at and after, the kill."""

    requests: int
    served: int
    lost: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class Report:
    requests: int
    served: int
    lost: int
    lost_by_kind: dict[str, int]
    before: Phase
    after: Phase
    nginx_upstream_errors: dict[str, int]
    settings: dict[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.requests > 0 and self.lost == 0


def lost_kind(outcome: Outcome) -> str:
    if outcome.status is None:
        return f"transport: {outcome.error}"
    if outcome.status == 200:
        return f"200 without a prediction: {outcome.error}"
    return f"{outcome.status} {outcome.error or ''}".strip()


def phase(outcomes: Sequence[Outcome]) -> Phase:
    latencies = [o.latency_ms for o in outcomes]
    served = sum(o.served for o in outcomes)
    return Phase(
        requests=len(outcomes),
        served=served,
        lost=len(outcomes) - served,
        p50_ms=round(percentile(latencies, 50), 1),
        p99_ms=round(percentile(latencies, 99), 1),
        max_ms=round(max(latencies), 1) if latencies else float("nan"),
    )


def upstream_errors(error_log: str) -> dict[str, int]:
    """nginx's error-level lines about replicas, counted by reason (warnings such as "temporarily
    disabled" follow from them and are left out)."""
    reasons = Counter(
        match.group("reason")
        for line in error_log.splitlines()
        if "[error]" in line and (match := _NGINX_ERROR.search(line))
    )
    return dict(reasons.most_common())


def summarize(
    outcomes: Sequence[Outcome], kill_at_s: float, error_log: str, settings: dict[str, object] | None = None
) -> Report:
    lost = [o for o in outcomes if not o.served]
    return Report(
        requests=len(outcomes),
        served=len(outcomes) - len(lost),
        lost=len(lost),
        lost_by_kind=dict(Counter(map(lost_kind, lost)).most_common()),
        before=phase([o for o in outcomes if o.sent_s < kill_at_s]),
        after=phase([o for o in outcomes if o.sent_s >= kill_at_s]),
        nginx_upstream_errors=upstream_errors(error_log),
        settings=settings or {},
    )


def render(report: Report) -> str:
    lines = [
        f"{report.requests} requests: {report.served} served, {report.lost} lost"
        + (
            " (" + ", ".join(f"{n} {kind}" for kind, n in report.lost_by_kind.items()) + ")"
            if report.lost
            else ""
        ),
        "| phase | requests | served | lost | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, figures in (("before the kill", report.before), ("kill and after", report.after)):
        lines.append(
            f"| {name} | {figures.requests} | {figures.served} | {figures.lost} | "
            f"{figures.p50_ms} | {figures.p99_ms} | {figures.max_ms} |"
        )
    errors = report.nginx_upstream_errors
    lines.append(
        "nginx upstream errors (a replica failed a request; sent again where the config allows): "
        + (", ".join(f"{n} x {reason}" for reason, n in errors.items()) if errors else "none")
    )
    lines.append("PASS: no request lost" if report.passed else "FAIL: requests were lost")
    return "\n".join(lines)


# --- running it -------------------------------------------------------------------------------------


def prediction_error(response: httpx.Response) -> str | None:
    """None for a 200 with probabilities; else the error code (or why the answer is not one)."""
    try:
        body = response.json()
    except ValueError:
        return "not JSON"
    if response.status_code == 200:
        return None if isinstance(body, dict) and body.get("probabilities") else "no probabilities"
    try:
        return str(body["error"]["code"])
    except (KeyError, TypeError):
        return "no error code"


async def drive(
    base_url: str, image: bytes, *, clients: int, seconds: float, kill_at: float, kill: Callable[[], None]
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    start = time.perf_counter()
    files = {"file": ("face.png", image, "image/png")}

    async def client() -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=httpx.Timeout(60)) as http:
            while (sent := time.perf_counter() - start) < seconds:
                try:
                    response = await http.post("/predict", files=files)
                    status, error = response.status_code, prediction_error(response)
                except httpx.HTTPError as exc:
                    status, error = None, type(exc).__name__
                latency = (time.perf_counter() - start - sent) * 1000
                outcomes.append(Outcome(round(sent, 4), round(latency, 2), status, error))

    async def killer() -> None:
        await asyncio.sleep(kill_at)
        kill()

    await asyncio.gather(killer(), *(client() for _ in range(clients)))
    return outcomes


def default_image() -> bytes:
    happy = sorted((CKPLUS_DIR / "happy").glob("*.png"))
    if not happy:
        raise SystemExit(f"no CK+48 images in {CKPLUS_DIR / 'happy'}: set CKPLUS_DIR")
    return happy[0].read_bytes()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replica_kill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16, help="concurrent closed-loop clients (default 16)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the load runs (default 30)")
    parser.add_argument("--kill-at", type=float, default=10.0, help="seconds into the load (default 10)")
    parser.add_argument(
        "--signal", choices=["KILL", "TERM"], default="KILL", help="sent to the first replica"
    )
    parser.add_argument(
        "--template", type=Path, default=NGINX_CONF, help="nginx config (default: the compose one)"
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--json", type=Path, default=None, help="also write the report to this JSON file")
    args = parser.parse_args(argv)
    if args.replicas < 2:
        parser.error("--replicas must be at least 2: one is killed, the others must serve")
    if not 0 < args.kill_at < args.seconds:
        parser.error("--kill-at must fall within --seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    image = default_image()
    command = shlex.join(["python", "-m", "bench.replica_kill", *(sys.argv[1:] if argv is None else argv)])
    settings = {
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": round(os.getloadavg()[0], 2),
        "replicas": args.replicas,
        "clients": args.clients,
        "seconds": args.seconds,
        "kill_at_s": args.kill_at,
        "signal": args.signal,
        "template": str(args.template),
    }
    print(f"{command}\n{settings['date']}; load average {settings['load_average']}", flush=True)
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="replica-kill-") as work:
        replicas = []
        for i in range(args.replicas):
            replica = stack.enter_context(Service(OURS, args.model, env=REPLICA_ENV))
            print(f"  replica {i}: port {replica.port}, ready in {replica.started_in_s:.1f} s", flush=True)
            replicas.append(replica)
        balancer = stack.enter_context(
            LocalNginx([r.port for r in replicas], free_port(), Path(work), template=args.template)
        )
        victim = replicas[0]

        def kill() -> None:
            os.kill(victim.pid, getattr(signal, f"SIG{args.signal}"))
            print(f"  SIG{args.signal} sent to replica 0 (pid {victim.pid})", flush=True)

        outcomes = asyncio.run(
            drive(
                balancer.base_url,
                image,
                clients=args.clients,
                seconds=args.seconds,
                kill_at=args.kill_at,
                kill=kill,
            )
        )
        error_log = balancer.error_log.read_text() if balancer.error_log.exists() else ""
    report = summarize(outcomes, args.kill_at, error_log, settings)
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(asdict(report) | {"passed": report.passed}, indent=2))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
