"""The processes the benchmark measures: the app and the naive app under gunicorn, on the local
stack, plus the /proc readings of their single worker.

Both run with the app's own gunicorn settings (app/gunicorn_conf.py) so that only the code
differs; one worker makes the serving pid known and the token count per process exact.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from devstack.appserver import PROJECT_ROOT, AppServer
from devstack.process import LOOPBACK, ManagedProcess, free_port


class NaiveServer:
    """gunicorn serving bench.naive_app with the same config file as the app."""

    def __init__(self, *, env: dict[str, str], log_dir: Path, workers: int = 1, threads: int = 4) -> None:
        self.port = free_port()
        self.env = {
            **env,
            "HOST": LOOPBACK,
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_THREADS": str(threads),
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = log_dir / "naive.log"
        self._proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> NaiveServer:
        self._proc = ManagedProcess(
            [sys.executable, "-m", "gunicorn", "-c", "python:app.gunicorn_conf", "bench.naive_app:app"],
            name="naive app",
            log_path=self.log_path,
            env=self.env,
            cwd=PROJECT_ROOT,
        )
        self._proc.wait_ready(self._answers, timeout=60, what="the naive app (gunicorn)")
        return self

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None


def worker_pids(master_pid: int) -> list[int]:
    """gunicorn's workers: the master's children (gunicorn forks them directly)."""
    pids: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:
            pids.append(int(stat.parent.name))
    return sorted(pids)


def single_worker(server: AppServer | NaiveServer) -> int:
    """The one worker of a 1-worker server (the pid that serves every request)."""
    assert server.pid is not None
    deadline = time.monotonic() + 10
    while True:
        pids = worker_pids(server.pid)
        if len(pids) == 1:
            return pids[0]
        if time.monotonic() > deadline:
            raise RuntimeError(f"expected one gunicorn worker under {server.pid}, found {pids}")
        time.sleep(0.1)


def status_kb(pid: int, field: str) -> int:
    """A `/proc/<pid>/status` memory field (VmRSS, VmHWM) in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs 5); False when not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class PeakRss:
    """Samples a process's VmRSS from a thread; with VmHWM, the peak during a `with` block."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.pid = pid
        self.interval = interval
        self.baseline_kb = 0
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._hwm_reset = False

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmRSS"))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self.baseline_kb = status_kb(self.pid, "VmRSS")
        self._hwm_reset = reset_peak(self.pid)
        self.peak_kb = self.baseline_kb
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._hwm_reset:  # VmHWM catches a spike shorter than the sampling interval
            self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmHWM"))


@contextmanager
def running(*servers: AppServer | NaiveServer) -> Iterator[None]:
    """Start servers in order; stop them all (reverse order) however the block ends."""
    started: list[AppServer | NaiveServer] = []
    try:
        for server in servers:
            started.append(server)  # before start(): a start interrupted half-way is stopped too
            server.start()
        yield
    finally:
        for server in reversed(started):
            server.stop()
