"""The composition root: ``app.main:app`` (``python -m app`` runs it with the settings' host/port).

The settings build the app: its lifespan (model, batcher, classifier), middleware and routers.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from app.api.error_handlers import install_error_handlers
from app.api.observability import RequestContextMiddleware
from app.api.openapi import DESCRIPTION
from app.api.routes import annotate, demo, health, models, predict
from app.api.shutdown import on_termination
from app.api.state import ServiceState
from app.api.uploads import BodyLimitMiddleware
from app.core.config import Settings, get_settings
from app.core.inference import LoadedModel, load_model

UPLOAD_ROUTES = (predict, annotate)


def body_limits(settings: Settings) -> dict[str, int]:
    """The most bytes a request body may hold, for each upload route (nginx mirrors them)."""
    return {path: limit for routes in UPLOAD_ROUTES for path, limit in routes.body_limits(settings).items()}


def create_app(settings: Settings | None = None, *, model: LoadedModel | None = None) -> FastAPI:
    """Build the application; ``model`` may be preloaded (``python -m app`` does, to fail fast)."""
    settings = settings or get_settings()
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await state.start(model or await anyio.to_thread.run_sync(load_model, settings.model_path))
        try:
            with on_termination(state.begin_draining):  # SIGTERM: /ready 503 at once (app/api/shutdown.py)
                yield
        finally:
            await state.stop()

    app = FastAPIOffline(
        title="Facial emotion recognition",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.service = state
    install_error_handlers(app)

    app.add_middleware(
        BodyLimitMiddleware,
        limit_for_path=body_limits(settings).get,
        body_timeout_s=settings.body_timeout_s,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "X-Request-ID", "Content-Type"],
        )
    app.add_middleware(RequestContextMiddleware)

    # Added to the app's own router, not include_router'd: FastAPI 0.165 nests an included router as
    # one entry of app.routes, and app.routes must list every route (tests and tools read it).
    for routes in (health, models, predict, annotate, demo):
        routes.add_routes(app.router, settings)
    return app


app = create_app()
