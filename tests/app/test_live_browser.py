"""The live page (GET /live) in a real headless Chromium whose fake camera plays a face.

Chromium's fake capture device plays an MJPEG file made here from the anger photo (resized to
640x480 and repeated), so the page's frames hold a real face: the boxes, track ids and smoothed bars
come from the service over the WebSocket /stream.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from app.core.inference import LoadedModel
from app.main import create_app
from tests.app.browser import browser_available, chromium
from tests.app.conftest import API_KEY, settings_for
from tests.app.serving import serve_in_thread
from tests.conftest import require

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def secured_url(model_path: Path, loaded_model: LoadedModel) -> Iterator[str]:
    settings = settings_for(model_path, api_key=API_KEY)
    with serve_in_thread(create_app(settings, model=loaded_model)) as url:
        yield url


@pytest.fixture
def face_video(photos_dir: Path, tmp_path: Path) -> Path:
    """An MJPEG (concatenated JPEG frames) of the anger photo, letterboxed into 640x480."""
    face = Image.open(photos_dir / "anger_01.jpg").convert("RGB")
    face.thumbnail((640, 480))
    frame = Image.new("RGB", (640, 480))
    frame.paste(face, ((640 - face.width) // 2, (480 - face.height) // 2))
    buffer = io.BytesIO()
    frame.save(buffer, "JPEG", quality=90)
    path = tmp_path / "face.mjpeg"
    path.write_bytes(buffer.getvalue() * 30)
    return path


@pytest.fixture
def live_browser(face_video: Path) -> Iterator[WebDriver]:
    require(browser_available(), "Debian's chromium and chromium-driver are not installed (apt-get install)")
    driver = chromium(
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={face_video}",
    )
    yield driver
    driver.quit()


def frames(driver: WebDriver) -> int:
    return int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-frames") or 0)


def test_the_live_page_draws_tracks_and_smoothed_bars(live_browser: WebDriver, secured_url: str) -> None:
    live_browser.get(f"{secured_url}/live")
    live_browser.find_element(By.ID, "api-key").send_keys(API_KEY)
    live_browser.find_element(By.ID, "live-start").click()
    WebDriverWait(live_browser, 90).until(lambda d: frames(d) >= 3)
    assert live_browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "live"
    cards = live_browser.find_elements(By.CSS_SELECTOR, "#faces .face")
    assert [card.get_attribute("data-track") for card in cards] == ["1"]  # one face, one stable track
    title = cards[0].find_element(By.CLASS_NAME, "title").text
    assert title.startswith("Track #1: ")
    rows = cards[0].find_elements(By.CSS_SELECTOR, ".bar-row")
    assert len(rows) == 7 and len(cards[0].find_elements(By.CSS_SELECTOR, ".bar-row.top")) == 1
    assert "dropped" in live_browser.find_element(By.ID, "counters").text
    live_browser.find_element(By.ID, "live-stop").click()


def test_without_the_key_the_page_says_unauthorized(live_browser: WebDriver, secured_url: str) -> None:
    live_browser.get(f"{secured_url}/live")
    live_browser.find_element(By.ID, "live-start").click()
    WebDriverWait(live_browser, 60).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "error"
    )
    assert live_browser.find_element(By.ID, "status").text.startswith("unauthorized")


def test_the_challenge_shows_its_steps_and_progress(live_browser: WebDriver, secured_url: str) -> None:
    live_browser.get(f"{secured_url}/live")
    live_browser.find_element(By.ID, "api-key").send_keys(API_KEY)
    live_browser.find_element(By.ID, "challenge-start").click()
    WebDriverWait(live_browser, 90).until(lambda d: frames(d) >= 2)
    steps = live_browser.find_elements(By.CSS_SELECTOR, "#steps li")
    assert 2 <= len(steps) <= 3
    state = live_browser.find_element(By.TAG_NAME, "body").get_attribute("data-challenge")
    assert state in ("pending", "failed")  # one still photo cannot pass
    assert live_browser.find_element(By.ID, "token").text == ""
