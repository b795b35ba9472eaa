"""FastAPI dependencies the routes share: the running service, the API key check, the faces option."""

import secrets
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

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Required when configured")


async def require_api_key(service: Service, key: Annotated[str | None, Depends(api_key_header)]) -> None:
    expected = service.settings.api_key
    if expected is None:
        return
    if key is None or not secrets.compare_digest(key.encode(), expected.get_secret_value().encode()):
        raise UnauthorizedError("a valid X-API-Key header is required")


def api_key_dependencies(settings: Settings) -> list[Any]:
    """For the protected routers. Declared (in the OpenAPI schema too) only when a key is configured:
    the schema tells the truth."""
    return [Depends(require_api_key)] if settings.api_key is not None else []
