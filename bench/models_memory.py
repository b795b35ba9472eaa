"""Memory and load time of serving both shipped models side by side (EMOTION_MODELS).

``python -m bench.models_memory`` loads ``models/emotion_cnn.h5``, then ``models/emotion_cnn_neutral.h5``
into the same process, and prints the load times and the peak resident memory after each (Linux
``ru_maxrss``). The first load includes importing TensorFlow.
"""

from __future__ import annotations

import resource
import time

from app.core.config import SHIPPED_MODELS_DIR
from app.core.inference import load_model


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    for name in ("emotion_cnn", "emotion_cnn_neutral"):
        started = time.perf_counter()
        load_model(SHIPPED_MODELS_DIR / f"{name}.h5")
        print(f"{name}: loaded in {time.perf_counter() - started:.2f} s, peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
