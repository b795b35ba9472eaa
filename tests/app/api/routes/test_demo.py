"""GET /: the demo page and its assets, served by the service itself with a strict CSP."""

from __future__ import annotations

import fnmatch
import re
import tomllib

from fastapi.testclient import TestClient

from app.api.routes.demo import STATIC_DIR
from tests.conftest import REPO_ROOT

ASSET = re.compile(r'(?:src|href)="([^"]+)"')
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an identifier, never fetched


def test_the_page_is_served_with_a_content_security_policy(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    directives = response.headers["content-security-policy"].split(";")
    policy = dict(directive.strip().split(" ", 1) for directive in directives)
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == policy["style-src"] == policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<input id="file" type="file"' in response.text


def test_every_asset_of_the_page_is_local_and_served(client: TestClient) -> None:
    html = client.get("/").text
    assets = [url for url in ASSET.findall(html) if not url.startswith("data:")]
    assert "/static/demo.js" in assets and "/static/demo.css" in assets
    types = {".js": "text/javascript", ".css": "text/css"}
    for url in assets:
        if url == "/docs":  # a link, not an asset
            continue
        assert url.startswith("/static/"), url
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith(types[url[url.rfind(".") :]]), url


def test_no_file_of_the_page_refers_to_another_host() -> None:
    for path in STATIC_DIR.iterdir():
        text = path.read_text(encoding="utf-8").replace(SVG_NAMESPACE, "")
        assert not re.search(r"(https?:)?//[a-z0-9-]+(\.[a-z0-9-]+)+", text, re.IGNORECASE), path.name


def test_the_page_is_open_when_the_api_needs_a_key(secured_client: TestClient) -> None:
    """Like /docs: the page holds no data; the key typed into it goes with its API calls."""
    assert secured_client.get("/").status_code == 200
    assert secured_client.get("/static/demo.js").status_code == 200
    assert secured_client.get("/model").status_code == 401


def test_the_page_is_no_api_operation_and_the_docs_still_work(client: TestClient) -> None:
    assert "/" not in client.get("/openapi.json").json()["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    assert "content-security-policy" not in docs.headers  # the page's policy is its own


def test_the_static_files_are_package_data() -> None:
    """pyproject.toml ships every file of app/api/static in the installed package (and the Dockerfile
    copies app/ whole)."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["app.api"]
    files = [path.relative_to(STATIC_DIR.parent).as_posix() for path in STATIC_DIR.iterdir()]
    assert files
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name
    assert "COPY app/ /app/app/" in (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
