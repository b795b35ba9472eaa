"""bench.local_balancer: the deployed nginx config, pointed at local replicas and nothing else changed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.local_balancer import NGINX_CONF, nginx_path, render_config
from tests.conftest import require


def test_the_upstream_becomes_one_server_line_per_replica_with_the_same_health_checks() -> None:
    template, workdir = NGINX_CONF.read_text(), Path("/srv/lb")
    config = render_config(template, [4001, 4002, 4003], 4000, workdir)
    servers = [line.strip() for line in config.splitlines() if line.strip().startswith("server 127.0.0.1:")]
    assert servers == [
        f"server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;" for port in (4001, 4002, 4003)
    ]
    assert "listen 127.0.0.1:4000;" in config and "listen 8080;" not in config
    assert "pid /srv/lb/nginx.pid;" in config and " /tmp/" not in config
    # Everything else is the deployed config: the same lines once the changed ones are left out.
    changed = ("server ", "listen ", "pid ", "client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path",
               "uwsgi_temp_path", "scgi_temp_path")  # fmt: skip

    def kept(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.strip().startswith(changed)]

    assert kept(config) == kept(template)


def test_a_template_without_the_upstream_line_is_refused() -> None:
    tmp_path = Path("/srv/lb")
    with pytest.raises(ValueError, match="emotion-replica"):
        render_config("events {}\nhttp { server { listen 8080; } }\n", [4001], 4000, tmp_path)
    with pytest.raises(ValueError, match="at least one"):
        render_config(NGINX_CONF.read_text(), [], 4000, tmp_path)


def test_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    nginx = nginx_path()
    require(nginx is not None, "nginx is not installed (apt-get install nginx-light)")
    assert nginx is not None
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_config(NGINX_CONF.read_text(), [4001, 4002], 4000, tmp_path))
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-g", f"error_log {tmp_path}/error.log;"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
