"""The one preprocessing path from a decoded image to model input, shared by training and serving.

Images everywhere in this project are ``uint8`` arrays, either ``(H, W)`` gray or ``(H, W, 3)`` RGB.
Model input is ``float32`` in ``[0, 1]`` (pixels / 255) of the model's own height, width and channels.
Training imports this module, so a picture gets exactly the same numbers on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

PIXEL_SCALE = 1.0 / 255.0

# Written into every model's metadata so a reader knows what was done to the pixels.
DESCRIPTION = {
    "color": "RGB; gray replicated to 3 channels for 3-channel models, ITU-R 601 luma for 1-channel models",
    "resize": "cv2.resize: INTER_AREA when shrinking, INTER_LINEAR when enlarging",
    "scale": "pixels / 255",
}


@dataclass(frozen=True)
class InputSpec:
    """What a model takes: height, width and channels (1 gray or 3 RGB)."""

    height: int
    width: int
    channels: int

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"models take 1 or 3 channels, not {self.channels}")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"input size must be positive, got {self.height}x{self.width}")

    @classmethod
    def from_shape(cls, shape: Sequence[int | None]) -> InputSpec:
        """From a Keras input shape, with or without its batch dimension."""
        dims = [d for d in shape if d is not None][-3:]
        if len(dims) != 3:
            raise ValueError(f"expected an (H, W, C) input shape, got {tuple(shape)}")
        return cls(int(dims[0]), int(dims[1]), int(dims[2]))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8:
        raise ValueError(f"images are uint8 arrays, got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3):
        if min(image.shape[:2]) < 1:
            raise ValueError("image has no pixels")
        return
    raise ValueError(f"images are (H, W) gray or (H, W, 3) RGB, got shape {image.shape}")


def to_model_input(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """One image to a ``float32`` array of ``spec.shape``."""
    _check_image(image)
    if spec.channels == 1 and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    height, width = image.shape[:2]
    if (height, width) != (spec.height, spec.width):
        shrinking = spec.height <= height and spec.width <= width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        image = cv2.resize(image, (spec.width, spec.height), interpolation=interpolation)
    if image.ndim == 2:
        image = image[:, :, None]
        if spec.channels == 3:
            image = np.repeat(image, 3, axis=2)
    return image.astype(np.float32) * np.float32(PIXEL_SCALE)


def batch_to_model_input(images: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Several images to one ``(N, H, W, C)`` float32 batch."""
    out = np.empty((len(images), *spec.shape), dtype=np.float32)
    for i, image in enumerate(images):
        out[i] = to_model_input(image, spec)
    return out
