"""The deployment files agree with the service: setting names, probe paths, upload limits, ports.

pydantic-settings ignores an EMOTION_* variable that names no setting, so a typo or a renamed setting
in docker-compose.yml, the Kubernetes manifests or the Dockerfile would silently do nothing; these
tests catch that drift without Docker or a cluster.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.api.json_uploads import json_upload_limit
from app.api.uploads import MULTIPART_OVERHEAD
from app.core.config import Settings
from app.main import body_limits, body_limits_by_type, create_app

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
NGINX_CONF = REPO_ROOT / "deploy" / "nginx" / "nginx.conf"
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
HEALTHCHECK = REPO_ROOT / "deploy" / "healthcheck.py"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def deployment() -> dict[str, Any]:
    return yaml.safe_load((K8S_DIR / "deployment.yaml").read_text())


def container() -> dict[str, Any]:
    return deployment()["spec"]["template"]["spec"]["containers"][0]


def setting_names() -> set[str]:
    return {f"EMOTION_{name.upper()}" for name in Settings.model_fields}


def dockerfile_env() -> dict[str, str]:
    runtime = DOCKERFILE.read_text().split(" AS runtime", 1)[1]
    block = re.search(r"^ENV (.*?)(?<!\\)$", runtime, re.S | re.M)
    assert block, "no ENV in the runtime stage"
    return dict(re.findall(r"(\w+)=(\S+)", block.group(1)))


def route_paths() -> set[str]:
    return {route.path for route in create_app(Settings()).routes}  # type: ignore[attr-defined]


def test_every_emotion_variable_names_a_setting() -> None:
    known = setting_names()
    found: dict[str, set[str]] = {
        "docker-compose.yml": {
            key
            for service in compose()["services"].values()
            for key in service.get("environment", {})
            if key.startswith("EMOTION_")
        },
        "deploy/k8s/deployment.yaml": {
            e["name"] for e in container()["env"] if e["name"].startswith("EMOTION_")
        },
        "Dockerfile": {key for key in dockerfile_env() if key.startswith("EMOTION_")},
    }
    for where, names in found.items():
        assert names, f"{where} sets no EMOTION_* variable"
        assert names <= known, f"{where} sets unknown settings {sorted(names - known)}"


def test_the_image_serves_the_baked_model_on_all_interfaces() -> None:
    env = dockerfile_env()
    assert env["EMOTION_HOST"] == "0.0.0.0"
    assert env["EMOTION_PORT"] == "8000"
    assert env["EMOTION_MODEL_PATH"] == "/app/models/emotion_cnn.h5"
    text = DOCKERFILE.read_text()
    assert "COPY models/emotion_cnn.h5 models/emotion_cnn.json /app/models/" in text
    # every shipped model, so that the image serves them side by side as a checkout does
    for shipped in sorted((REPO_ROOT / "models").glob("*.h5")):
        assert f"COPY models/{shipped.name} models/{shipped.stem}.json /app/models/" in text, shipped.name
        assert f"!models/{shipped.name}" in (REPO_ROOT / ".dockerignore").read_text()
    assert re.search(r"^USER 10001:10001$", text, re.M), "the image must run as uid 10001"
    assert (REPO_ROOT / "models" / "emotion_cnn.h5").is_file()


def test_probes_use_the_service_endpoints() -> None:
    paths = route_paths()
    spec = container()
    assert spec["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/health"
    assert spec["startupProbe"]["httpGet"]["path"] == "/health"
    assert {"/ready", "/health", "/predict", "/predict/batch", "/docs"} <= paths
    assert "/ready" in HEALTHCHECK.read_text()
    for service in ("emotion", "emotion-replica"):
        assert compose()["services"][service]["healthcheck"]["test"] == [
            "CMD",
            "python",
            "/app/healthcheck.py",
        ]


def test_container_ports_line_up() -> None:
    spec = container()
    port = int(next(e["value"] for e in spec["env"] if e["name"] == "EMOTION_PORT"))
    assert spec["ports"][0]["containerPort"] == port == 8000
    service = yaml.safe_load((K8S_DIR / "service.yaml").read_text())
    assert service["spec"]["ports"][0]["targetPort"] == spec["ports"][0]["name"]
    assert "server emotion-replica:8000" in NGINX_CONF.read_text()
    assert compose()["services"]["emotion"]["ports"] == ["${EMOTION_PUBLISH_PORT:-8000}:8000"]


def test_nginx_body_limits_match_the_service() -> None:
    """nginx refuses what the service would refuse, and nothing it would accept."""
    env = compose()["services"]["emotion-replica"]["environment"]
    per_file = int(re.search(r":-(\d+)\}", env["EMOTION_MAX_UPLOAD_BYTES"]).group(1))  # type: ignore[union-attr]
    files = Settings().max_batch_files
    text = NGINX_CONF.read_text()

    def limit_kib(location: str) -> int:
        match = re.search(rf"location = {re.escape(location)} \{{\s*client_max_body_size (\d+)k;", text)
        assert match, f"no client_max_body_size for {location}"
        return int(match.group(1))

    assert limit_kib("/predict") * 1024 == per_file + MULTIPART_OVERHEAD
    assert limit_kib("/predict/batch") * 1024 == files * (per_file + MULTIPART_OVERHEAD)
    # JSON bodies (base64: 4/3 of the file) go through /_json/PATH, with the service's JSON limit.
    assert limit_kib("/_json/predict") * 1024 == json_upload_limit(per_file)
    # Every upload route of the service has its own location with the service's limit, per media type.
    for path, limits in body_limits_by_type(Settings(max_upload_bytes=per_file)).items():
        for media_type, limit in limits.items():
            location = f"/_json{path}" if media_type == "application/json" else path
            assert limit_kib(location) * 1024 == limit, (path, media_type)
    assert set(body_limits(Settings())) == {"/predict", "/predict/batch", "/annotate"}


def test_nginx_keeps_the_metrics_private() -> None:
    """/metrics is answered 404 by nginx itself, never proxied to a replica."""
    match = re.search(r"location = /metrics \{([^}]*)\}", NGINX_CONF.read_text())
    assert match, "nginx has no location for /metrics: it would be proxied (public)"
    assert "return 404" in match.group(1) and "proxy_pass" not in match.group(1)


def test_nginx_drops_idle_replica_connections_before_the_replica_does() -> None:
    """Otherwise nginx can send a POST on a connection the replica is closing, and answer 502."""
    match = re.search(r"upstream emotion \{[^}]*keepalive_timeout (\d+)s;", NGINX_CONF.read_text())
    assert match, "the upstream block sets no keepalive_timeout (nginx's default is 60 s)"
    replica = compose()["services"]["emotion-replica"]["environment"]
    assert "EMOTION_KEEP_ALIVE_S" not in replica  # the replicas run with the default
    assert int(match.group(1)) < Settings().keep_alive_s


def test_nginx_retries_a_prediction_on_another_replica() -> None:
    """A replica that dies (refused, reset mid-request, 502/503) costs the client nothing: nginx sends
    the buffered request again, POST included (a prediction is idempotent), and leaves the replica out."""
    text = NGINX_CONF.read_text()
    directive = re.search(r"^\s*proxy_next_upstream ([^;]+);", text, re.M)
    assert directive, "no proxy_next_upstream"
    assert {"error", "timeout", "http_502", "http_503", "non_idempotent"} <= set(directive.group(1).split())
    tries = re.search(r"^\s*proxy_next_upstream_tries (\d+);", text, re.M)
    assert tries and int(tries.group(1)) >= 2
    # An unbuffered body cannot be sent again once its first bytes went to the replica that died.
    assert re.search(r"^\s*proxy_request_buffering on;", text, re.M)
    assert not re.search(r"^\s*proxy_request_buffering off;", text, re.M)
    server = re.search(r"^\s*server emotion-replica:8000 ([^;]*);", text, re.M)
    assert server and "max_fails=" in server.group(1) and "fail_timeout=" in server.group(1)


def test_the_shutdown_fits_in_the_grace_periods() -> None:
    """Kubernetes: preStop sleep + the drain bound < terminationGracePeriodSeconds; compose likewise."""
    spec = container()
    pod = deployment()["spec"]["template"]["spec"]
    timeout = int(next(e["value"] for e in spec["env"] if e["name"] == "EMOTION_SHUTDOWN_TIMEOUT_S"))
    assert timeout == Settings().shutdown_timeout_s
    sleep = int(spec["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert sleep + timeout < pod["terminationGracePeriodSeconds"]
    for name in ("emotion", "emotion-replica"):
        service = compose()["services"][name]
        configured = int(
            re.search(r":-(\d+)\}", service["environment"]["EMOTION_SHUTDOWN_TIMEOUT_S"]).group(1)
        )  # type: ignore[union-attr]
        assert configured < int(service["stop_grace_period"].rstrip("s"))


def test_scaled_profile_is_opt_in() -> None:
    services = compose()["services"]
    assert "profiles" not in services["emotion"]
    assert services["emotion-replica"]["profiles"] == ["scaled"]
    assert services["lb"]["profiles"] == ["scaled"]
    assert services["lb"]["image"].startswith("nginx:")
    assert services["lb"]["depends_on"]["emotion-replica"]["condition"] == "service_healthy"


class _Handler(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/ready" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_service() -> Iterator[tuple[ThreadingHTTPServer, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()


def _probe(port: int) -> int:
    env = {"EMOTION_PORT": str(port), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, timeout=10
    ).returncode


def test_healthcheck_script_follows_ready(fake_service: tuple[ThreadingHTTPServer, type[_Handler]]) -> None:
    server, handler = fake_service
    port = server.server_address[1]
    assert _probe(port) == 0
    handler.status = 503  # loading, or shutting down
    assert _probe(port) == 1
    server.shutdown()
    server.server_close()
    assert _probe(port) == 1  # nothing listening
