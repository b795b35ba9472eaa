"""Large JPEGs decoded at 1/2, 1/4 or 1/8 size (EMOTION_DECODE_MIN_SIDE): the reduction chosen, the
checks kept, and boxes and predictions that match a full-size decoding."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core.errors import ImageTooLargeError
from app.core.faces import Face, make_detector
from app.core.imaging import decode_image, decode_reduced, jpeg_reduction
from app.core.inference import LoadedModel
from app.core.pipeline import prepare


def jpeg(image: Image.Image | np.ndarray, **options: object) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def gradient(height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs * 255 // width, ys * 255 // height, (xs + ys) % 256], axis=-1).astype(np.uint8)


@pytest.mark.parametrize(
    ("size", "min_side", "expected"),
    [
        ((4000, 3000), 1280, 2),  # 4000 / 4 = 1000 would be too small
        ((4000, 3000), 1000, 4),
        ((4000, 3000), 500, 8),
        ((3000, 4000), 500, 8),  # the long side counts, whichever it is
        ((2000, 1500), 1280, 1),  # half would be 1000: kept whole
        ((2558, 100), 1280, 1),  # half would be 1279
        ((2559, 100), 1280, 2),  # libjpeg rounds up: 1280
        ((640, 480), 1280, 1),
    ],
)
def test_the_smallest_reduction_keeping_the_long_side_is_chosen(
    size: tuple[int, int], min_side: int, expected: int
) -> None:
    assert jpeg_reduction(*size, min_side) == expected


def test_a_large_jpeg_is_decoded_reduced_with_its_scale() -> None:
    data = jpeg(gradient(1200, 1600))
    decoded = decode_reduced(data, max_pixels=10_000_000, min_side=400)
    assert decoded.pixels.shape == (300, 400, 3) and decoded.pixels.dtype == np.uint8
    assert decoded.scale == 4.0 and decoded.original_size == (1600, 1200)
    full = decode_image(data, max_pixels=10_000_000)
    shrunk = np.asarray(Image.fromarray(full).resize((400, 300), Image.BOX), dtype=np.float64)
    assert np.abs(decoded.pixels - shrunk).mean() < 3  # the same picture, smaller


def test_no_reduction_without_min_side_or_for_other_formats() -> None:
    data = jpeg(gradient(1200, 1600))
    assert decode_reduced(data, max_pixels=10_000_000, min_side=None).pixels.shape == (1200, 1600, 3)
    buffer = io.BytesIO()
    Image.fromarray(gradient(1200, 1600)).save(buffer, "PNG")
    decoded = decode_reduced(buffer.getvalue(), max_pixels=10_000_000, min_side=400)
    assert decoded.pixels.shape == (1200, 1600, 3) and decoded.scale == 1.0


def test_exif_orientation_is_applied_to_a_reduced_decoding() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    data = jpeg(gradient(1000, 2000), exif=exif.tobytes())
    decoded = decode_reduced(data, max_pixels=10_000_000, min_side=500)
    assert decoded.pixels.shape == (500, 250, 3)  # upright: taller than wide
    assert decoded.original_size == (1000, 2000) and decoded.scale == 4.0
    assert decode_image(data, max_pixels=10_000_000).shape == (2000, 1000, 3)


def test_the_full_pixel_count_is_checked_before_a_reduced_decoding() -> None:
    data = jpeg(gradient(1200, 1600))
    with pytest.raises(ImageTooLargeError, match="1600x1200"):
        decode_reduced(data, max_pixels=1600 * 1200 - 1, min_side=200)


@pytest.mark.parametrize("factor", [4, 9])  # 1700 x 2084 (kept whole) and 3825 x 4689 (1/2)
def test_a_reduced_photo_gives_the_same_face_and_emotion_in_original_pixels(
    photos_dir: Path, loaded_model: LoadedModel, factor: int
) -> None:
    photo = Image.open(photos_dir / "anger_01.jpg").convert("RGB")
    data = jpeg(photo.resize((photo.width * factor, photo.height * factor), Image.LANCZOS))
    detector, spec = make_detector("auto", min_confidence=0.5), loaded_model.spec

    def classify(min_side: int | None) -> tuple[Face, np.ndarray]:
        prepared = prepare(
            data, spec=spec, detector=detector, mode="largest", max_pixels=40_000_000, margin=0.0,
            align=False, min_side=min_side,
        )  # fmt: skip
        (face, model_input), = prepared.regions  # fmt: skip
        assert face is not None
        return face, loaded_model.predict_batch(model_input[None])[0]

    (full_face, full), (face, reduced) = classify(None), classify(1280)
    box, full_box = face.box, full_face.box
    tolerance = 0.01 * full_box.width  # a pixel of the reduced image, at most
    for name in ("x", "y", "width", "height"):
        assert abs(getattr(box, name) - getattr(full_box, name)) <= tolerance, (box, full_box)
    assert np.abs(reduced - full).max() < 0.02
    assert int(np.argmax(reduced)) == int(np.argmax(full))
    for eye, full_eye in ((face.right_eye, full_face.right_eye), (face.left_eye, full_face.left_eye)):
        assert (eye is None) == (full_eye is None)
        if eye is not None and full_eye is not None:  # the detector gives eyes: mapped back too
            assert abs(eye[0] - full_eye[0]) <= tolerance and abs(eye[1] - full_eye[1]) <= tolerance
