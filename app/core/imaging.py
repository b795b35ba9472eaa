"""Decoding uploaded bytes into an image array, safely.

Pillow does the decoding: it reads the header lazily, so the pixel count is checked *before* any
pixel is decoded (decompression bombs), and it covers JPEG, PNG, BMP, WebP, TIFF and GIF in every
mode (gray, RGB, RGBA, palette, CMYK, 16-bit). The format is sniffed from the bytes; the file name
and the declared content type are never trusted.

A large JPEG can be decoded at 1/2, 1/4 or 1/8 of its size (:func:`decode_reduced`): libjpeg skips
most of the work (Pillow's ``draft``), which is what makes a 12-megapixel photo cheap when its faces
are found on 320 pixels and classified at 48x48. The result says how to map pixels back.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.core.errors import EmptyImageError, ImageDecodeError, ImageTooLargeError, UnsupportedImageTypeError

SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF", "GIF")
JPEG_REDUCTIONS = (8, 4, 2)  # what libjpeg can decode at, largest first
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


@dataclass(frozen=True)
class DecodedImage:
    """An upright image, possibly decoded at a reduced size (see :func:`decode_reduced`)."""

    pixels: np.ndarray  # uint8 gray (H, W) or RGB (H, W, 3), EXIF orientation applied
    scale: float  # original pixels per decoded pixel (1.0: full size); multiply to map back
    original_size: tuple[int, int]  # (width, height) of the upright image at full size


def jpeg_reduction(width: int, height: int, min_side: int) -> int:
    """The largest reduction libjpeg offers that keeps the long side at least ``min_side`` (else 1)."""
    long_side = max(width, height)
    return next((r for r in JPEG_REDUCTIONS if -(-long_side // r) >= min_side), 1)


def decode_image(data: bytes, *, max_pixels: int) -> np.ndarray:
    """Decode one uploaded file to a uint8 gray or RGB array at full size, EXIF orientation applied.

    Raises an :class:`~app.core.errors.ImageError` subclass naming the problem: empty, unsupported type,
    undecodable or truncated, or more than ``max_pixels`` pixels (checked from the header).
    """
    return decode_reduced(data, max_pixels=max_pixels, min_side=None).pixels


def decode_reduced(data: bytes, *, max_pixels: int, min_side: int | None) -> DecodedImage:
    """As :func:`decode_image`, but a JPEG whose long side is at least twice ``min_side`` is decoded at
    1/2, 1/4 or 1/8 of its size, the smallest that keeps the long side at least ``min_side`` pixels
    (``None``: always full size). The pixel count checked against ``max_pixels`` is the full one.
    """
    image = _open(data)
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
            )
        fmt = image.format
        reduction = jpeg_reduction(width, height, min_side) if min_side and fmt == "JPEG" else 1
        if reduction > 1:
            # Pillow then asks libjpeg for 1/reduction of each side (rounded up): see jpeg_reduction.
            image.draft(None, (width // reduction, height // reduction))
        stored_width = image.size[0]
        try:
            image.load()
        except _DECODE_ERRORS as exc:
            raise ImageDecodeError(f"the {fmt} file is truncated or corrupt: {exc}") from exc
        # Unreadable EXIF: keep the pixels as stored rather than reject a decodable image.
        upright = image
        with contextlib.suppress(*_DECODE_ERRORS):
            upright = ImageOps.exif_transpose(image)
        turned = upright.size != image.size  # a quarter turn swaps the sides
        try:
            array = _to_array(upright)
        except _DECODE_ERRORS as exc:
            raise ImageDecodeError(f"the {fmt} image could not be converted: {exc}") from exc
    if array.size == 0:
        raise ImageDecodeError("the image has no pixels")
    return DecodedImage(
        pixels=np.ascontiguousarray(array),
        scale=width / stored_width,
        original_size=(height, width) if turned else (width, height),
    )
