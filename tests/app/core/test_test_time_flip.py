"""Test-time flip: the softmax of the mean logits, each image with its own mirror, in one model call."""

from __future__ import annotations

import numpy as np

from app.core.test_time_flip import average_views, with_test_time_flip


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_average_views_is_the_softmax_of_the_mean_logits() -> None:
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 1.5, 0.3]])
    views = [softmax(row) for row in logits]
    np.testing.assert_allclose(average_views(views), softmax(logits.mean(axis=0)), atol=1e-12)
    np.testing.assert_allclose(average_views([views[0], views[0]]), views[0], atol=1e-12)
    # Row-wise on (N, classes) views as well.
    other = np.array([[0.1, 0.2, 0.3], [1.0, -1.0, 0.0]])
    both = average_views([softmax(logits), softmax(other)])
    np.testing.assert_allclose(both, softmax((logits + other) / 2), atol=1e-12)


def test_each_image_is_paired_with_its_own_mirror_in_one_call() -> None:
    calls: list[int] = []
    weights = np.random.default_rng(0).normal(size=(4 * 6, 3))

    def model(batch: np.ndarray) -> np.ndarray:  # not mirror-symmetric: a fixed linear map of the pixels
        calls.append(len(batch))
        return softmax(batch.reshape(len(batch), -1) @ weights)

    images = np.random.default_rng(1).random((5, 4, 6, 1)).astype(np.float32)
    flipped = with_test_time_flip(model)(images)
    assert calls == [10]  # one call: the five images and their five mirror images
    for image, row in zip(images, flipped, strict=True):
        expected = average_views([model(image[None])[0], model(image[None, :, ::-1])[0]])
        np.testing.assert_allclose(row, expected, atol=1e-12)
        # The mirror image gets the same answer.
        np.testing.assert_allclose(with_test_time_flip(model)(image[None, :, ::-1])[0], row, atol=1e-12)
