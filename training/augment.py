"""Augmentations for face crops: small shifts, rotations, scale, horizontal flip, brightness/contrast;
for web photos also blur, JPEG artefacts and occlusion.

Applied to training batches only (in the input pipeline), never saved into the model.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers


def face_augmenter(seed: int) -> keras.Sequential:
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(12 / 360, fill_mode="reflect", seed=seed + 1),
            layers.RandomZoom(0.12, fill_mode="reflect", seed=seed + 2),
            layers.RandomTranslation(0.08, 0.08, fill_mode="reflect", seed=seed + 3),
            layers.RandomBrightness(0.2, value_range=(0.0, 1.0), seed=seed + 4),
            layers.RandomContrast(0.3, seed=seed + 5),
        ],
        name="face_augmenter",
    )


def _gaussian_kernel(sigma: float = 1.0, size: int = 5) -> tf.Tensor:
    axis = tf.range(size, dtype=tf.float32) - (size - 1) / 2
    one = tf.exp(-(axis**2) / (2 * sigma**2))
    kernel = tf.tensordot(one, one, axes=0)
    return tf.reshape(kernel / tf.reduce_sum(kernel), (size, size, 1, 1))


def random_blur(images: tf.Tensor, rate: float, seed: int) -> tf.Tensor:
    """A Gaussian blur (sigma 1 px) on about ``rate`` of a ``(B, H, W, C)`` batch: out-of-focus cameras."""
    channels = images.shape[-1]
    kernel = tf.tile(_gaussian_kernel(), (1, 1, channels, 1))
    blurred = tf.nn.depthwise_conv2d(images, kernel, strides=(1, 1, 1, 1), padding="SAME")
    pick = tf.random.uniform((tf.shape(images)[0], 1, 1, 1), seed=seed) < rate
    return tf.where(pick, blurred, images)


def random_erasing(images: tf.Tensor, rate: float, seed: int) -> tf.Tensor:
    """On about ``rate`` of the batch, one rectangle (4-25% of the area) filled with one random gray:
    hands, glasses, hair and masks over part of the face."""
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    area = tf.random.uniform((batch,), 0.04, 0.25, seed=seed)
    aspect = tf.exp(tf.random.uniform((batch,), -0.8, 0.8, seed=seed + 1))
    h = tf.sqrt(area * aspect) * tf.cast(height, tf.float32)
    w = tf.sqrt(area / aspect) * tf.cast(width, tf.float32)
    top = tf.random.uniform((batch,), seed=seed + 2) * (tf.cast(height, tf.float32) - h)
    left = tf.random.uniform((batch,), seed=seed + 3) * (tf.cast(width, tf.float32) - w)
    rows = tf.cast(tf.range(height), tf.float32)[None, :, None]
    cols = tf.cast(tf.range(width), tf.float32)[None, None, :]
    inside = (
        (rows >= top[:, None, None])
        & (rows < (top + h)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + w)[:, None, None])
    )
    pick = tf.random.uniform((batch, 1, 1), seed=seed + 4) < rate
    mask = tf.expand_dims(inside & pick, -1)
    fill = tf.random.uniform((batch, 1, 1, 1), seed=seed + 5)
    return tf.where(mask, fill * tf.ones_like(images), images)


def random_jpeg(image: tf.Tensor, rate: float, seed: int) -> tf.Tensor:
    """One ``(H, W, C)`` image in [0, 1] through a JPEG round trip at quality 30-95, with ``rate``."""
    return tf.cond(
        tf.random.uniform((), seed=seed) < rate,
        lambda: tf.image.random_jpeg_quality(image, 30, 95, seed=seed + 1),
        lambda: image,
    )


def web_photo_augmenter(seed: int) -> keras.Sequential:
    """Geometry and light of web and camera photos: stronger than :func:`face_augmenter`."""
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(15 / 360, fill_mode="reflect", seed=seed + 1),
            layers.RandomZoom((-0.15, 0.2), fill_mode="reflect", seed=seed + 2),
            layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 3),
            layers.RandomBrightness(0.25, value_range=(0.0, 1.0), seed=seed + 4),
            layers.RandomContrast(0.35, seed=seed + 5),
        ],
        name="web_photo_augmenter",
    )


def augment_web_batch(images: tf.Tensor, augmenter: keras.Sequential, seed: int) -> tf.Tensor:
    """A ``(B, H, W, C)`` batch in [0, 1] through geometry/light, blur and occlusion."""
    images = tf.clip_by_value(augmenter(images, training=True), 0.0, 1.0)
    images = random_blur(images, rate=0.15, seed=seed + 10)
    return random_erasing(images, rate=0.4, seed=seed + 20)
