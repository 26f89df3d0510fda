"""The processes the benchmark measures: the app and the naive app under gunicorn, on the local
stack, plus the /proc readings of their single worker.

Both run with the app's own gunicorn settings (app/gunicorn_conf.py) so that only the code
differs; one worker makes the serving pid known and the token count per process exact.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from devstack.appserver import AppServer
from devstack.process import processes


def naive_server(*, env: dict[str, str], log_dir: Path, workers: int = 1, threads: int = 4) -> AppServer:
    """gunicorn serving bench.naive_app with the same config file as the app."""
    return AppServer(
        env=env,
        workers=workers,
        threads=threads,
        log_dir=log_dir,
        wsgi_app="bench.naive_app:app",
        name="naive app",
    )


def single_worker(server: AppServer) -> int:
    """The one worker of a 1-worker server (the pid that serves every request)."""
    assert server.pid is not None
    deadline = time.monotonic() + 10
    while True:
        pids = processes(parent=server.pid)  # gunicorn forks its workers directly
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
def running(*servers: AppServer) -> Iterator[None]:
    """Start servers in order; stop them all (reverse order) however the block ends."""
    started: list[AppServer] = []
    try:
        for server in servers:
            started.append(server)  # before start(): a start interrupted half-way is stopped too
            server.start()
        yield
    finally:
        for server in reversed(started):
            server.stop()


@contextmanager
def started_in_background(server: AppServer) -> Iterator[Callable[[], None]]:
    """Start `server` in a thread while the block goes on; the block calls the function it is
    given to wait until the server answers. Stopped however the block ends."""
    pool = ThreadPoolExecutor(1)
    starting = pool.submit(server.start)

    def wait() -> None:
        starting.result()

    try:
        yield wait
    finally:
        with contextlib.suppress(Exception):  # a failed start was reported by the wait, or is moot
            starting.result()
        pool.shutdown()
        server.stop()
