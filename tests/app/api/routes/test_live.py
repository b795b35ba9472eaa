"""GET /live: the live page and its assets, served like the demo page (same CSP, local files only)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

ASSET = re.compile(r'(?:src|href)="([^"]+)"')
PAGES = ("/", "/docs")  # links, not assets


def test_the_live_page_is_served_with_the_demo_pages_policy(client: TestClient) -> None:
    live, demo = client.get("/live"), client.get("/")
    assert live.status_code == 200 and live.headers["content-type"].startswith("text/html")
    assert live.headers["content-security-policy"] == demo.headers["content-security-policy"]
    assert "camera=(self)" in live.headers["permissions-policy"]
    assert 'id="live-video"' in live.text and 'id="challenge-start"' in live.text


def test_every_asset_of_the_live_page_is_local_and_served(client: TestClient) -> None:
    assets = [url for url in ASSET.findall(client.get("/live").text) if not url.startswith("data:")]
    assert {"/static/live.js", "/static/live.css", "/static/demo.css"} <= set(assets)
    for url in assets:
        if url in PAGES:
            continue
        assert url.startswith("/static/"), url
        assert client.get(url).status_code == 200, url


def test_the_live_page_is_open_when_the_api_needs_a_key(secured_client: TestClient) -> None:
    assert secured_client.get("/live").status_code == 200
    assert secured_client.get("/static/live.js").status_code == 200
