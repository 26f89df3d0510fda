"""The app under gunicorn, exactly as App Service runs it, on a loopback port.

`make dev` and the integration tests both serve the app through this class.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import requests

from devstack.process import LOOPBACK, ManagedProcess, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class AppServer:
    """gunicorn serving `app:create_app()` (or another WSGI target) with the given environment."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        port: int = 0,
        host: str = LOOPBACK,
        workers: int = 2,
        threads: int = 4,
        log_dir: Path | None = None,
        start_timeout: float = 60.0,
        wsgi_app: str = "app:create_app()",
        name: str = "app",
    ) -> None:
        self.env = dict(env)
        self.wsgi_app = wsgi_app
        self.name = name
        self.host = host
        self.port = port or free_port()
        self.workers = workers
        self.threads = threads
        self.log_path = (
            log_dir or Path(tempfile.mkdtemp(prefix="photoshare-app-"))
        ) / f"{name.replace(' ', '-')}.log"
        self.start_timeout = start_timeout
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> AppServer:
        env = {
            **self.env,
            "HOST": self.host,
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(self.workers),
            "GUNICORN_THREADS": str(self.threads),
            "PYTHONUNBUFFERED": "1",
        }
        self._proc = ManagedProcess(
            [sys.executable, "-m", "gunicorn", "-c", "python:app.gunicorn_conf", self.wsgi_app],
            name=self.name,
            log_path=self.log_path,
            env=env,
            cwd=PROJECT_ROOT,
        )
        self._proc.wait_ready(self._answers, timeout=self.start_timeout, what=f"{self.name} (gunicorn)")
        return self

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
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
