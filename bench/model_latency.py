"""Single-image and batch-32 CPU inference speed of models, measured by the same code for each.

    python -m bench.model_latency models/emotion_cnn.h5 paper-v1 [--repeats 200]

Each argument is a Keras .h5 file or a registered architecture name (built untrained: the speed of a
model does not depend on its weights). Each model runs through the same compiled function the
service uses; prints median and p95 milliseconds per single-image call, images/s at batch 32,
the parameter count and the size of the .h5 file.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from app.core.preprocessing import InputSpec


def _load(target: str) -> tuple[keras.Model, str]:
    if target.endswith(".h5") and Path(target).is_file():
        return keras.models.load_model(target, compile=False), f"{Path(target).stat().st_size / 1e6:.2f} MB"
    from training.architectures import get_architecture

    return get_architecture(target).build(), "untrained build"


def measure(model: keras.Model, repeats: int) -> dict[str, float]:
    spec = InputSpec.from_shape(model.input_shape)
    call = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec((None, *spec.shape), tf.float32)],
        reduce_retracing=True,
    )
    rng = np.random.default_rng(0)
    single = rng.random((1, *spec.shape), dtype=np.float32)
    batch = rng.random((32, *spec.shape), dtype=np.float32)
    for _ in range(10):
        call(single).numpy()
        call(batch).numpy()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call(single).numpy()
        times.append((time.perf_counter() - started) * 1000)
    batch_runs = max(5, repeats // 10)
    started = time.perf_counter()
    for _ in range(batch_runs):
        call(batch).numpy()
    batch_rate = 32 * batch_runs / (time.perf_counter() - started)
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "p95_ms": times[int(0.95 * (len(times) - 1))],
        "batch32_images_per_s": batch_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", help=".h5 files or architecture names")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs")
    print(
        f"{'model':<40} {'params':>12} {'file':>16} {'1-image median ms':>18} "
        f"{'p95 ms':>8} {'batch-32 img/s':>15}"
    )
    results = {}
    for target in args.models:
        model, size = _load(target)
        figures = measure(model, args.repeats)
        results[target] = figures
        print(
            f"{target:<40} {model.count_params():>12,} {size:>16} {figures['median_ms']:>18.2f} "
            f"{figures['p95_ms']:>8.2f} {figures['batch32_images_per_s']:>15.1f}"
        )
    if len(results) > 1:
        first, *others = results
        for other in others:
            ratio = results[other]["median_ms"] / results[first]["median_ms"]
            print(f"single-image speed-up of {first} over {other}: {ratio:.1f}x")


if __name__ == "__main__":
    main()
