"""Model architectures by name, each with its default training recipe.

New architectures join with :func:`register`; the training loop only ever sees an
:class:`Architecture`. Every model ends in a layer named ``logits`` followed by a softmax, or (the
paper's) a softmax Dense named ``probabilities``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import keras
from keras import layers

NUM_CLASSES = 7


@dataclass(frozen=True)
class Recipe:
    """How an architecture is trained unless the command line says otherwise."""

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 1e-3
    augment: bool = False
    # Fraction of the *training subjects* held out to drive early stopping and LR decay (0: none).
    validation_fraction: float = 0.0
    # "plateau": halve the rate when the validation loss stalls (needs a validation fraction; constant
    # without one); "cosine": cosine decay to zero over all epochs, whatever the validation does.
    lr_schedule: Literal["plateau", "cosine"] = "plateau"
    early_stopping_patience: int = 0
    class_weighted: bool = False
    # Independently trained copies (seeds seed, seed+1, ...) averaged in one saved model (logits mean).
    members: int = 1


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    input_shape: tuple[int, int, int]
    builder: Callable[[tuple[int, int, int], int], keras.Model]
    recipe: Recipe = field(default_factory=Recipe)

    def build(self, num_classes: int = NUM_CLASSES) -> keras.Model:
        return self.builder(self.input_shape, num_classes)

    def count_params(self, num_classes: int = NUM_CLASSES) -> int:
        return int(self.build(num_classes).count_params())


ARCHITECTURES: dict[str, Architecture] = {}


def register(architecture: Architecture) -> Architecture:
    if architecture.name in ARCHITECTURES:
        raise ValueError(f"architecture {architecture.name!r} is already registered")
    ARCHITECTURES[architecture.name] = architecture
    return architecture


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise KeyError(f"unknown architecture {name!r}; known: {known}") from None


def _paper(input_shape: tuple[int, int, int], num_classes: int, *, second_block: bool) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(128, 5, padding="same", activation="relu")(inputs)
    x = layers.MaxPooling2D(2)(x)
    if second_block:
        x = layers.Conv2D(256, 5, padding="valid", activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="paper_v1" if second_block else "paper_v2")


def _compact(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    widths: tuple[int, ...],
    dropout: float,
    standardize: bool = False,
    stem_stride: int = 0,
    spatial_dropout: float = 0.1,
) -> keras.Model:
    """Conv-BN-ReLU pairs per stage, max-pool between stages, global average pooling, logits.

    ``standardize``: each image is first shifted and scaled to zero mean and unit variance (a
    parameter-free layer normalisation over all its pixels), so the network never sees how bright
    or how contrasted the photo was, only its pattern. ``stem_stride``: a strided conv before the
    stages (0: none).
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if standardize:
        # Over the flattened pixels: the .h5 loader of Keras 3.15 drops a multi-axis `axis` of
        # LayerNormalization (back to -1, one pixel's channels), while the default axis survives.
        x = layers.Reshape((-1,), name="standardize_flat")(x)
        x = layers.LayerNormalization(center=False, scale=False, name="standardize")(x)
        x = layers.Reshape(input_shape, name="standardize_image")(x)
    if stem_stride:
        # An early stride: one cheap conv at full resolution that halves it, so every later stage
        # runs on a quarter of the pixels (the speed of a 1M-parameter net at ~1.2 GFLOP/s per image).
        x = layers.Conv2D(widths[0], 3, strides=stem_stride, padding="same", use_bias=False, name="stem")(x)
        x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
        x = layers.ReLU(name="stem_relu")(x)
    for stage, width in enumerate(widths):
        for conv in range(2):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"s{stage}_conv{conv}")(x)
            x = layers.BatchNormalization(momentum=0.9, name=f"s{stage}_bn{conv}")(x)
            x = layers.ReLU(name=f"s{stage}_relu{conv}")(x)
        if stage < len(widths) - 1:
            x = layers.MaxPooling2D(2, name=f"s{stage}_pool")(x)
            x = layers.SpatialDropout2D(spatial_dropout, name=f"s{stage}_drop")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, outputs, name="compact")


PAPER_RECIPE = Recipe(epochs=20, batch_size=64, learning_rate=1e-3)
COMPACT_RECIPE = Recipe(
    epochs=100,
    batch_size=32,
    learning_rate=3e-3,
    augment=True,
    # A validation carve of ~10 training subjects halves the rate on plateaus. It is too noisy to pick
    # an epoch from: early stopping on it lost ~6 points in a first 10-fold run, so it is off.
    # (`--lr-schedule cosine --validation-fraction 0` scored the same on the first three folds.)
    validation_fraction=0.1,
    early_stopping_patience=0,
    class_weighted=True,
)

register(
    Architecture(
        "paper-v1",
        "the paper's Model 1: two 5x5 conv blocks (128, 256), Flatten, Dense 128, 128x128 RGB",
        (128, 128, 3),
        lambda shape, n: _paper(shape, n, second_block=True),
        PAPER_RECIPE,
    )
)
register(
    Architecture(
        "paper-v2",
        "the paper's Model 2: one 5x5 conv block (128), Flatten, Dense 128, 128x128 RGB",
        (128, 128, 3),
        lambda shape, n: _paper(shape, n, second_block=False),
        PAPER_RECIPE,
    )
)
register(
    Architecture(
        "compact-s",
        "3 stages of 3x3 conv-BN-ReLU pairs (16, 32, 64), global average pooling, 48x48 gray",
        (48, 48, 1),
        lambda shape, n: _compact(shape, n, widths=(16, 32, 64), dropout=0.3),
        COMPACT_RECIPE,
    )
)
register(
    Architecture(
        "compact-s-std",
        "compact-s on per-image standardised input (zero mean, unit variance), 48x48 gray",
        (48, 48, 1),
        lambda shape, n: _compact(shape, n, widths=(16, 32, 64), dropout=0.3, standardize=True),
        COMPACT_RECIPE,
    )
)
register(
    Architecture(
        "compact-m",
        "3 stages of 3x3 conv-BN-ReLU pairs (32, 64, 128), global average pooling, 48x48 gray",
        (48, 48, 1),
        lambda shape, n: _compact(shape, n, widths=(32, 64, 128), dropout=0.4),
        COMPACT_RECIPE,
    )
)

# Web photos (FER+ and CK+48 together): capacity for ~30K varied faces, sized for CPU serving.
REAL_FACES_RECIPE = Recipe(epochs=30, batch_size=64, learning_rate=2e-3, augment=True)
register(
    Architecture(
        "fer-s2",
        "stride-2 stem, 4 stages of 3x3 conv-BN-ReLU pairs (32, 64, 128, 256), GAP, standardised 48x48 gray",
        (48, 48, 1),
        lambda shape, n: _compact(
            shape, n, widths=(32, 64, 128, 256), dropout=0.4, standardize=True, stem_stride=2
        ),
        REAL_FACES_RECIPE,
    )
)
