"""Decoding a large JPEG at full size against at a reduced size, and the whole ``prepare`` step.

    python -m bench.decode_speed [--photo ../shared/data/photos/anger_01.jpg] [--sides 640,1600,3200,4800]
                                 [--min-side 1280] [--repeats 20] [--detector auto|yunet|haar]

For each long side the photo is enlarged to (Lanczos, JPEG quality 90, in memory), it times, median
of ``--repeats`` in this one thread:

- ``pillow full``: ``app.core.imaging.decode_image`` (full size, as before);
- ``pillow draft``: ``decode_reduced`` with ``--min-side`` (Pillow's ``draft``: libjpeg's DCT scaling);
- ``opencv reduced``: ``cv2.imdecode`` with the same ``IMREAD_REDUCED_COLOR_*`` factor, for comparison
  (no EXIF orientation, no pixel-count check before decoding: not what the service uses);
- ``prepare full`` / ``prepare reduced``: decoding, face detection, crop and preprocessing
  (``app.core.pipeline.prepare``), as a request does before the model.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from app.core.faces import make_detector
from app.core.imaging import decode_image, decode_reduced, jpeg_reduction
from app.core.pipeline import prepare
from app.core.preprocessing import InputSpec

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = REPO_ROOT.parent / "shared" / "data" / "photos" / "anger_01.jpg"
OPENCV_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
MAX_PIXELS = 40_000_000


def median_ms(work: Callable[[], object], repeats: int) -> float:
    work()  # warm
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        work()
        times.append(time.perf_counter() - tick)
    return 1000 * statistics.median(times)


def enlarged_jpeg(photo: Path, long_side: int) -> bytes:
    with Image.open(photo) as image:
        rgb = image.convert("RGB")
    scale = long_side / max(rgb.size)
    rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.LANCZOS)
    buffer = io.BytesIO()
    rgb.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decode_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--sides", default="640,1600,3200,4800", help="long sides, comma-separated")
    parser.add_argument("--min-side", type=int, default=1280, help="EMOTION_DECODE_MIN_SIDE")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--detector", default="auto", choices=["auto", "yunet", "haar"], help="for prepare")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    detector, spec = make_detector(args.detector, min_confidence=0.5), InputSpec(48, 48, 1)
    print(f"photo {args.photo}; detector {detector.name}; min side {args.min_side}; "
          f"median of {args.repeats}; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print("| long side | pixels | reduction | pillow full ms | pillow draft ms | opencv reduced ms "
          "| prepare full ms | prepare reduced ms |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for side in (int(part) for part in args.sides.split(",")):
        data = enlarged_jpeg(args.photo, side)
        full = decode_image(data, max_pixels=MAX_PIXELS)
        height, width = full.shape[:2]
        reduction = jpeg_reduction(width, height, args.min_side)
        buffer = np.frombuffer(data, np.uint8)

        def run_prepare(min_side: int | None, data: bytes = data) -> object:
            return prepare(data, spec=spec, detector=detector, mode="largest", max_pixels=MAX_PIXELS,
                           margin=0.0, align=False, min_side=min_side)  # fmt: skip

        figures = [
            median_ms(lambda data=data: decode_image(data, max_pixels=MAX_PIXELS), args.repeats),
            median_ms(
                lambda data=data: decode_reduced(data, max_pixels=MAX_PIXELS, min_side=args.min_side),
                args.repeats,
            ),
            median_ms(lambda b=buffer, r=reduction: cv2.imdecode(b, OPENCV_FLAGS[r]), args.repeats),
            median_ms(lambda: run_prepare(None), args.repeats),
            median_ms(lambda: run_prepare(args.min_side), args.repeats),
        ]
        cells = " | ".join(f"{value:.1f}" for value in figures)
        print(f"| {side} | {width}x{height} | 1/{reduction} | {cells} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
