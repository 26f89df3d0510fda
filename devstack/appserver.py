"""The app under gunicorn, exactly as App Service runs it, on a loopback port.

`make dev` and the integration tests both serve the app through these classes: `AppServer` is
gunicorn alone; `Site` is the app as clients meet it in Azure, over HTTPS behind a
TLS-terminating front end (nginx, see devstack/frontend.py), or, where no nginx can be had,
over gunicorn's own TLS.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import requests

from devstack.fake_identity.tls import TlsFiles
from devstack.frontend import FrontEnd, find_nginx, nginx_version
from devstack.process import LOOPBACK, ManagedProcess, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class AppServer:
    """gunicorn serving `app:create_app()` (or another WSGI target) with the given environment.

    `argv` replaces the whole command (e.g. infra's startup command, run from a deployment
    package's directory `cwd` as `user`); it must bind `port`. `workers`/`threads` of None leave
    gunicorn's configuration to decide, as on App Service.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        port: int = 0,
        host: str = LOOPBACK,
        workers: int | None = 2,
        threads: int | None = 4,
        log_dir: Path | None = None,
        start_timeout: float = 60.0,
        wsgi_app: str = "app:create_app()",
        name: str = "app",
        tls: TlsFiles | None = None,
        argv: Sequence[str] | None = None,
        cwd: Path = PROJECT_ROOT,
        user: str | None = None,
    ) -> None:
        self.env = dict(env)
        self.wsgi_app = wsgi_app
        self.argv = list(argv) if argv is not None else None
        self.cwd = cwd
        self.user = user
        self.name = name
        self.host = host
        self.port = port or free_port()
        self.workers = workers
        self.threads = threads
        self.log_path = (
            log_dir or Path(tempfile.mkdtemp(prefix="photoshare-app-"))
        ) / f"{name.replace(' ', '-')}.log"
        self.start_timeout = start_timeout
        self.tls = tls
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The gunicorn command line; gunicorn's own TLS options go before the WSGI target."""
        argv = self.argv or [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:app.gunicorn_conf",
            self.wsgi_app,
        ]
        if self.tls is None:
            return list(argv)
        return [
            *argv[:-1],
            "--certfile",
            str(self.tls.cert_pem),
            "--keyfile",
            str(self.tls.key_pem),
            argv[-1],
        ]

    def start(self) -> AppServer:
        env = {**self.env, "HOST": self.host, "PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        if self.workers is not None:
            env["WEB_CONCURRENCY"] = str(self.workers)
        if self.threads is not None:
            env["GUNICORN_THREADS"] = str(self.threads)
        self._proc = ManagedProcess(
            self.command(),
            name=self.name,
            log_path=self.log_path,
            env=env,
            cwd=self.cwd,
            user=self.user,
        )
        self._proc.wait_ready(self._answers, timeout=self.start_timeout, what=f"{self.name} (gunicorn)")
        return self

    def _answers(self) -> bool:
        try:
            verify = str(self.tls.ca_pem) if self.tls else True
            return requests.get(f"{self.url}/healthz", timeout=1, verify=verify).status_code == 200
        except requests.RequestException:
            return False

    def running(self) -> bool:
        return self._proc is not None and self._proc.running()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Site:
    """The app as clients meet it in Azure: HTTPS on a front end that forwards to gunicorn.

    With nginx installed, gunicorn serves plain HTTP on a loopback port and nginx terminates
    TLS in front of it (`direct_url` reaches gunicorn without the front end). Without nginx,
    gunicorn terminates TLS itself (`front_end` says which), never plain HTTP.
    """

    def __init__(
        self, *, env: Mapping[str, str], tls: TlsFiles, log_dir: Path | None = None, **app_options
    ) -> None:
        self.tls = tls
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="photoshare-site-"))
        nginx = find_nginx()
        self.app = AppServer(env=env, log_dir=self.log_dir, tls=None if nginx else tls, **app_options)
        self.proxy = (
            FrontEnd(upstream_port=self.app.port, tls=tls, log_dir=self.log_dir / "nginx", nginx=nginx)
            if nginx
            else None
        )
        self.front_end = f"nginx {nginx_version(nginx)}" if nginx else "gunicorn's own TLS (nginx not found)"

    @property
    def url(self) -> str:
        return self.proxy.url if self.proxy else self.app.url

    @property
    def direct_url(self) -> str:
        """gunicorn itself, bypassing the front end."""
        return self.app.url

    @property
    def pid(self) -> int | None:
        return self.app.pid

    @property
    def env(self) -> dict[str, str]:
        return self.app.env

    def start(self) -> Site:
        self.app.start()
        if self.proxy is not None:
            try:
                self.proxy.start()
            except BaseException:
                self.app.stop()
                raise
        return self

    def running(self) -> bool:
        return self.app.running() and (self.proxy is None or self.proxy.running())

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        self.app.stop()

    def log(self) -> str:
        return self.app.log()

    @property
    def log_path(self) -> Path:
        return self.app.log_path

    def __enter__(self) -> Site:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
