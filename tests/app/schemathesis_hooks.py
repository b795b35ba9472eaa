"""Schemathesis hooks: the `file` parts it generates are real images of the declared type, and the
JSON bodies' `b64` strings (OpenAPI format `byte`) are real images in base64.

The OpenAPI schema says `file` is binary with one of the image media types (`encoding.file.contentType`);
no JSON schema can say "bytes that decode as a PNG", so without these strategies Schemathesis sends
random bytes as schema-valid data and its `positive_data_acceptance` check reports the service's
correct 415 `unsupported_image_type` as a failure. Imported by tests/app/test_schemathesis.py and, for
the command line, named by ``SCHEMATHESIS_HOOKS=tests.app.schemathesis_hooks`` (see docs/hardening.md).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image

# Media type -> (Pillow format, the modes that format can store).
IMAGE_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "image/jpeg": ("JPEG", ("L", "RGB", "CMYK")),
    "image/png": ("PNG", ("L", "RGB", "RGBA", "P", "I;16")),
    "image/gif": ("GIF", ("L", "P")),
    "image/webp": ("WEBP", ("RGB", "RGBA")),
    "image/bmp": ("BMP", ("L", "RGB", "P")),
    "image/tiff": ("TIFF", ("L", "RGB", "RGBA", "CMYK")),
}


def _encode(fmt: str, mode: str, width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    elif mode == "P":
        image = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        image = rgb.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def image_bytes(media_type: str) -> st.SearchStrategy[bytes]:
    """Small valid images of one format, any of its modes, 1x1 to 96x96 pixels."""
    fmt, modes = IMAGE_TYPES[media_type]
    side = st.integers(min_value=1, max_value=96)
    seed = st.integers(min_value=0, max_value=2**32 - 1)
    return st.builds(partial_encode(fmt), st.sampled_from(modes), side, side, seed)


def partial_encode(fmt: str):  # a named closure keeps Hypothesis' repr of the strategy readable
    def encode(mode: str, width: int, height: int, seed: int) -> bytes:
        return _encode(fmt, mode, width, height, seed)

    encode.__name__ = f"encode_{fmt.lower()}"
    return encode


def any_image_base64() -> st.SearchStrategy[str]:
    """A small valid image of any accepted format, in base64 (a JSON body's `b64`)."""
    images = st.one_of(*(image_bytes(media_type) for media_type in IMAGE_TYPES))
    return images.map(lambda data: base64.b64encode(data).decode())


def register() -> None:
    for media_type in IMAGE_TYPES:
        schemathesis.openapi.media_type(media_type, image_bytes(media_type))
    schemathesis.openapi.format("byte", any_image_base64())


register()
