"""Drawing the results: box borders in the face's colour, labels, the rest of the image untouched."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.core.annotation import JPEG_MAX_SIDE, PALETTE, annotate_image, draw_faces, encode_jpeg, label_text
from app.core.faces import Box
from app.core.pipeline import FaceResult

PROBABILITIES = {"anger": 0.1, "happy": 0.9}


def face(box: Box | None, emotion: str = "happy", confidence: float = 0.9) -> FaceResult:
    return FaceResult(box=box, emotion=emotion, confidence=confidence, probabilities=PROBABILITIES)


def gray_image(height: int = 200, width: int = 300, value: int = 128) -> np.ndarray:
    return np.full((height, width), value, dtype=np.uint8)


def test_a_box_is_drawn_in_its_colour_on_the_border_and_nothing_else_changes() -> None:
    image = np.dstack([gray_image()] * 3)
    box = Box(x=100, y=80, width=60, height=70)
    drawn = draw_faces(image, [face(box)])

    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert not np.shares_memory(drawn, image) and (image == 128).all()  # the input is not drawn on
    left_edge = drawn[box.y + 10 : box.y + box.height - 10, box.x]
    assert (left_edge == PALETTE[0]).all(axis=1).all()
    bottom_edge = drawn[box.y + box.height - 1, box.x + 5 : box.x + box.width - 5]
    assert (bottom_edge == PALETTE[0]).all(axis=1).all()
    inside = drawn[box.y + 10 : box.y + box.height - 10, box.x + 10 : box.x + box.width - 10]
    assert (inside == 128).all()
    changed = (drawn != image).any(axis=2)
    below = changed[box.y + box.height + 2 :]
    right = changed[box.y + 1 :, box.x + box.width + 2 :]  # the label above may be wider than the box
    assert not below.any() and not right.any()
    # The label band sits just above the box, in the same colour, with white text on it.
    band = drawn[box.y - 4, box.x : box.x + 20]
    assert (band == PALETTE[0]).all(axis=1).any()
    label = drawn[: box.y, box.x :]
    assert ((label > 230).all(axis=2)).any()


def test_faces_get_the_palette_colours_in_rank_order_and_a_gray_image_comes_back_in_colour() -> None:
    boxes = [Box(10, 40, 80, 80), Box(150, 40, 60, 60)]
    drawn = draw_faces(gray_image(), [face(boxes[0]), face(boxes[1], "anger", 0.6)])
    assert drawn.ndim == 3
    for rank, box in enumerate(boxes):
        assert tuple(drawn[box.y + box.height // 2, box.x]) == PALETTE[rank]


def test_a_box_at_the_top_edge_gets_its_label_inside() -> None:
    box = Box(50, 0, 100, 100)
    drawn = draw_faces(gray_image(), [face(box)])
    assert ((drawn[5:20, 52:100] > 230).all(axis=2)).any()  # white text inside the box's top


def test_without_a_face_the_whole_image_label_is_in_the_top_left_corner() -> None:
    drawn = draw_faces(gray_image(), [face(None, "fear", 0.4)])
    changed = (drawn != 128).any(axis=2)
    rows, cols = np.nonzero(changed)
    assert rows.max() < 40 and cols.min() == 0  # one band along the top
    assert tuple(drawn[1, 1]) == PALETTE[0]


def test_label_text() -> None:
    assert label_text(face(None, "surprise", 0.876)) == "surprise 88%"


def test_annotate_image_decodes_draws_and_encodes_a_jpeg_of_the_same_size() -> None:
    buffer = io.BytesIO()
    Image.fromarray(gray_image(120, 160)).save(buffer, "PNG")
    jpeg = annotate_image(buffer.getvalue(), [face(Box(20, 30, 50, 50))], max_pixels=10**6)
    with Image.open(io.BytesIO(jpeg)) as result:
        assert (result.format, result.size, result.mode) == ("JPEG", (160, 120), "RGB")
        pixels = np.asarray(result)
    left_edge = pixels[40:75, 20:22].reshape(-1, 3).mean(axis=0)  # the box's 2-pixel border
    assert np.abs(left_edge - PALETTE[0]).max() < 60  # JPEG keeps the colour, roughly


def test_an_image_wider_than_jpeg_allows_is_shrunk_to_fit() -> None:
    strip = np.full((1, JPEG_MAX_SIDE + 500, 3), 200, dtype=np.uint8)
    with Image.open(io.BytesIO(encode_jpeg(strip))) as result:
        assert result.size == (JPEG_MAX_SIDE, 1)


@pytest.mark.parametrize("quality", [50, 95])
def test_jpeg_quality_is_applied(quality: int) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    sizes = {q: len(encode_jpeg(noise, q)) for q in (quality, 20)}
    assert sizes[quality] > sizes[20]
