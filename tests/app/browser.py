"""Debian's chromium driven by Selenium through Debian's chromium-driver (same version, nothing downloaded).

The browser resolves no host but 127.0.0.1, so a page that needed a CDN or any external asset could
not load it. ``python -m tests.app.browser --url URL --image IMAGE --out PNG`` takes the README's
screenshot of the demo page with IMAGE uploaded.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")
OFFLINE_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no internet: only the service
)
# A camera that plays Chromium's built-in test pattern, permission granted without a prompt.
FAKE_CAMERA_ARGS = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
RESULT_TIMEOUT_S = 90


def browser_available() -> bool:
    return CHROMIUM.is_file() and CHROMEDRIVER.is_file()


def chromium(*extra_args: str, width: int = 1280, height: int = 900) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (*OFFLINE_ARGS, f"--window-size={width},{height}", *extra_args):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def wait_for_result(driver: WebDriver, timeout_s: float = RESULT_TIMEOUT_S) -> str:
    """Waits until the demo page has an answer drawn or an error shown; returns the state."""
    states = ("done", "error")
    WebDriverWait(driver, timeout_s).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state") in states
    )
    return str(driver.find_element(By.TAG_NAME, "body").get_attribute("data-state"))


def upload(driver: WebDriver, image: Path) -> str:
    """Picks ``image`` through the page's file input, as a person would; returns the final state."""
    driver.execute_script("document.body.dataset.state = 'idle'")  # not the previous answer's state
    driver.find_element(By.ID, "file").send_keys(str(image.resolve()))
    return wait_for_result(driver)


def screenshot_demo(url: str, image: Path, out: Path, colors: int = 128) -> None:
    """The demo page with ``image`` classified, saved as a small palette PNG."""
    driver = chromium(width=1200, height=660)
    try:
        driver.get(url)
        if upload(driver, image) != "done":
            raise RuntimeError(driver.find_element(By.ID, "status").text)
        shot = out.with_suffix(".full.png")
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    with Image.open(shot) as full:
        full.convert("RGB").quantize(colors=colors).save(out, optimize=True)
    shot.unlink()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=screenshot_demo.__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8000/")
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/demo.png"))
    args = parser.parse_args()
    screenshot_demo(args.url, args.image, args.out)
