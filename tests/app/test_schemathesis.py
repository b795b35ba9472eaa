"""Schemathesis against the service's own OpenAPI schema (in process, over ASGI, the real model).

Every operation gets its examples, Schemathesis' coverage cases (missing/extra/invalid parts, headers,
query values) and up to MAX_EXAMPLES fuzzed cases, each run through every check Schemathesis enables by
default: among them ``not_a_server_error``, ``response_schema_conformance``, ``status_code_conformance``,
``content_type_conformance``, ``negative_data_rejection``, ``positive_data_acceptance`` and, with a key
configured, ``ignored_auth``. The `file` parts are real images (tests/app/schemathesis_hooks.py).
The command-line equivalent against a running service is in docs/hardening.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python.asgi import shutdown_lifespans

import tests.app.schemathesis_hooks  # noqa: F401  (registers the image strategies)
from app.main import create_app
from tests.app.conftest import API_KEY, settings_for

MAX_EXAMPLES = 25
SEED = 20260501  # fixed: CI runs the same cases every time; change it locally to explore further

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _schema(model_path: Path, loaded_model, **overrides) -> schemathesis.BaseSchema:
    # Schemathesis runs the app's lifespan itself on the first request (and stops it at teardown).
    app = create_app(settings_for(model_path, max_batch_files=4, **overrides), model=loaded_model)
    config: dict = {"seed": SEED}
    if "api_key" in overrides:
        # Valid cases carry the key; the cases that deliberately leave it out or garble it do not.
        config["auth"] = {"openapi": {"APIKeyHeader": {"api_key": overrides["api_key"]}}}
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=schemathesis.Config.from_dict(config))


@pytest.fixture(scope="module")
def open_api_schema(model_path: Path, loaded_model) -> Iterator[schemathesis.BaseSchema]:
    yield _schema(model_path, loaded_model)
    shutdown_lifespans()


@pytest.fixture(scope="module")
def secured_api_schema(model_path: Path, loaded_model) -> Iterator[schemathesis.BaseSchema]:
    yield _schema(model_path, loaded_model, api_key=API_KEY)
    shutdown_lifespans()


open_api = schemathesis.pytest.from_fixture("open_api_schema")
secured_api = schemathesis.pytest.from_fixture("secured_api_schema")
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # the model runs on a shared CPU: latency is not what is tested here
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@open_api.parametrize()
@FUZZ
def test_the_service_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate()


@secured_api.parametrize()
@FUZZ
def test_the_service_with_an_api_key_conforms_to_its_schema(case: schemathesis.Case) -> None:
    response = case.call_and_validate()
    if response.request.headers.get("X-API-Key") == API_KEY:  # Schemathesis counts a 401 as a fair answer
        assert response.status_code != 401, case.as_curl_command()


def test_the_schema_states_the_upload_contract(open_api_schema, secured_api_schema) -> None:
    """What the fuzzing relies on: `file` is the only field, images only, batches bounded; security only
    declared when a key is configured."""
    raw = open_api_schema.raw_schema
    for path, many in (("/predict", False), ("/predict/batch", True)):
        content = raw["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
        assert content["schema"]["additionalProperties"] is False
        assert content["encoding"]["file"]["contentType"].startswith("image/")
        file_schema = content["schema"]["properties"]["file"]
        if many:
            assert (file_schema["minItems"], file_schema["maxItems"]) == (1, 4)
        assert "408" in raw["paths"][path]["post"]["responses"]
        assert "security" not in raw["paths"][path]["post"]
    secured = secured_api_schema.raw_schema
    for path, method in (("/predict", "post"), ("/predict/batch", "post"), ("/model", "get")):
        assert secured["paths"][path][method]["security"] == [{"APIKeyHeader": []}]
    for path in ("/health", "/ready"):
        assert "security" not in secured["paths"][path]["get"]
