"""Images brought to detection size: large ones shrunk, small ones padded and enlarged, strips refused."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.faces.scaling import for_detection


def test_a_large_photo_is_shrunk_and_maps_back() -> None:
    scaled = for_detection(np.zeros((960, 1280, 3), np.uint8), 320, 16)
    assert scaled is not None and scaled.image.shape == (240, 320, 3) and not scaled.small
    assert scaled.to_original(80, 60) == pytest.approx((320, 240))


def test_a_small_crop_is_padded_and_enlarged() -> None:
    scaled = for_detection(np.zeros((48, 48), np.uint8), 320, 16)
    assert scaled is not None and scaled.small and scaled.pad == 12
    assert min(scaled.image.shape) == 144
    assert scaled.to_original(0, 0) == pytest.approx((-12, -12))


@pytest.mark.parametrize("shape", [(1, 40000), (40000, 1), (3, 5000)])
def test_a_strip_too_thin_for_a_face_is_refused(shape: tuple[int, int]) -> None:
    assert for_detection(np.zeros(shape, np.uint8), 320, 16) is None
