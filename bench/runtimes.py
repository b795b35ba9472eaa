"""The two model runtimes side by side: memory and speed of ``keras`` against ``litert``.

    python -m bench.runtimes [--model models/emotion_cnn.h5] [--repeats 200] [--threads 1]

Each runtime is loaded in a fresh process (``app.core.inference.load_model``, as the service does),
so the RSS printed is what one server process holds for it: the interpreter, Python, NumPy and
OpenCV included (the service's own imports, ``app.core.pipeline``, are imported first). Then the
median and p95 latency of one image and of a batch of 32 through ``LoadedModel.predict_batch`` and
the largest probability difference from Keras on 256 random inputs. LiteRT's first start converts the
model (in a child process) into ``--cache-dir``; the figures are taken after that, on a warm cache.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO_ROOT / "models" / "emotion_cnn.h5"
RUNTIMES = ("keras", "litert")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds) * 1000
    return {
        "median_ms": round(float(np.median(values)), 3),
        "p95_ms": round(float(np.percentile(values, 95)), 3),
    }


def measure(
    runtime: str, model_path: Path, cache_dir: Path, repeats: int, threads: int | None
) -> dict[str, Any]:
    """Runs in the child process of one runtime."""
    import app.core.pipeline  # noqa: F401  (the service's own imports, in both runtimes alike)
    from app.core.inference import load_model

    baseline = rss_mib()
    started = time.perf_counter()
    model = load_model(model_path, runtime=runtime, cache_dir=cache_dir, threads=threads)  # type: ignore[arg-type]
    load_s = time.perf_counter() - started
    shape = model.spec.shape
    rng = np.random.default_rng(0)
    inputs = rng.random((256, *shape), dtype=np.float32)
    outputs = model.predict_batch(inputs)
    figures: dict[str, Any] = {"runtime": runtime, "load_s": round(load_s, 2)}
    for size in (1, 32):
        batch = inputs[:size]
        for _ in range(10):
            model.predict_batch(batch)
        times = []
        for _ in range(repeats):
            tick = time.perf_counter()
            model.predict_batch(batch)
            times.append(time.perf_counter() - tick)
        figures[f"batch{size}"] = percentiles_ms(times)
        figures[f"batch{size}"]["images_per_s"] = round(size / float(np.median(times)), 0)
    figures["rss_mib"] = round(rss_mib(), 0)
    figures["rss_added_mib"] = round(rss_mib() - baseline, 0)
    np.save(cache_dir / f"outputs-{runtime}.npy", outputs)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runtimes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None, help="LiteRT threads (default: LiteRT's)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: a fresh temporary folder")
    parser.add_argument("--child", choices=RUNTIMES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        figures = measure(args.child, args.model, args.cache_dir, args.repeats, args.threads)
        print(json.dumps(figures))
        return 0
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="bench-runtimes-"))
    print(f"model {args.model}; load average {os.getloadavg()[0]:.2f}; {args.repeats} repeats", flush=True)
    results = []
    for runtime in ("litert", *RUNTIMES):  # litert twice: the first run converts (cold cache)
        command = [sys.executable, "-m", "bench.runtimes", "--child", runtime, "--model", str(args.model),
                   "--repeats", str(args.repeats), "--cache-dir", str(cache_dir)]  # fmt: skip
        if args.threads:
            command += ["--threads", str(args.threads)]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(figures)
        print(json.dumps(figures), flush=True)
    keras_out = np.load(cache_dir / "outputs-keras.npy")
    litert_out = np.load(cache_dir / "outputs-litert.npy")
    print(f"largest probability difference on 256 random inputs: {np.abs(keras_out - litert_out).max():.2e}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
