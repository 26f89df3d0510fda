"""nginx terminating TLS in front of the app, as App Service's front end does in Azure.

The app runs behind a front end that terminates HTTPS and forwards plain HTTP with
`X-Forwarded-Proto`, `X-Forwarded-For` and `X-Forwarded-Host`, keeping the client's `Host`, and
a per-request id (App Service's `X-ARR-LOG-ID`). This class plays that part locally with the
system's nginx, on a free loopback port, for the tests and `make dev`'s production mode alike.
Request bodies are streamed to the app (no buffering, no size limit of nginx's own) so the app's
`MAX_UPLOAD_MB` check and its 413 answer are what a client meets, as behind App Service.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path

from devstack.fake_identity.tls import TlsFiles
from devstack.process import LOOPBACK, ManagedProcess, ServiceError, free_port, port_accepts

START_TIMEOUT = 20.0
# App Service's front end gives up on a request after 230 s.
FRONT_END_TIMEOUT_SECONDS = 230

_CONFIG = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;
{user}
events {{ worker_connections 1024; }}

http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    server {{
        listen {host}:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;

        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_http_version 1.1;
        proxy_read_timeout {timeout}s;
        proxy_send_timeout {timeout}s;

        location / {{
            proxy_pass http://{upstream};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-ARR-LOG-ID $request_id;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def find_nginx() -> str | None:
    """nginx from $PHOTOSHARE_NGINX, the PATH, or Debian's /usr/sbin (not on a user's PATH).

    PHOTOSHARE_NGINX=none runs without a front end, as on a machine that has no nginx."""
    configured = os.environ.get("PHOTOSHARE_NGINX")
    if configured is not None and configured.strip().lower() in ("", "none"):
        return None
    for candidate in (configured, shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def nginx_version(nginx: str) -> str:
    result = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)  # noqa: S603
    return (result.stderr or result.stdout).strip().removeprefix("nginx version: ")


class FrontEnd:
    """nginx serving `https://127.0.0.1:<port>` and proxying to the app at `upstream_port`."""

    def __init__(
        self,
        *,
        upstream_port: int,
        tls: TlsFiles,
        port: int = 0,
        log_dir: Path | None = None,
        nginx: str | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        found = nginx or find_nginx()
        if found is None:
            raise ServiceError(
                "nginx is not installed: it plays App Service's TLS front end "
                "(Debian/Ubuntu: apt-get install nginx-light)"
            )
        self.nginx = found
        self.upstream_port = upstream_port
        self.tls = tls
        self.port = port or free_port()
        self.dir = log_dir or Path(tempfile.mkdtemp(prefix="photoshare-frontend-"))
        self.start_timeout = start_timeout
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def error_log_path(self) -> Path:
        return self.dir / "error.log"

    def config_text(self) -> str:
        # As root, nginx's workers drop to `nobody`, who cannot enter our private temp dirs.
        user = "user root;" if os.geteuid() == 0 else ""
        return _CONFIG.format(
            dir=self.dir,
            user=user,
            host=LOOPBACK,
            port=self.port,
            cert=self.tls.cert_pem,
            key=self.tls.key_pem,
            upstream=f"{LOOPBACK}:{self.upstream_port}",
            timeout=FRONT_END_TIMEOUT_SECONDS,
        )

    def start(self) -> FrontEnd:
        if self._proc is not None and self._proc.running():
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "nginx.conf"
        config.write_text(self.config_text(), encoding="utf-8")
        self._proc = ManagedProcess(
            # -e: the error log before the config is read (the default path needs root).
            [self.nginx, "-e", str(self.error_log_path), "-p", str(self.dir), "-c", str(config)],
            name=f"nginx on port {self.port}",
            log_path=self.dir / "nginx.out",
        )
        self._proc.wait_ready(self._answers, timeout=self.start_timeout, what="nginx (TLS front end)")
        return self

    def _answers(self) -> bool:
        if not port_accepts(self.port):
            return False
        context = ssl.create_default_context(cafile=str(self.tls.ca_pem))
        try:
            with (
                socket.create_connection((LOOPBACK, self.port), timeout=1) as raw,
                context.wrap_socket(raw, server_hostname=LOOPBACK),
            ):
                return True
        except OSError:
            return False

    def running(self) -> bool:
        return self._proc is not None and self._proc.running()

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def log(self) -> str:
        path = self.error_log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> FrontEnd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
