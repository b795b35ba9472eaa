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
        # A setting's own error names it; a check across settings (keys, rate limit) names them itself.
        problems = "; ".join(
            f"EMOTION_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
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
        # SIGTERM: stop accepting, give the requests in flight this long, then exit (app/api/shutdown.py)
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        limit_concurrency=512,  # beyond this many connections uvicorn answers 503 at once
        backlog=1024,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
