"""Drawing the results on the image: a box and a label over each face, then a JPEG (``POST /annotate``).

OpenCV draws (rectangles, Hershey text); sizes follow the image, so a label is as readable on a 48x48
crop as on a 12-megapixel photo. Faces are coloured by rank (largest first) with the demo page's
palette, so a face has the same colour in the JPEG and on the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from app.core.imaging import decode_image

if TYPE_CHECKING:  # pipeline imports this module to annotate; the type alone is needed here
    from app.core.pipeline import FaceResult

# RGB, in face order (largest first); app/api/static/demo.js uses the same colours.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 200, 83),
    (255, 179, 0),
    (41, 121, 255),
    (213, 0, 249),
    (255, 61, 0),
    (0, 229, 255),
)
JPEG_QUALITY = 90
JPEG_MAX_SIDE = 65_500  # the JPEG format stores at most 65,535 pixels a side
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TEXT_COLOR = (255, 255, 255)


def label_text(face: FaceResult) -> str:
    return f"{face.emotion} {face.confidence:.0%}"


def draw_faces(image: np.ndarray, faces: Sequence[FaceResult]) -> np.ndarray:
    """A copy of ``image`` (gray or RGB) in RGB with each face's box and label drawn.

    A face without a box (no face found: the whole image was classified) gets its label in the top left
    corner, marked as the whole image.
    """
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
    height, width = canvas.shape[:2]
    thickness = max(2, round(min(height, width) / 160))
    font_scale = max(0.35, min(height, width) / 600)
    for rank, face in enumerate(faces):
        color = PALETTE[rank % len(PALETTE)]
        if face.box is None:
            _draw_label(canvas, f"whole image: {label_text(face)}", (0, 0), color, font_scale, below=True)
            continue
        box = face.box
        top_left, bottom_right = (box.x, box.y), (box.x + box.width - 1, box.y + box.height - 1)
        cv2.rectangle(canvas, top_left, bottom_right, color, thickness)  # crisp: no blending
        _draw_label(canvas, label_text(face), top_left, color, font_scale, below=False)
    return canvas


def _draw_label(
    canvas: np.ndarray,
    text: str,
    anchor: tuple[int, int],
    color: tuple[int, int, int],
    font_scale: float,
    *,
    below: bool,
) -> None:
    """White text on a filled ``color`` band, just above ``anchor`` (inside the box when there is no
    room above it, or when ``below``)."""
    stroke = max(1, round(font_scale * 2))
    (text_width, text_height), baseline = cv2.getTextSize(text, _FONT, font_scale, stroke)
    pad = max(2, stroke)
    band_height = text_height + baseline + 2 * pad
    x, y = anchor
    top = y if below or y < band_height else y - band_height
    right = min(canvas.shape[1] - 1, x + text_width + 2 * pad)
    cv2.rectangle(canvas, (x, top), (right, top + band_height), color, cv2.FILLED)
    origin = (x + pad, top + pad + text_height)
    cv2.putText(canvas, text, origin, _FONT, font_scale, _TEXT_COLOR, stroke, lineType=cv2.LINE_AA)


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """RGB pixels as JPEG bytes; an image wider or taller than JPEG allows is shrunk to fit."""
    height, width = rgb.shape[:2]
    if max(height, width) > JPEG_MAX_SIDE:
        scale = JPEG_MAX_SIDE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:  # OpenCV reports no reason; every decodable image within the size above encodes
        raise RuntimeError(f"OpenCV could not encode a {width}x{height} image as JPEG")
    return encoded.tobytes()


def annotate_image(data: bytes, faces: Sequence[FaceResult], *, max_pixels: int) -> bytes:
    """Decode ``data`` (upright, as for classifying), draw ``faces`` on it, and encode it as JPEG."""
    return encode_jpeg(draw_faces(decode_image(data, max_pixels=max_pixels), faces))
