"""The demo page in a real headless Chromium (Selenium, Debian's chromium and chromium-driver).

The service runs over real HTTP (uvicorn in a thread, the session's model); the browser resolves no
host but 127.0.0.1, so the page works only if it needs nothing from elsewhere. A photo is picked through
the file input as a person would; the boxes (SVG) and the probability bars must be drawn, and the
screenshot must show the box colour and the bars.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from app.core.annotation import PALETTE
from app.core.inference import LoadedModel
from app.main import create_app
from tests.app.browser import FAKE_CAMERA_ARGS, browser_available, chromium, upload, wait_for_result
from tests.app.conftest import API_KEY, settings_for
from tests.app.serving import serve_in_thread
from tests.conftest import require

pytestmark = pytest.mark.slow
ACCENT_BLUE = (0x29, 0x79, 0xFF)  # the top bar (demo.css --accent)


@pytest.fixture(scope="module")
def page_url(model_path: Path, loaded_model: LoadedModel) -> Iterator[str]:
    with serve_in_thread(create_app(settings_for(model_path), model=loaded_model)) as url:
        yield url


@pytest.fixture(scope="module")
def secured_page_url(model_path: Path, loaded_model: LoadedModel) -> Iterator[str]:
    with serve_in_thread(create_app(settings_for(model_path, api_key=API_KEY), model=loaded_model)) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    require(browser_available(), "Debian's chromium and chromium-driver are not installed (apt-get install)")
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture
def two_faces(photos_dir: Path, tmp_path: Path) -> Path:
    """The face photo beside its mirror image: two faces."""
    face = Image.open(photos_dir / "anger_01.jpg").convert("RGB")
    both = Image.new("RGB", (face.width * 2, face.height))
    both.paste(face, (0, 0))
    both.paste(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (face.width, 0))
    path = tmp_path / "two faces.jpg"
    both.save(path, quality=92)
    return path


def text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def wait_for_model(driver: WebDriver) -> str:
    WebDriverWait(driver, 30).until(lambda d: "loading" not in text(d, "model-id"))
    return text(driver, "model-id")


def screenshot(driver: WebDriver) -> np.ndarray:
    with Image.open(io.BytesIO(driver.get_screenshot_as_png())) as shot:
        return np.asarray(shot.convert("RGB")).astype(int)


def pixels_near(pixels: np.ndarray, color: tuple[int, int, int], tolerance: int = 30) -> int:
    return int((np.abs(pixels - np.array(color)) < tolerance).all(axis=-1).sum())


def test_a_photo_picked_in_the_page_gets_boxes_and_bars(
    browser: WebDriver, page_url: str, two_faces: Path
) -> None:
    expected = httpx.post(
        f"{page_url}/predict?faces=all", files={"file": two_faces.read_bytes()}, timeout=60
    ).json()
    faces, labels = expected["faces"], list(expected["probabilities"])
    assert len(faces) == 2

    browser.get(page_url)
    assert expected["model_id"] in wait_for_model(browser)
    before = screenshot(browser)
    assert upload(browser, two_faces) == "done", text(browser, "status")

    assert text(browser, "status") == "2 faces found."
    boxes = browser.find_elements(By.CSS_SELECTOR, "#overlay rect.face-box")
    assert [int(box.get_attribute("x")) for box in boxes] == [face["box"]["x"] for face in faces]
    assert [box.get_attribute("stroke") for box in boxes] == ["#00c853", "#ffb300"]
    box_labels = [label.text for label in browser.find_elements(By.CSS_SELECTOR, "#overlay text.face-label")]
    assert [label.split()[1] for label in box_labels] == [face["emotion"] for face in faces]
    cards = browser.find_elements(By.CSS_SELECTOR, "#faces .face")
    assert len(cards) == 2
    for card, face in zip(cards, faces, strict=True):
        rows = card.find_elements(By.CSS_SELECTOR, ".bar-row")
        assert [row.find_element(By.CLASS_NAME, "label").text for row in rows] == labels
        widths = [row.find_element(By.CLASS_NAME, "fill").size["width"] for row in rows]
        track = rows[0].find_element(By.CLASS_NAME, "bar").size["width"]
        top = labels.index(face["emotion"])
        assert widths[top] == max(widths) and widths[top] == pytest.approx(face["confidence"] * track, abs=2)
    assert expected["model_id"] in text(browser, "timing") and "inference" in text(browser, "timing")

    shot = screenshot(browser)
    assert pixels_near(shot, PALETTE[0]) > 200 + pixels_near(before, PALETTE[0])  # the first box, drawn
    assert pixels_near(shot, PALETTE[1]) > 200  # the second
    assert pixels_near(shot, ACCENT_BLUE) > 100  # the top bars


def test_an_error_is_shown_and_the_page_keeps_working(
    browser: WebDriver, page_url: str, tmp_path: Path, photos_dir: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"plain text, not a picture\n")
    browser.get(page_url)
    wait_for_model(browser)
    assert upload(browser, broken) == "error"
    assert text(browser, "status").startswith("415 unsupported_image_type:")
    assert not browser.find_element(By.ID, "result").is_displayed()
    assert upload(browser, photos_dir / "anger_01.jpg") == "done"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#overlay rect.face-box")) == 1


def test_the_api_key_typed_in_the_page_is_sent(
    browser: WebDriver, secured_page_url: str, photos_dir: Path
) -> None:
    browser.get(secured_page_url)
    WebDriverWait(browser, 30).until(lambda d: "API key" in text(d, "status"))
    assert upload(browser, photos_dir / "anger_01.jpg") == "error"
    assert text(browser, "status").startswith("401 unauthorized")
    key = browser.find_element(By.ID, "api-key")
    key.send_keys(API_KEY)
    browser.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
    assert "emotion_cnn" in wait_for_model(browser)
    assert upload(browser, photos_dir / "anger_01.jpg") == "done"


def test_without_a_camera_the_page_says_so(browser: WebDriver, page_url: str) -> None:
    browser.get(page_url)
    wait_for_model(browser)
    browser.find_element(By.ID, "camera-start").click()
    assert wait_for_result(browser) == "error"
    assert text(browser, "status").startswith("No camera")
    assert browser.find_element(By.ID, "file").is_enabled()


def test_a_camera_snapshot_is_classified(page_url: str) -> None:
    """Chromium's fake camera (a test pattern, no face): the snapshot is sent and answered."""
    require(browser_available(), "Debian's chromium and chromium-driver are not installed (apt-get install)")
    driver = chromium(*FAKE_CAMERA_ARGS)
    try:
        driver.get(page_url)
        wait_for_model(driver)
        driver.find_element(By.ID, "camera-start").click()
        snap = driver.find_element(By.ID, "camera-snap")
        WebDriverWait(driver, 30).until(lambda d: snap.is_displayed())
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return arguments[0].videoWidth", d.find_element(By.ID, "camera")) > 0
        )
        snap.click()
        assert wait_for_result(driver) == "done", text(driver, "status")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#faces .face")) >= 1
    finally:
        driver.quit()
