"""Decoding uploaded bytes: every supported format and mode, and every way the bytes can be bad."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from app.core.errors import (
    EmptyImageError,
    ImageDecodeError,
    ImageError,
    ImageTooLargeError,
    UnsupportedImageTypeError,
)
from app.core.imaging import decode_image, sniff_format

MAX_PIXELS = 1_000_000


# --- helpers building images in memory ------------------------------------------------------------


def random_rgb(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def gradient_rgb(height: int = 24, width: int = 32) -> np.ndarray:
    """A smooth image, so that lossy formats stay close to the original."""
    rows = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    red = np.broadcast_to(rows, (height, width))
    green = np.broadcast_to(cols, (height, width))
    blue = np.full((height, width), 128.0, dtype=np.float32)
    return np.stack([red, green, blue], axis=2).astype(np.uint8)


def encode(image: Image.Image | np.ndarray, fmt: str, **options) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` 8-bit gray but that holds no pixel data.

    Decoding it would fail (no IDAT), so an ImageTooLargeError proves the size was checked first.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")


def decode(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    return decode_image(data, max_pixels=max_pixels)


def assert_uint8_rgb(array: np.ndarray, height: int, width: int) -> None:
    assert array.dtype == np.uint8
    assert array.shape == (height, width, 3)
    assert array.flags.c_contiguous


# --- formats ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("PNG", {}),
        ("BMP", {}),
        ("WEBP", {"lossless": True}),
        ("TIFF", {}),
        ("TIFF", {"compression": "tiff_lzw"}),
    ],
)
def test_lossless_formats_round_trip_exactly(fmt: str, options: dict) -> None:
    original = random_rgb()
    data = encode(original, fmt, **options)
    assert sniff_format(data) == fmt
    decoded = decode(data)
    assert_uint8_rgb(decoded, 24, 32)
    np.testing.assert_array_equal(decoded, original)


@pytest.mark.parametrize(("fmt", "options"), [("JPEG", {"quality": 95}), ("WEBP", {"quality": 95})])
def test_lossy_formats_decode_close_to_original(fmt: str, options: dict) -> None:
    original = gradient_rgb()
    decoded = decode(encode(original, fmt, **options))
    assert_uint8_rgb(decoded, 24, 32)
    error = np.abs(decoded.astype(np.int16) - original.astype(np.int16)).mean()
    assert error < 6


def test_gray_png_decodes_to_two_dimensions() -> None:
    gray = random_rgb()[:, :, 0]
    decoded = decode(encode(gray, "PNG"))
    assert decoded.dtype == np.uint8
    assert decoded.shape == (24, 32)
    np.testing.assert_array_equal(decoded, gray)


def test_palette_gif_decodes_to_rgb() -> None:
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [250, 250, 250]], dtype=np.uint8)
    indices = np.random.default_rng(1).integers(0, len(colors), (16, 20))
    original = colors[indices]
    palette_image = Image.fromarray(original).quantize(colors=4)
    assert palette_image.mode == "P"
    data = encode(palette_image, "GIF")
    assert sniff_format(data) == "GIF"
    decoded = decode(data)
    assert_uint8_rgb(decoded, 16, 20)
    np.testing.assert_array_equal(decoded, original)


def test_rgba_png_is_composited_on_white_and_has_three_channels() -> None:
    rgba = np.zeros((8, 10, 4), dtype=np.uint8)
    rgba[:, :5] = (255, 0, 0, 255)  # opaque red
    rgba[:, 5:] = (255, 0, 0, 0)  # fully transparent
    decoded = decode(encode(rgba, "PNG"))
    assert_uint8_rgb(decoded, 8, 10)
    np.testing.assert_array_equal(decoded[:, :5], np.broadcast_to([255, 0, 0], (8, 5, 3)))
    np.testing.assert_array_equal(decoded[:, 5:], np.full((8, 5, 3), 255))


def test_sixteen_bit_gray_png_is_scaled_to_eight_bits() -> None:
    wide = np.array([[0, 256, 32768, 65535]], dtype=np.uint16)
    data = encode(Image.fromarray(wide), "PNG")
    decoded = decode(data)
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, [[0, 1, 128, 255]])


def test_cmyk_jpeg_decodes_to_rgb() -> None:
    cmyk = Image.new("CMYK", (10, 8), (0, 255, 255, 0))  # pure red in CMYK
    decoded = decode(encode(cmyk, "JPEG", quality=95))
    assert_uint8_rgb(decoded, 8, 10)
    red, green, blue = decoded.reshape(-1, 3).mean(axis=0)
    assert red > 200
    assert green < 60
    assert blue < 60


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    data = encode(gradient_rgb(24, 32), "JPEG", quality=95, exif=exif.tobytes())
    assert decode(data).shape == (32, 24, 3)
    # Without the tag the stored orientation is kept.
    assert decode(encode(gradient_rgb(24, 32), "JPEG", quality=95)).shape == (24, 32, 3)


def test_format_is_sniffed_from_bytes_not_trusted_from_anywhere_else() -> None:
    assert sniff_format(encode(random_rgb(), "PNG")) == "PNG"
    assert sniff_format(encode(random_rgb(), "JPEG")) == "JPEG"
    assert sniff_format(b"hello") is None


# --- bad bytes ----------------------------------------------------------------------------------------


def test_empty_bytes() -> None:
    with pytest.raises(EmptyImageError) as info:
        decode(b"")
    assert info.value.code == "empty_file"
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    "data",
    [b"this is plain text, not an image\n", b"%PDF-1.7\n", b"<svg xmlns='http://www.w3.org/2000/svg'/>"],
)
def test_non_image_bytes_are_unsupported(data: bytes) -> None:
    with pytest.raises(UnsupportedImageTypeError) as info:
        decode(data)
    assert info.value.status_code == 415
    assert info.value.code == "unsupported_image_type"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_truncated_file_is_a_decode_error(fmt: str, keep: float) -> None:
    data = encode(random_rgb(64, 64), fmt)
    truncated = data[: int(len(data) * keep)]
    with pytest.raises(ImageDecodeError) as info:
        decode(truncated)
    assert info.value.status_code == 400
    assert info.value.code == "image_decode_failed"


def test_png_magic_followed_by_garbage_is_a_decode_error() -> None:
    with pytest.raises(ImageDecodeError):
        decode(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)


def test_header_only_png_is_a_decode_error_when_small() -> None:
    # The control for the two tests below: a small declared size gets as far as decoding, and fails.
    with pytest.raises(ImageDecodeError):
        decode(png_header_only(100, 100))


def test_too_many_pixels_for_max_pixels_is_rejected_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError) as info:
        decode(png_header_only(2000, 1000), max_pixels=1_000_000)
    assert info.value.status_code == 413
    assert info.value.code == "image_too_large"
    assert "2000x1000" in info.value.message


def test_decompression_bomb_header_is_rejected_before_decoding() -> None:
    # 20000 x 20000 = 400 M pixels: over both the caller's limit and Pillow's bomb threshold.
    with pytest.raises(ImageTooLargeError):
        decode(png_header_only(20000, 20000), max_pixels=50_000_000)


def test_real_small_file_that_decodes_to_a_huge_image_is_rejected() -> None:
    bomb = encode(Image.new("1", (20000, 20000)), "PNG")
    assert len(bomb) < 100_000  # tiny on the wire
    with pytest.raises(ImageTooLargeError):
        decode(bomb, max_pixels=50_000_000)


def test_image_at_the_limit_is_accepted() -> None:
    assert decode(encode(random_rgb(10, 10), "PNG"), max_pixels=100).shape == (10, 10, 3)
    with pytest.raises(ImageTooLargeError):
        decode(encode(random_rgb(10, 10), "PNG"), max_pixels=99)


def test_every_error_is_an_image_error() -> None:
    for error in (EmptyImageError, UnsupportedImageTypeError, ImageDecodeError, ImageTooLargeError):
        assert issubclass(error, ImageError)
