"""GET /live: the live page (webcam -> WebSocket /stream -> boxes, track ids and smoothed bars).

Served like the demo page (``routes/demo.py``: the same static folder and security headers); its
files are ``app/api/static/live.*``.
"""

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.api.routes.demo import PAGE_HEADERS, STATIC_DIR
from app.core.config import Settings


async def live_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "live.html", headers=PAGE_HEADERS)


def add_routes(router: APIRouter, settings: Settings) -> None:
    router.add_api_route(
        "/live", live_page, methods=["GET"], include_in_schema=False, response_class=FileResponse
    )
