"""``python -m app``: check the model, then serve it with uvicorn on the configured host and port.

One worker (``EMOTION_WORKERS=1``): this process loads the model and serves it. Several: the model is
checked in a child process, then uvicorn's supervisor runs the workers (``app/workers.py``).
"""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from app.api.observability import configure_logging
from app.core.config import get_settings
from app.core.inference import ModelLoadError
from app.workers import check_model_in_child, provide_prometheus_dir, serve_workers, server_options


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
    from app.main import create_app, load_model_for

    if settings.workers > 1:
        problem = check_model_in_child(settings)  # fail fast, with one line, before binding the port
        if problem is not None:
            print(f"error: cannot start the service: {problem}", file=sys.stderr)
            return 1
        provide_prometheus_dir()
        return serve_workers(settings, log_config)
    try:
        model = load_model_for(settings)  # fail fast, with one line, before binding the port
    except ModelLoadError as exc:
        print(f"error: cannot start the service: {exc}", file=sys.stderr)
        return 1
    uvicorn.run(create_app(settings, model=model), **server_options(settings, log_config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
