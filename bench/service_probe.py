"""Probe the real service: face-found rates, median /predict latency, resident memory.

    python -m bench.service_probe [--data ../shared/data/CK+48] [--photos ../shared/data/photos] [--crops 100]

Starts ``python -m app`` (uvicorn, real socket on 127.0.0.1), waits for /ready, reads the server's
RSS after warm-up, then POSTs every photo and ``--crops`` CK+48 crops (seeded sample) one at a time.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def start_service(port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "EMOTION_PORT": str(port), "EMOTION_LOG_LEVEL": "warning", **(env or {})}
    process = subprocess.Popen([sys.executable, "-m", "app"], env=environment)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode}")
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the service did not become ready in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/CK+48"))
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/photos"))
    parser.add_argument("--crops", type=int, default=100)
    args = parser.parse_args()
    port = free_port()
    started = time.perf_counter()
    service = start_service(port)
    print(
        f"ready after {time.perf_counter() - started:.1f} s; RSS after warm-up {rss_mib(service.pid):.0f} MiB"
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            photos = sorted(p for p in args.photos.glob("*.jpg"))
            for photo in photos:
                body = client.post("/predict", files={"file": (photo.name, photo.read_bytes())}).json()
                print(
                    f"{photo.name}: face_found={body['face_found']} box={body['box']} -> {body['emotion']} "
                    f"{body['confidence']:.3f}"
                )
            crops = sorted(args.data.glob("*/*.png"))
            sample = random.Random(0).sample(crops, min(args.crops, len(crops)))
            latencies, found, correct = [], 0, 0
            for crop in sample:
                t0 = time.perf_counter()
                response = client.post("/predict", files={"file": (crop.name, crop.read_bytes())})
                latencies.append((time.perf_counter() - t0) * 1000)
                body = response.json()
                found += body["face_found"]
                correct += body["emotion"] == crop.parent.name
            print(
                f"CK+48 crops: face found in {found}/{len(sample)}; top-1 matches the folder for "
                f"{correct}/{len(sample)} (includes images the model trained on)"
            )
            p95 = sorted(latencies)[int(0.95 * (len(latencies) - 1))]
            print(
                f"/predict latency over {len(sample)} sequential CK+48 requests: median "
                f"{statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms"
            )
            print(f"RSS after the requests: {rss_mib(service.pid):.0f} MiB")
    finally:
        service.terminate()
        service.wait(timeout=30)


if __name__ == "__main__":
    main()
