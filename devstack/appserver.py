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
    """gunicorn serving `app:create_app()` with the given environment."""

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
    ) -> None:
        self.env = dict(env)
        self.host = host
        self.port = port or free_port()
        self.workers = workers
        self.threads = threads
        self.log_path = (log_dir or Path(tempfile.mkdtemp(prefix="photoshare-app-"))) / "app.log"
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
            [sys.executable, "-m", "gunicorn", "-c", "python:app.gunicorn_conf", "app:create_app()"],
            name="app",
            log_path=self.log_path,
            env=env,
            cwd=PROJECT_ROOT,
        )
        self._proc.wait_ready(self._answers, timeout=self.start_timeout, what="the app (gunicorn)")
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
