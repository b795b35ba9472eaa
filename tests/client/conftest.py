"""The client's tests against the real service: the app with the shipped model, served over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.inference import LoadedModel
from app.main import create_app
from tests.app.conftest import loaded_model, model_path, settings_for  # noqa: F401  (fixtures)
from tests.app.serving import serve_in_thread

API_KEY = "client-test-key"


@pytest.fixture(scope="session")
def service_url(model_path: Path, loaded_model: LoadedModel) -> Iterator[str]:  # noqa: F811
    """The service with its default settings (faces=largest), over HTTP on 127.0.0.1."""
    with serve_in_thread(create_app(settings_for(model_path), model=loaded_model)) as url:
        yield url


@pytest.fixture(scope="session")
def secured_service_url(model_path: Path, loaded_model: LoadedModel) -> Iterator[str]:  # noqa: F811
    """The same service requiring the X-API-Key API_KEY."""
    with serve_in_thread(create_app(settings_for(model_path, api_key=API_KEY), model=loaded_model)) as url:
        yield url
