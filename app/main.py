"""The composition root: ``app.main:app`` (``python -m app`` runs it with the settings' host/port).

The settings build the app: its lifespan (model, batcher, classifier), middleware and routers.
"""

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from app.api.challenge_desk import ChallengeDesk
from app.api.error_handlers import install_error_handlers
from app.api.metrics import MetricsMiddleware
from app.api.observability import RequestContextMiddleware
from app.api.openapi import DESCRIPTION
from app.api.routes import annotate, challenges, demo, health, live, metrics, predict, stream
from app.api.routes import models as models_routes
from app.api.shutdown import on_termination
from app.api.state import ServiceState
from app.api.uploads import BodyLimitMiddleware
from app.core.config import Settings, get_settings, usable_cores
from app.core.inference import LoadedModel, load_model

UPLOAD_ROUTES = (predict, annotate)


def body_limits_by_type(settings: Settings) -> dict[str, dict[str, int]]:
    """The most bytes a request body may hold, for each upload route and media type."""
    return {path: limits for routes in UPLOAD_ROUTES for path, limits in routes.body_limits(settings).items()}


def body_limits(settings: Settings) -> dict[str, int]:
    """The most bytes a request body may hold, for each upload route, the largest of its media types."""
    return {path: max(limits.values()) for path, limits in body_limits_by_type(settings).items()}


def load_model_for(settings: Settings, path: Path | None = None) -> LoadedModel:
    """``path`` (default: the default model) on the configured runtime (LiteRT: the cores shared among
    the workers)."""
    return load_model(
        path or settings.model_path,
        runtime=settings.model_runtime,
        cache_dir=settings.model_cache_dir,
        threads=max(1, usable_cores() // settings.workers),
    )


def body_limit_for(settings: Settings) -> Callable[[str, str], int | None]:
    """``BodyLimitMiddleware``'s ``limit_for(path, media_type)``: a media type the route does not take
    gets the route's smallest limit (its answer is a 415 anyway)."""
    limits = body_limits_by_type(settings)

    def limit_for(path: str, media_type: str) -> int | None:
        by_type = limits.get(path)
        if by_type is None:
            return None
        return by_type.get(media_type, min(by_type.values()))

    return limit_for


async def load_served_models(
    settings: Settings, preloaded: Sequence[LoadedModel]
) -> tuple[LoadedModel, list[LoadedModel]]:
    """The default model and the others of ``settings.served_model_paths``, loading those not preloaded."""
    known = {model.path.resolve(): model for model in preloaded}

    async def get(path: Path) -> LoadedModel:
        return known.get(path.resolve()) or await anyio.to_thread.run_sync(load_model_for, settings, path)

    default, *others = [await get(path) for path in settings.served_model_paths]
    return default, others


def create_app(
    settings: Settings | None = None,
    *,
    model: LoadedModel | None = None,
    models: Sequence[LoadedModel] = (),
) -> FastAPI:
    """Build the application; ``model`` (the default) and ``models`` (others of EMOTION_MODELS) may be
    preloaded (``python -m app`` loads the default, to fail fast); the lifespan loads the rest."""
    settings = settings or get_settings()
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        preloaded = [*([model] if model is not None else []), *models]
        await state.start(*await load_served_models(settings, preloaded))
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
    app.state.challenges = ChallengeDesk(settings)  # open challenges, token secret (routes/challenges.py)
    install_error_handlers(app)

    app.add_middleware(
        BodyLimitMiddleware,
        limit_for=body_limit_for(settings),
        body_timeout_s=settings.body_timeout_s,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "X-Request-ID", "Content-Type"],
        )
    app.add_middleware(MetricsMiddleware, metrics=state.metrics, routes=lambda: app.routes)
    app.add_middleware(RequestContextMiddleware)

    # Added to the app's own router, not include_router'd: FastAPI 0.165 nests an included router as
    # one entry of app.routes, and app.routes must list every route (tests and tools read it).
    for routes in (health, models_routes, predict, annotate, metrics, challenges, stream, live, demo):
        routes.add_routes(app.router, settings)
    return app


app = create_app()
