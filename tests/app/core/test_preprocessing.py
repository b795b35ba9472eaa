"""The one preprocessing path from a decoded uint8 image to model input."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.preprocessing import InputSpec, batch_to_model_input, to_model_input


def random_gray(height: int = 40, width: int = 50, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)


def random_rgb(height: int = 40, width: int = 50, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def assert_model_input(array: np.ndarray, spec: InputSpec) -> None:
    assert array.dtype == np.float32
    assert array.shape == spec.shape
    assert array.min() >= 0.0
    assert array.max() <= 1.0


# --- InputSpec --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((48, 48, 1), (48, 48, 1)),
        ((None, 48, 48, 1), (48, 48, 1)),
        ([None, 128, 96, 3], (128, 96, 3)),
        ((1, 128, 128, 3), (128, 128, 3)),
    ],
)
def test_input_spec_from_shape_with_and_without_batch_dimension(shape, expected) -> None:
    assert InputSpec.from_shape(shape).shape == expected


@pytest.mark.parametrize("shape", [(48, 48), (None, 48), ()])
def test_input_spec_from_shape_needs_three_dimensions(shape) -> None:
    with pytest.raises(ValueError, match="input shape"):
        InputSpec.from_shape(shape)


@pytest.mark.parametrize(("height", "width", "channels"), [(48, 48, 2), (48, 48, 4), (0, 48, 1), (48, -1, 3)])
def test_input_spec_rejects_bad_values(height: int, width: int, channels: int) -> None:
    with pytest.raises(ValueError):
        InputSpec(height, width, channels)


# --- to_model_input ---------------------------------------------------------------------------------


def test_gray_to_three_channels_replicates_the_gray() -> None:
    gray = random_gray(32, 32)
    spec = InputSpec(32, 32, 3)
    out = to_model_input(gray, spec)
    assert_model_input(out, spec)
    for channel in range(3):
        np.testing.assert_allclose(out[:, :, channel], gray / 255.0, atol=1e-6)


def test_gray_to_one_channel_keeps_the_pixels() -> None:
    gray = random_gray(32, 32)
    spec = InputSpec(32, 32, 1)
    out = to_model_input(gray, spec)
    assert_model_input(out, spec)
    np.testing.assert_allclose(out[:, :, 0], gray / 255.0, atol=1e-6)


def test_rgb_to_one_channel_is_luma() -> None:
    rgb = random_rgb(16, 16)
    spec = InputSpec(16, 16, 1)
    out = to_model_input(rgb, spec)
    assert_model_input(out, spec)
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    # cv2 rounds the luma to uint8, hence one grey level of tolerance.
    np.testing.assert_allclose(out[:, :, 0] * 255.0, luma, atol=1.0)


def test_rgb_to_three_channels_keeps_channel_order() -> None:
    rgb = np.zeros((8, 8, 3), dtype=np.uint8)
    rgb[:, :, 0] = 255  # pure red stays in channel 0 (no BGR swap)
    out = to_model_input(rgb, InputSpec(8, 8, 3))
    np.testing.assert_allclose(out[0, 0], [1.0, 0.0, 0.0])


@pytest.mark.parametrize(
    ("image", "spec"),
    [
        (random_gray(100, 80), InputSpec(48, 48, 1)),  # shrink
        (random_gray(20, 30), InputSpec(48, 48, 1)),  # enlarge
        (random_rgb(200, 150), InputSpec(128, 128, 3)),
        (random_rgb(30, 300), InputSpec(48, 64, 3)),  # shrink one side, enlarge the other
        (random_rgb(30, 40), InputSpec(48, 48, 1)),
    ],
)
def test_resized_to_the_spec_in_unit_range(image: np.ndarray, spec: InputSpec) -> None:
    assert_model_input(to_model_input(image, spec), spec)


def test_extreme_values_map_to_zero_and_one() -> None:
    image = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    out = to_model_input(image, InputSpec(2, 2, 1))
    np.testing.assert_array_equal(out[:, :, 0], [[0.0, 1.0], [1.0, 0.0]])


def test_constant_image_stays_constant_after_resize() -> None:
    image = np.full((97, 61, 3), 200, dtype=np.uint8)
    out = to_model_input(image, InputSpec(48, 48, 3))
    np.testing.assert_allclose(out, 200 / 255.0, atol=1e-6)


def test_input_is_not_modified() -> None:
    image = random_rgb()
    copy = image.copy()
    to_model_input(image, InputSpec(48, 48, 1))
    np.testing.assert_array_equal(image, copy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.int32])
def test_non_uint8_dtype_is_rejected(dtype) -> None:
    with pytest.raises(ValueError, match="uint8"):
        to_model_input(random_gray().astype(dtype), InputSpec(48, 48, 1))


@pytest.mark.parametrize(
    "shape",
    [(40, 50, 4), (40, 50, 1), (40, 50, 2), (40,), (2, 40, 50, 3), (0, 50), (40, 0, 3)],
)
def test_bad_shape_is_rejected(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        to_model_input(np.zeros(shape, dtype=np.uint8), InputSpec(48, 48, 3))


# --- batch_to_model_input ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [InputSpec(48, 48, 1), InputSpec(64, 32, 3)])
def test_batch_matches_per_image(spec: InputSpec) -> None:
    images = [random_gray(40, 50, seed=1), random_rgb(100, 90, seed=2), random_rgb(20, 20, seed=3)]
    batch = batch_to_model_input(images, spec)
    assert batch.dtype == np.float32
    assert batch.shape == (3, *spec.shape)
    for row, image in zip(batch, images, strict=True):
        np.testing.assert_array_equal(row, to_model_input(image, spec))


def test_empty_batch() -> None:
    batch = batch_to_model_input([], InputSpec(48, 48, 1))
    assert batch.shape == (0, 48, 48, 1)
    assert batch.dtype == np.float32


def test_batch_rejects_a_bad_image() -> None:
    with pytest.raises(ValueError):
        batch_to_model_input([random_gray(), random_gray().astype(np.float32)], InputSpec(48, 48, 1))
