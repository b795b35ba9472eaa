"""GET /: the demo page (plain HTML, JS and CSS from app/api/static/, served by the service itself).

The page calls the API from the browser (``/predict?faces=all``, ``/models`` or ``/model``) with the
key typed into it, so it is open like /docs: it holds no data. Its Content-Security-Policy lets it load
only its own files and talk only to this service.
"""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from app.core.config import Settings

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
STATIC_PATH = "/static"
# blob: images are the picked file or the camera snapshot, shown by the page before it is uploaded.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=()",
    "Cache-Control": "no-cache",
}


async def demo_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


def add_routes(router: APIRouter, settings: Settings) -> None:
    """Not in the OpenAPI schema: a page for people, not an API operation."""
    router.add_api_route(
        "/", demo_page, methods=["GET"], include_in_schema=False, response_class=FileResponse
    )
    router.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="static")
