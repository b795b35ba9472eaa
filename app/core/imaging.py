"""Decoding uploaded bytes into an image array, safely.

Pillow does the decoding: it reads the header lazily, so the pixel count is checked *before* any
pixel is decoded (decompression bombs), and it covers JPEG, PNG, BMP, WebP, TIFF and GIF in every
mode (gray, RGB, RGBA, palette, CMYK, 16-bit). The format is sniffed from the bytes; the file name
and the declared content type are never trusted.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.core.errors import EmptyImageError, ImageDecodeError, ImageTooLargeError, UnsupportedImageTypeError

SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF", "GIF")
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError, MemoryError)


def sniff_format(data: bytes) -> str | None:
    """The Pillow format name from the file's magic bytes, or None if it is none we accept."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"BM"):
        return "BMP"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


def _to_array(image: Image.Image) -> np.ndarray:
    """A decoded Pillow image to uint8 ``(H, W)`` gray or ``(H, W, 3)`` RGB."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        wide = np.asarray(image).astype(np.int64)
        return (np.clip(wide, 0, 65535) >> 8).astype(np.uint8)
    if mode == "F":
        return np.clip(np.asarray(image), 0, 255).astype(np.uint8)
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("1", "L"):
        return np.asarray(image.convert("L"))
    if image.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def _open(data: bytes) -> Image.Image:
    if not data:
        raise EmptyImageError("the uploaded file is empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise UnsupportedImageTypeError(
            "the file is not a supported image: send JPEG, PNG, BMP, WebP, TIFF or GIF"
        )
    try:
        return Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as exc:  # Pillow's own cap; ours (max_pixels) is checked next
        raise ImageTooLargeError(f"the image header declares too many pixels ({exc})") from exc
    except (UnidentifiedImageError, *_DECODE_ERRORS) as exc:
        raise ImageDecodeError(f"the {fmt} file could not be decoded: {exc}") from exc


def decode_image(data: bytes, *, max_pixels: int) -> np.ndarray:
    """Decode one uploaded file to a uint8 gray or RGB array, EXIF orientation applied.

    Raises an :class:`~app.core.errors.ImageError` subclass naming the problem: empty, unsupported type,
    undecodable or truncated, or more than ``max_pixels`` pixels (checked from the header).
    """
    image = _open(data)
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
            )
        fmt = image.format
        try:
            image.load()
        except _DECODE_ERRORS as exc:
            raise ImageDecodeError(f"the {fmt} file is truncated or corrupt: {exc}") from exc
        # Unreadable EXIF: keep the pixels as stored rather than reject a decodable image.
        with contextlib.suppress(*_DECODE_ERRORS):
            image = ImageOps.exif_transpose(image)
        try:
            array = _to_array(image)
        except _DECODE_ERRORS as exc:
            raise ImageDecodeError(f"the {fmt} image could not be converted: {exc}") from exc
    if array.size == 0:
        raise ImageDecodeError("the image has no pixels")
    return np.ascontiguousarray(array)
