"""Loading the Keras model with its metadata, and running it through a compiled function."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.core.model_metadata import ModelMetadata, file_sha256, metadata_path_for, read_metadata
from app.core.preprocessing import InputSpec

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The configured model cannot be served; the message names the path and the fix."""


@dataclass
class LoadedModel:
    path: Path
    metadata: ModelMetadata
    model_id: str
    _call: object  # the compiled tf.function

    @property
    def spec(self) -> InputSpec:
        return self.metadata.input_spec

    @property
    def labels(self) -> list[str]:
        return self.metadata.labels

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """``(N, H, W, C)`` float32 -> ``(N, classes)`` float64 probabilities (rows sum to 1)."""
        probabilities = np.asarray(self._call(batch), dtype=np.float64)  # type: ignore[operator]
        return probabilities / probabilities.sum(axis=1, keepdims=True)


_FIX = "set EMOTION_MODEL_PATH to a Keras .h5 trained by `python -m training` (with its .json beside it)"


def load_model(path: Path) -> LoadedModel:
    """Load ``path`` and the metadata beside it; raise :class:`ModelLoadError` naming what is wrong."""
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

    import keras  # heavy: imported only when a model is loaded
    import tensorflow as tf

    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # h5py, keras and TF raise many types for a bad file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(f"model file {path} is not a loadable Keras model ({reason}); {_FIX}") from exc
    spec = metadata.input_spec
    model_spec = InputSpec.from_shape(model.input_shape)
    if model_spec != spec or model.output_shape[-1] != len(metadata.labels):
        raise ModelLoadError(
            f"{path} takes {model_spec.shape} and gives {model.output_shape[-1]} outputs, "
            f"but its metadata says {spec.shape} and {len(metadata.labels)} labels; {_FIX}"
        )
    call = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec((None, *spec.shape), tf.float32)],
        reduce_retracing=True,
    )
    loaded = LoadedModel(path=path, metadata=metadata, model_id=f"{path.stem}@{digest[:12]}", _call=call)
    loaded.predict_batch(np.zeros((1, *spec.shape), dtype=np.float32))  # trace and warm up
    log.info("loaded %s (%s, %d params)", loaded.model_id, metadata.architecture, metadata.params)
    return loaded
