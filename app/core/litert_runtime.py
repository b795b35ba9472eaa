"""Serving the Keras model through LiteRT (``ai-edge-litert``): the ``.h5`` stays the artifact.

The first start converts the ``.h5`` to a ``.tflite`` in a child process (TensorFlow is loaded there
only, so its memory goes when the child exits), checks the converted model against Keras on a fixed
check batch and, if every probability is within :data:`TOLERANCE`, caches both the ``.tflite`` and
the Keras probabilities under the model's SHA-256. Every start (the first included) runs the check
batch through LiteRT again and compares it with the cached Keras probabilities, so a server never
answers from a model that disagrees with its ``.h5``; the serving process never imports TensorFlow.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

TOLERANCE = 1e-4  # largest difference of any probability from Keras's on the check batch
CHECK_BATCH_SIZE = 16
_PADDED_SIZES = (1, 2, 4, 8, 16, 32, 64)  # batches are padded up to one of these (fewer re-plannings)


class ConversionError(RuntimeError):
    """The model cannot be converted, or the converted model does not answer as Keras does."""


def check_batch(shape: tuple[int, ...]) -> np.ndarray:
    """The fixed inputs both runtimes must agree on: model input in [0, 1], plus black and white."""
    batch = np.random.default_rng(20261204).random((CHECK_BATCH_SIZE, *shape), dtype=np.float32)
    batch[0], batch[1] = 0.0, 1.0
    return batch


def cached_paths(cache_dir: Path, model_path: Path, digest: str) -> tuple[Path, Path]:
    """Where the ``.tflite`` and the Keras probabilities of the check batch are kept."""
    stem = f"{model_path.stem}-{digest}"
    return cache_dir / f"{stem}.tflite", cache_dir / f"{stem}.check.npy"


class LiteRTModel:
    """A ``.tflite`` run by LiteRT's interpreter; thread-safe (calls are serialised)."""

    def __init__(self, tflite_path: Path, *, threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(tflite_path), num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch_size = 0
        self._lock = threading.Lock()
        shape = self._interpreter.get_input_details()[0]["shape"]
        self.input_shape = (None, *(int(side) for side in shape[1:]))
        self.output_width = int(self._interpreter.get_output_details()[0]["shape"][-1])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        count = len(batch)
        size = next((s for s in _PADDED_SIZES if s >= count), count)
        padded = np.zeros((size, *batch.shape[1:]), dtype=np.float32)
        padded[:count] = batch
        with self._lock:
            if size != self._batch_size:
                self._interpreter.resize_tensor_input(self._input, padded.shape)
                self._interpreter.allocate_tensors()
                self._batch_size = size
            self._interpreter.set_tensor(self._input, padded)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output)[:count].copy()


def _convert(model_path: Path, tflite_path: Path, check_path: Path) -> str | None:
    """Runs in a child process: convert, compare with Keras, cache. Returns the problem, or None."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf

        model = keras.models.load_model(model_path, compile=False, safe_mode=True)
        flat = tf.lite.TFLiteConverter.from_keras_model(model).convert()
        batch = check_batch(tuple(model.input_shape[1:]))
        expected = np.asarray(model(batch, training=False), dtype=np.float32)
    except Exception as exc:  # TF and Keras raise many types for a model they cannot take
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"could not be converted to LiteRT ({reason})"
    tflite_path.parent.mkdir(parents=True, exist_ok=True)
    partial = tflite_path.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(flat)
    problem = _disagreement(LiteRTModel(partial, threads=1)(batch), expected)
    if problem is not None:
        partial.unlink()
        return problem
    partial_check = check_path.with_suffix(f".{os.getpid()}.partial")
    with partial_check.open("wb") as out:
        np.save(out, expected)
    partial_check.replace(check_path)
    partial.replace(tflite_path)  # last: a .tflite in the cache always has its check beside it
    return None


def _disagreement(got: np.ndarray, expected: np.ndarray) -> str | None:
    if got.shape != expected.shape:
        return f"LiteRT answers shape {got.shape}, Keras {expected.shape}"
    worst = float(np.abs(got.astype(np.float64) - expected).max())
    if not worst <= TOLERANCE:
        return f"LiteRT differs from Keras by {worst:.2e} on the check batch (more than {TOLERANCE:.0e})"
    return None


def convert_in_child(model_path: Path, tflite_path: Path, check_path: Path) -> None:
    """Convert and cache in a spawned process; raise :class:`ConversionError` naming the problem."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        problem = pool.submit(_convert, model_path, tflite_path, check_path).result()
    if problem is not None:
        raise ConversionError(problem)


def load_litert(
    model_path: Path, digest: str, *, cache_dir: Path, threads: int | None
) -> tuple[LiteRTModel, Path]:
    """The LiteRT model for ``model_path`` (converted once per SHA-256), checked against Keras."""
    tflite_path, check_path = cached_paths(cache_dir, model_path, digest)
    if not (tflite_path.is_file() and check_path.is_file()):
        convert_in_child(model_path, tflite_path, check_path)
    try:
        model = LiteRTModel(tflite_path, threads=threads)
        expected = np.load(check_path)
    except (ValueError, OSError, RuntimeError) as exc:
        raise ConversionError(f"the cached {tflite_path} cannot be loaded ({exc}); delete it") from exc
    problem = _disagreement(model(check_batch(model.input_shape[1:])), expected)
    if problem is not None:
        raise ConversionError(f"{problem}; the cache {tflite_path} is stale or damaged: delete it")
    return model, tflite_path
