"""Loading the Keras model with its metadata, and running it: through a compiled TensorFlow function
(runtime ``keras``) or through LiteRT after a checked conversion (``litert``, ``app.core.litert_runtime``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from app.core.model_metadata import ModelMetadata, file_sha256, metadata_path_for, read_metadata
from app.core.preprocessing import InputSpec

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
log = logging.getLogger(__name__)

Runtime = Literal["keras", "litert"]


class ModelLoadError(RuntimeError):
    """The configured model cannot be served; the message names the path and the fix."""


@dataclass
class LoadedModel:
    path: Path
    metadata: ModelMetadata
    model_id: str
    _call: Callable[[np.ndarray], object]  # the compiled tf.function, or the LiteRT interpreter
    runtime: Runtime = "keras"

    @property
    def spec(self) -> InputSpec:
        return self.metadata.input_spec

    @property
    def labels(self) -> list[str]:
        return self.metadata.labels

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """``(N, H, W, C)`` float32 -> ``(N, classes)`` float64 probabilities (rows sum to 1)."""
        probabilities = np.asarray(self._call(batch), dtype=np.float64)
        return probabilities / probabilities.sum(axis=1, keepdims=True)


_FIX = "set EMOTION_MODEL_PATH to a Keras .h5 trained by `python -m training` (with its .json beside it)"


def load_model(
    path: Path,
    *,
    runtime: Runtime = "keras",
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> LoadedModel:
    """Load ``path`` and the metadata beside it; raise :class:`ModelLoadError` naming what is wrong.

    ``litert``: the converted model is kept in ``cache_dir`` and run with ``threads`` threads (None:
    LiteRT's default); the serving process does not import TensorFlow.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist; {_FIX}")
    meta_path = metadata_path_for(path)
    if not meta_path.is_file():
        raise ModelLoadError(f"model metadata {meta_path} does not exist; {_FIX}")
    try:
        metadata = read_metadata(meta_path)
    except (ValueError, OSError) as exc:
        raise ModelLoadError(f"model metadata {meta_path} is invalid ({exc}); {_FIX}") from exc
    digest = file_sha256(path)
    if metadata.model_sha256 and metadata.model_sha256 != digest:
        raise ModelLoadError(f"{meta_path} describes another file (SHA-256 differs from {path}); {_FIX}")
    if runtime == "litert":
        call, input_shape, outputs = _load_litert(path, digest, cache_dir=cache_dir, threads=threads)
    else:
        call, input_shape, outputs = _load_keras(path)
    spec = metadata.input_spec
    model_spec = InputSpec.from_shape(input_shape)
    if model_spec != spec or outputs != len(metadata.labels):
        raise ModelLoadError(
            f"{path} takes {model_spec.shape} and gives {outputs} outputs, "
            f"but its metadata says {spec.shape} and {len(metadata.labels)} labels; {_FIX}"
        )
    loaded = LoadedModel(
        path=path, metadata=metadata, model_id=f"{path.stem}@{digest[:12]}", _call=call, runtime=runtime
    )
    loaded.predict_batch(np.zeros((1, *spec.shape), dtype=np.float32))  # trace and warm up
    log.info(
        "loaded %s (%s, %d params, %s)", loaded.model_id, metadata.architecture, metadata.params, runtime
    )
    return loaded


def _load_keras(path: Path) -> tuple[Callable[[np.ndarray], object], tuple, int]:
    import keras  # heavy: imported only when a model is loaded
    import tensorflow as tf

    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # h5py, keras and TF raise many types for a bad file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(f"model file {path} is not a loadable Keras model ({reason}); {_FIX}") from exc
    call = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec(model.input_shape, tf.float32)],
        reduce_retracing=True,
    )
    return call, tuple(model.input_shape), int(model.output_shape[-1])


def _load_litert(
    path: Path, digest: str, *, cache_dir: Path | None, threads: int | None
) -> tuple[Callable[[np.ndarray], object], tuple, int]:
    from app.core.litert_runtime import ConversionError, load_litert

    if cache_dir is None:
        raise ModelLoadError("the litert runtime needs a cache folder for the converted model")
    try:
        model, _ = load_litert(path, digest, cache_dir=cache_dir, threads=threads)
    except ConversionError as exc:
        raise ModelLoadError(f"model file {path} cannot be served with LiteRT: {exc}; {_FIX}") from exc
    return model, model.input_shape, model.output_width
