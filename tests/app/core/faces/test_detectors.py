"""Both face detectors on real photos: found, largest first, scored, turned faces, none where none is."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skimage_data

from app.core import faces as faces_module
from app.core.faces import Face, HaarDetector, YuNetDetector, make_detector, yunet
from app.core.imaging import decode_image

yunet_runs = pytest.mark.skipif(
    yunet.unavailable_reason() is not None, reason=f"YuNet cannot run here: {yunet.unavailable_reason()}"
)


def photo(photos_dir: Path, name: str) -> np.ndarray:
    return decode_image((photos_dir / name).read_bytes(), max_pixels=40_000_000)


def centre_inside(face: Face, x0: float, y0: float, x1: float, y1: float) -> bool:
    box = face.box
    cx, cy = box.x + box.width / 2, box.y + box.height / 2
    return x0 <= cx <= x1 and y0 <= cy <= y1


@pytest.fixture(scope="module")
def yunet_detector() -> YuNetDetector:
    if yunet.unavailable_reason() is not None:
        pytest.skip(f"YuNet cannot run here: {yunet.unavailable_reason()}")
    return YuNetDetector(min_confidence=0.6)


@pytest.fixture(scope="module", params=["yunet", "haar"])
def detector(request: pytest.FixtureRequest) -> object:
    if request.param == "yunet":
        return request.getfixturevalue("yunet_detector")
    return HaarDetector()


@pytest.mark.parametrize("name", ["anger_01.jpg", "sadness_01.jpg"])
def test_the_shared_photos_have_one_face(detector, photos_dir: Path, name: str) -> None:
    image = photo(photos_dir, name)
    found = detector.detect(image)
    assert len(found) == 1, found
    height, width = image.shape[:2]
    box = found[0].box
    assert box.x >= 0 and box.y >= 0 and box.x + box.width <= width and box.y + box.height <= height
    assert box.width >= 0.3 * width  # the face fills much of both photos


def test_yunet_finds_the_astronaut_with_a_score_and_eyes(yunet_detector: YuNetDetector) -> None:
    found = yunet_detector.detect(skimage_data.astronaut())
    assert len(found) == 1, found  # Haar also "finds" a face in the badge on her suit; YuNet does not
    face = found[0]
    assert face.confidence is not None and 0.6 <= face.confidence <= 1.0
    assert centre_inside(face, 150, 50, 300, 200)
    assert face.right_eye is not None and face.left_eye is not None
    (rx, ry), (lx, ly) = face.right_eye, face.left_eye
    box = face.box
    assert box.x <= rx < lx <= box.x + box.width  # the subject's right eye is on the image's left
    assert box.y <= ry <= box.y + box.height / 2 and abs(ry - ly) < 0.1 * box.height


@pytest.mark.parametrize("angle", [-25.0, 25.0])
def test_yunet_finds_a_turned_face(yunet_detector: YuNetDetector, photos_dir: Path, angle: float) -> None:
    image = photo(photos_dir, "anger_01.jpg")
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    turned = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    found = yunet_detector.detect(turned)
    assert found and centre_inside(found[0], 0.2 * width, 0.2 * height, 0.8 * width, 0.9 * height)
    (rx, ry), (lx, ly) = found[0].right_eye, found[0].left_eye
    tilt = np.degrees(np.arctan2(ly - ry, lx - rx))
    assert tilt == pytest.approx(-angle, abs=8)  # the eyes follow the turn (counter-clockwise: up)


def test_two_faces_are_both_found_largest_first(detector, photos_dir: Path) -> None:
    anger = photo(photos_dir, "anger_01.jpg")  # 425 wide
    small = cv2.resize(anger, (170, 208), interpolation=cv2.INTER_AREA)  # the same face, 40% of the size
    canvas = np.full((560, 700, 3), 200, np.uint8)
    canvas[10 : 10 + anger.shape[0], 10 : 10 + anger.shape[1]] = anger
    canvas[300:508, 500:670] = small
    found = detector.detect(canvas)
    assert len(found) == 2, found
    assert found[0].box.area > 2 * found[1].box.area
    assert centre_inside(found[0], 10, 10, 435, 531) and centre_inside(found[1], 500, 300, 670, 508)


@pytest.mark.parametrize("kind", ["gray", "gradient", "noise"])
def test_no_face_where_there_is_none(detector, kind: str) -> None:
    rng = np.random.default_rng(0)
    image = {
        "gray": np.full((480, 640), 128, np.uint8),
        "gradient": np.linspace(0, 255, 640 * 480 * 3).reshape(480, 640, 3).astype(np.uint8),
        "noise": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
    }[kind]
    assert detector.detect(image) == []


def test_a_face_crop_is_found_in_a_small_image(detector, photos_dir: Path) -> None:
    """A 48x48 face crop, as clients of a face-crop service send: padded and enlarged, then found."""
    image = photo(photos_dir, "anger_01.jpg")
    crop = cv2.resize(image[110:510, 20:420], (48, 48), interpolation=cv2.INTER_AREA)
    found = detector.detect(crop)
    assert found and centre_inside(found[0], 12, 12, 36, 40)


@yunet_runs
def test_min_confidence_drops_faces_scored_below_it(photos_dir: Path) -> None:
    image = photo(photos_dir, "anger_01.jpg")
    score = YuNetDetector(min_confidence=0.0).detect(image)[0].confidence
    assert score is not None
    assert YuNetDetector(min_confidence=score).detect(image)
    assert YuNetDetector(min_confidence=min(1.0, score + 0.01)).detect(image) == []


def test_haar_gives_no_score_or_eyes(photos_dir: Path) -> None:
    face = HaarDetector().detect(photo(photos_dir, "anger_01.jpg"))[0]
    assert face.confidence is None and face.right_eye is None and face.left_eye is None


def test_the_setting_switches_implementations(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    assert isinstance(make_detector("haar", min_confidence=0.6), HaarDetector)
    if yunet.unavailable_reason() is None:
        assert isinstance(make_detector("yunet", min_confidence=0.6), YuNetDetector)
        assert isinstance(make_detector("auto", min_confidence=0.6), YuNetDetector)
    # Where YuNet cannot run, auto falls back to Haar and says why; yunet itself refuses to start.
    monkeypatch.setattr(yunet, "unavailable_reason", lambda: "no AVX2 here")
    monkeypatch.setattr(yunet, "_lib", None)
    with caplog.at_level(logging.WARNING, logger=faces_module.__name__):
        assert isinstance(make_detector("auto", min_confidence=0.6), HaarDetector)
    assert "no AVX2 here" in caplog.text
    with pytest.raises(RuntimeError, match="no AVX2 here"):
        make_detector("yunet", min_confidence=0.6)


def test_unavailable_reason_names_the_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yunet.platform, "machine", lambda: "aarch64")
    assert "x86_64" in (yunet.unavailable_reason() or "")
    monkeypatch.setattr(yunet.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(yunet, "_cpu_flags", lambda: {"sse2"})
    assert "avx2" in (yunet.unavailable_reason() or "")


@yunet_runs
def test_yunet_is_safe_from_several_threads(photos_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    detector = YuNetDetector(min_confidence=0.6)
    images = [photo(photos_dir, "anger_01.jpg"), photo(photos_dir, "sadness_01.jpg")] * 8
    alone = [detector.detect(image) for image in images]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(detector.detect, images))
    assert together == alone


@yunet_runs
def test_yunet_runs_each_call_on_one_openmp_thread() -> None:
    """The wheel's libgomp is found and bound, so a call never spins up OpenMP threads that wait."""
    YuNetDetector(min_confidence=0.6)
    assert yunet._one_thread is not None
