"""``python -m app``: check the model, then serve it with uvicorn on the configured host and port."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from app.api.observability import configure_logging
from app.core.config import get_settings
from app.core.inference import ModelLoadError, load_model


def main() -> int:
    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"EMOTION_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        print(f"error: cannot start the service: invalid settings: {problems}", file=sys.stderr)
        return 1
    log_config = configure_logging(settings.log_level)
    # app.main builds its module-level app from the settings: imported only once they are known good.
    from app.main import create_app

    try:
        model = load_model(settings.model_path)  # fail fast, with one line, before binding the port
    except ModelLoadError as exc:
        print(f"error: cannot start the service: {exc}", file=sys.stderr)
        return 1
    uvicorn.run(
        create_app(settings, model=model),
        host=settings.host,
        port=settings.port,
        log_config=log_config,
        timeout_keep_alive=settings.keep_alive_s,  # longer than the clients' own idle timeouts
        timeout_graceful_shutdown=15,  # in-flight requests get this long to finish on SIGTERM
        limit_concurrency=512,  # beyond this many connections uvicorn answers 503 at once
        backlog=1024,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
