"""FastAPI dependencies the routes share: the running service, the API key check, the faces option."""

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader

from app.api.state import ServiceState
from app.core.config import Settings
from app.core.errors import UnauthorizedError
from app.core.faces import FaceMode


def get_service(request: Request) -> ServiceState:
    service: ServiceState = request.app.state.service
    return service


Service = Annotated[ServiceState, Depends(get_service)]

# The default (None: the setting) is the parameter's, not Query's, inside Annotated.
FacesOption = Annotated[
    FaceMode | None,
    Query(description="`largest` (default setting), `all` faces, or `off` (classify the whole image)"),
]

ModelOption = Annotated[
    str | None,
    Query(
        max_length=200,
        description="The model to answer, by name (GET /models lists them); unset: the default model",
    ),
]

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Required when configured")


async def require_api_key(
    request: Request, service: Service, key: Annotated[str | None, Depends(api_key_header)]
) -> None:
    """One of the accepted keys (compared in constant time), then its rate limit when one is set.

    The access log names the key by its short hash (``api_key_id``); the key itself is never logged.
    """
    name = service.keys.identify(key)
    if name is None:
        raise UnauthorizedError("a valid X-API-Key header is required")
    request.state.api_key_id = name
    if service.rate_limiter is not None:
        service.rate_limiter.hit(name)


def api_key_dependencies(settings: Settings) -> list[Any]:
    """For the protected routers. Declared (in the OpenAPI schema too) only when a key is configured:
    the schema tells the truth."""
    return [Depends(require_api_key)] if settings.accepted_api_keys else []


def rate_limit_statuses(settings: Settings) -> tuple[int, ...]:
    """429 among a protected route's documented answers when a rate limit is configured."""
    return (429,) if settings.rate_limit_per_minute is not None else ()
