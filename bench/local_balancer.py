"""The compose "scaled" profile's load balancer, on this machine: the host's nginx running
deploy/nginx/nginx.conf in front of replicas listening on local ports.

:func:`render_config` turns the compose config into a local one: the ``server emotion-replica:8000``
line becomes one ``server 127.0.0.1:PORT`` line per replica with the same parameters (passive health
checks), nginx listens on a local port, and its pid and temp files go to a work folder. Everything else
(retries, timeouts, limits) is the deployed config, unchanged. :class:`LocalNginx` starts it and stops
it. Used by ``bench/replica_kill.py`` and ``tests/deploy/test_nginx_lb.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NGINX_CONF = REPO_ROOT / "deploy" / "nginx" / "nginx.conf"
_UPSTREAM = re.compile(r"^(\s*)server emotion-replica:8000( [^;]*)?;", re.MULTILINE)
_LISTEN = "listen 8080;"


def nginx_path() -> str | None:
    """The host's nginx (Debian: ``apt-get install nginx-light``), or None."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def render_config(template: str, replica_ports: Sequence[int], listen_port: int, workdir: Path) -> str:
    """``template`` (deploy/nginx/nginx.conf) pointed at local replicas, listening on ``listen_port``."""
    match = _UPSTREAM.search(template)
    if match is None or _LISTEN not in template:
        raise ValueError("the template has no `server emotion-replica:8000 ...;` line or no `listen 8080;`")
    if not replica_ports:
        raise ValueError("at least one replica port is needed")
    indent, parameters = match.group(1), match.group(2) or ""
    servers = "\n".join(f"{indent}server 127.0.0.1:{port}{parameters};" for port in replica_ports)
    config = template[: match.start()] + servers + template[match.end() :]
    config = config.replace(_LISTEN, f"listen 127.0.0.1:{listen_port};")
    return config.replace(" /tmp/", f" {workdir}/")  # pid file and temp paths


@dataclass
class LocalNginx:
    """``with LocalNginx(ports, listen_port, workdir) as lb:`` runs nginx (daemonized) until the end."""

    replica_ports: Sequence[int]
    listen_port: int
    workdir: Path
    template: Path = NGINX_CONF

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    @property
    def error_log(self) -> Path:
        return self.workdir / "error.log"

    def _command(self) -> list[str]:
        nginx = nginx_path()
        if nginx is None:
            raise RuntimeError("nginx is not installed: apt-get install -y nginx-light (Debian/Ubuntu)")
        conf = self.workdir / "nginx.conf"
        return [nginx, "-p", str(self.workdir), "-c", str(conf), "-g", f"error_log {self.error_log};"]

    def __enter__(self) -> LocalNginx:
        self.workdir.mkdir(parents=True, exist_ok=True)
        text = render_config(self.template.read_text(), self.replica_ports, self.listen_port, self.workdir)
        (self.workdir / "nginx.conf").write_text(text)
        command = self._command()
        subprocess.run([*command, "-t", "-q"], check=True)
        # Daemonizes; stopped with -s quit. Its access log and the config's stderr error log are not
        # needed here: the error log is also written to error_log (the -g above).
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc_info: object) -> None:
        subprocess.run([*self._command(), "-s", "quit"], check=False, capture_output=True)
