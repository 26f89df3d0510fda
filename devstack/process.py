"""Shared process plumbing for the local services (Azurite, PostgreSQL, nginx, gunicorn).

Each service runs as a child in its own session, so the whole group can be signalled without
touching the owner, and it is stopped by its owner, or by an atexit safety net if the owner forgets.
`LocalService` is the lifecycle of a service on an auto-picked port with a scratch directory.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

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


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...); None if
    unreadable. The name is skipped by its last ')' because it may hold spaces and parentheses."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    return fields is None or fields[0] != "Z"  # no /proc (not Linux): kill(0) is all we know


def processes(*, group: int | None = None, parent: int | None = None) -> list[int]:
    """Live (non-zombie) pids in process group `group` and/or children of `parent`, from /proc:
    what is left of a stopped service, or the workers a server forked."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat_fields(entry.name)
        if fields is None or fields[0] == "Z":
            continue
        if (parent is None or int(fields[1]) == parent) and (group is None or int(fields[2]) == group):
            found.append(int(entry.name))
    return sorted(found)


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
            _wait_group_gone(self.pid, timeout)
            self.popen.wait(timeout=timeout)
        _unregister(self)


def _port_taken(error: ServiceError) -> bool:
    """The service died because its port was taken (Node: EADDRINUSE; PostgreSQL: "Address
    already in use"); the message carries the end of its log."""
    message = str(error)
    return "EADDRINUSE" in message or "address already in use" in message.lower()


class LocalService(ABC):
    """A service process on a loopback port with a scratch directory, for `make dev` and the tests.

    `start()` retries a lost race for an auto-picked port, but only while no client has been told
    the port; `stop()` keeps the directory for a later `start()` on the same port; `destroy()`
    removes what the service created. Usable as a context manager, with an at-exit safety net.
    """

    label: ClassVar[str]  # how messages name the service
    log_name: ClassVar[str]  # its log file, in base_dir
    port_attempts: ClassVar[int] = 3

    def __init__(self, *, port: int, base_dir: Path | None, temp_prefix: str, start_timeout: float) -> None:
        self.port = port
        self._auto_port = port == 0
        self._own_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix=temp_prefix)).resolve()
        self._start_timeout = start_timeout
        self._proc: ManagedProcess | None = None
        self._started_once = False
        atexit.register(self._cleanup_at_exit)

    @property
    def pid(self) -> int | None:
        """The service process's pid (also its process group id), None when stopped."""
        return self._proc.pid if self._proc and self._proc.running() else None

    @property
    def log_path(self) -> Path:
        return self.base_dir / self.log_name

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        """Start (idempotent) and wait until the service answers."""
        if self._proc is not None and self._proc.running():
            return self
        self._prepare()
        for attempt in range(self.port_attempts):
            # Only an auto-picked port nobody has been told about yet may change.
            may_move = self._auto_port and not self._started_once
            if self.port == 0 or (attempt > 0 and may_move):
                self.port = free_port()
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log_path.write_text("")  # each start gets its own log, so errors show this run
            try:
                self._proc = self._launch()
                self._proc.wait_ready(self._ready, timeout=self._start_timeout)
                break
            except ServiceError as exc:
                # Lost the race for an auto-picked port: pick another one.
                if not (may_move and _port_taken(exc)) or attempt == self.port_attempts - 1:
                    raise
        self._started_once = True
        self._on_ready()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process group, keeping base_dir for a later start(); idempotent."""
        if self._proc is not None:
            self._proc.stop(timeout=timeout)
            self._proc = None

    def destroy(self) -> None:
        """Stop and remove what the service created."""
        self.stop()
        self._remove_files()
        atexit.unregister(self._cleanup_at_exit)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    # -- what a service says about itself ----------------------------------------------------
    def _prepare(self) -> None:  # noqa: B027  # optional hook
        """Once per start(), before a port is tried: find binaries, create data."""

    @abstractmethod
    def _launch(self) -> ManagedProcess:
        """Start the process on self.port, logging to self.log_path, without waiting for it."""

    @abstractmethod
    def _ready(self) -> bool:
        """True once the service on self.port answers its clients."""

    def _on_ready(self) -> None:  # noqa: B027  # optional hook
        """After each successful start, e.g. to create what clients expect to find."""

    def _remove_files(self) -> None:
        """What destroy() deletes: base_dir if we created it; a caller's directory is left."""
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    # -- internals ---------------------------------------------------------------------------
    def _require_port(self) -> int:
        if self.port == 0:
            raise ServiceError(f"{self.label} has no port yet: call start() first")
        return self.port

    def _cleanup_at_exit(self) -> None:
        with contextlib.suppress(Exception):  # best effort at interpreter exit
            if self._own_dir:
                self.destroy()
            else:
                self.stop(timeout=5)


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


def _wait_group_gone(pgid: int, timeout: float) -> None:
    """SIGKILL takes effect asynchronously: wait until no live member of the group is left, so
    that a stopped service has really stopped."""
    deadline = time.monotonic() + timeout
    while processes(group=pgid) and time.monotonic() < deadline:
        time.sleep(0.005)


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
