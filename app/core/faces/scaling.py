"""Bringing an image to the size a detector searches well at, and boxes back to the image's pixels.

Large photos are shrunk (detection cost grows with the pixels; a face that is a few percent of a
photo is still tens of pixels after shrinking). Small images, such as a 48x48 face crop or a
thumbnail, are padded (a face that fills the frame needs some context around it) and enlarged.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_SMALL_SIDE = 144  # images whose short side is below this are padded, then enlarged to it
_PAD_FRACTION = 0.25
_MAX_SIDE = 1280  # enlarging stops here (extreme aspect ratios)


@dataclass(frozen=True)
class Scaled:
    """An image prepared for detection: ``image`` pixel = (original + ``pad``) * ``scale``."""

    image: np.ndarray
    scale: float
    pad: int
    small: bool  # the original was small (a crop or a thumbnail): a face in it fills much of it

    def to_original(self, x: float, y: float) -> tuple[float, float]:
        return x / self.scale - self.pad, y / self.scale - self.pad


def for_detection(image: np.ndarray, long_side: int, min_short_side: int) -> Scaled | None:
    """``image`` padded when small, then resized so its long side is at most ``long_side``.

    None when its short side would be below ``min_short_side`` at that size: too thin to hold a face
    (a 1 x 40000 strip), and not worth resizing.
    """
    height, width = image.shape[:2]
    small = min(height, width) < _SMALL_SIDE
    pad = round(_PAD_FRACTION * min(height, width)) if small else 0
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    padded_h, padded_w = image.shape[:2]
    scale = min(long_side / max(padded_h, padded_w), 1.0)
    if min(padded_h, padded_w) < _SMALL_SIDE:
        # Enlarged, but never past _MAX_SIDE on the long side: a 1 x 40000 strip must not become a
        # 144 x 5760000 one (it holds no face anyway).
        scale = min(_SMALL_SIDE / min(padded_h, padded_w), _MAX_SIDE / max(padded_h, padded_w))
    if min(padded_h, padded_w) * scale < min_short_side:
        return None
    if scale != 1.0:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation)
    return Scaled(np.ascontiguousarray(image), scale, pad, small)
