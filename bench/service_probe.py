"""Probe the real service: face-found rates, median /predict latency, resident memory.

    python -m bench.service_probe [--data ../shared/data/CK+48] [--photos ../shared/data/photos] [--crops 100]
                            [--model models/emotion_cnn.h5]

Starts ``python -m app`` (uvicorn, real socket on 127.0.0.1), waits for /ready, reads the server's
RSS after warm-up, then POSTs every photo and ``--crops`` CK+48 crops (seeded sample) one at a time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import httpx

from bench.load.services import OURS, REPO_ROOT, Service, rss_mib
from bench.load.wrk import percentile


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/CK+48"))
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/photos"))
    parser.add_argument("--crops", type=int, default=100)
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "emotion_cnn.h5")
    args = parser.parse_args()
    with Service(OURS, args.model.resolve()) as service:
        print(f"ready after {service.started_in_s:.1f} s; RSS after warm-up {rss_mib(service.pid):.0f} MiB")
        with httpx.Client(base_url=service.base_url, timeout=30) as client:
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
                data = crop.read_bytes()
                t0 = time.perf_counter()
                response = client.post("/predict", files={"file": (crop.name, data)})
                latencies.append((time.perf_counter() - t0) * 1000)
                body = response.json()
                found += body["face_found"]
                correct += body["emotion"] == crop.parent.name
            print(
                f"CK+48 crops: face found in {found}/{len(sample)}; top-1 matches the folder for "
                f"{correct}/{len(sample)} (includes images the model trained on)"
            )
            print(
                f"/predict latency over {len(sample)} sequential CK+48 requests: median "
                f"{statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 95):.1f} ms"
            )
            print(f"RSS after the requests: {rss_mib(service.pid):.0f} MiB")


if __name__ == "__main__":
    main()
