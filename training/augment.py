"""Augmentations for face crops: small shifts, rotations, scale, horizontal flip, brightness/contrast.

Applied to training batches only (in the input pipeline), never saved into the model.
"""

from __future__ import annotations

import keras
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
