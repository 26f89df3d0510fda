"""Shared process plumbing for the local services (Azurite, PostgreSQL).

Each service runs as a child in its own session, so the whole group can be signalled without
touching the owner, and it is stopped by its owner, or by an atexit safety net if the owner forgets.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import pwd
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    """A local service could not be found, started or stopped; the message says how to fix it."""


def free_port(host: str = LOOPBACK) -> int:
    """Ask the kernel for a free port; a small race remains until the service binds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if a server could bind host:port now (SO_REUSEADDR, as servers do, so TIME_WAIT
    sockets left by our own clients do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
        return True


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): kill(0) is all we know
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def log_tail(path: Path | None, lines: int = 20) -> str:
    """The last lines of a service log, for error messages."""
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    tail = text.rstrip().splitlines()[-lines:]
    if not tail:
        return f"\n(log {path} is empty)"
    return f"\nlast lines of {path}:\n    " + "\n    ".join(tail)


class ManagedProcess:
    """One service process in its own session (process group id == pid).

    Stopping sends `stop_signal` to the leader only (PostgreSQL wants SIGINT for a fast shutdown
    and would misread signals sent to its helpers), then SIGKILLs whatever is left in the group.
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        name: str,
        log_path: Path,
        stop_signal: int = signal.SIGTERM,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.stop_signal = stop_signal
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            try:
                self.popen = subprocess.Popen(
                    [os.fspath(a) for a in argv],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(env) if env is not None else None,
                    cwd=cwd,
                    start_new_session=True,
                    close_fds=True,
                    **run_as(user),
                )
            except OSError as exc:
                raise ServiceError(f"could not start {name} ({argv[0]}): {exc}") from exc
        _register(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait_ready(self, check: Callable[[], bool], *, timeout: float, what: str | None = None) -> float:
        """Poll `check` until it is true; fail fast if the process dies. Returns seconds waited.

        On failure the process is stopped and the error carries the end of its log.
        """
        started = time.monotonic()
        delay = 0.01
        while True:
            if self.popen.poll() is not None:
                raise ServiceError(
                    f"{what or self.name} exited with code {self.popen.returncode} while starting"
                    + log_tail(self.log_path)
                )
            if check():
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                self.stop()
                raise ServiceError(
                    f"{what or self.name} was not ready after {timeout:.0f} s" + log_tail(self.log_path)
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful signal to the leader, wait, then SIGKILL the whole group. Idempotent."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(self.stop_signal)
            if not _wait_exited(self.pid, timeout):
                _kill_group(self.pid)
                _wait_exited(self.pid, timeout)
            # The leader is exited but not reaped yet, so its pid (= group id) cannot be reused:
            # safe to kill stragglers (e.g. PostgreSQL backends) by group.
            _kill_group(self.pid)
            self.popen.wait(timeout=timeout)
        _unregister(self)


def run_as(user: str | None) -> dict[str, Any]:
    """Popen/subprocess.run arguments that drop root to `user` and its primary group only
    (PostgreSQL refuses to run as root)."""
    if user is None:
        return {}
    try:
        gid = pwd.getpwnam(user).pw_gid
    except KeyError:
        raise ServiceError(
            f"running as root needs a '{user}' system user to drop to: create it "
            f"(Debian/Ubuntu: installing the postgresql package does) or run as a normal user"
        ) from None
    return {"user": user, "group": gid, "extra_groups": []}


def _wait_exited(pid: int, timeout: float) -> bool:
    """Wait for our child to exit without reaping it (WNOWAIT keeps its pid reserved)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True  # already reaped
        if info is not None:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# Safety net: whatever the owner forgot to stop dies with it (on normal exit, Ctrl-C included).
_live: dict[int, ManagedProcess] = {}
_live_lock = threading.Lock()
_atexit_registered = False


def _register(proc: ManagedProcess) -> None:
    global _atexit_registered
    with _live_lock:
        _live[proc.pid] = proc
        if not _atexit_registered:
            atexit.register(stop_all)
            _install_sigterm_handler()
            _atexit_registered = True


def _install_sigterm_handler() -> None:
    """atexit does not run when the owner is sent SIGTERM (CI timeouts, `kill`): stop our
    children first, then die by SIGTERM as before. Only if nobody else handles SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: object) -> None:
        stop_all()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


def _unregister(proc: ManagedProcess) -> None:
    with _live_lock:
        _live.pop(proc.pid, None)


def stop_all(timeout: float = 5.0) -> None:
    """Stop every process this interpreter started and has not stopped yet."""
    with _live_lock:
        procs = list(_live.values())
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.stop(timeout=timeout)
