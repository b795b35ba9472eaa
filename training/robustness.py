"""Image perturbations a client's photo may carry, for measuring a model's robustness.

Each takes and returns a ``uint8`` image (``(H, W)`` gray or ``(H, W, 3)`` RGB), before the shared
preprocessing, so a perturbed face reaches the model exactly as it would through the service.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from app.core.imaging import decode_image

Perturbation = Callable[[np.ndarray], np.ndarray]


def jpeg(quality: int) -> Perturbation:
    def apply(image: np.ndarray) -> np.ndarray:
        bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return decode_image(encoded.tobytes(), max_pixels=image.shape[0] * image.shape[1] + 1)

    return apply


def flip(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1])


def rotate(degrees: float) -> Perturbation:
    def apply(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
        return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)

    return apply


def brightness(factor: float) -> Perturbation:
    def apply(image: np.ndarray) -> np.ndarray:
        return np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)

    return apply


def warm_colour(image: np.ndarray) -> np.ndarray:
    """A gray face as a colour photo with a warm cast (indoor light): the RGB path of the service."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    tint = np.array([1.0, 0.85, 0.7], dtype=np.float32)
    return np.clip(gray[:, :, None].astype(np.float32) * tint, 0, 255).astype(np.uint8)


PERTURBATIONS: dict[str, Perturbation] = {
    "jpeg_q50": jpeg(50),
    "jpeg_q75": jpeg(75),
    "horizontal_flip": flip,
    "rotate_+10": rotate(10),
    "rotate_-10": rotate(-10),
    "brightness_+20%": brightness(1.2),
    "brightness_-20%": brightness(0.8),
    "colour_input": warm_colour,
}
