"""The shared process plumbing: groups die whole, readiness fails fast and says why, and a
service keeps the port its clients were told."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from devstack.process import (
    LOOPBACK,
    LocalService,
    ManagedProcess,
    ServiceError,
    free_port,
    pid_alive,
    port_accepts,
    port_is_free,
    processes,
)
from tests.devstack.helpers import assert_gone


def test_free_port_is_bindable_and_port_checks_see_a_listener() -> None:
    port = free_port()
    assert port_is_free(port)
    assert not port_accepts(port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert port_accepts(port)
        assert not port_is_free(port)


def test_stop_kills_the_whole_group_including_grandchildren(tmp_path: Path) -> None:
    proc = ManagedProcess(
        ["sh", "-c", "sleep 60 & sleep 60 & wait"], name="sleepers", log_path=tmp_path / "log"
    )
    deadline = time.monotonic() + 5
    while len(processes(group=proc.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(processes(group=proc.pid)) == 3
    children = processes(parent=proc.pid)
    assert len(children) == 2 and processes(group=proc.pid) == sorted([proc.pid, *children])

    proc.stop(timeout=5)

    assert_gone(proc.pid)


def test_stop_escalates_to_sigkill_when_the_signal_is_ignored(tmp_path: Path) -> None:
    proc = ManagedProcess(
        ["sh", "-c", "trap '' TERM; echo trapped; while :; do sleep 0.1; done"],
        name="stubborn",
        log_path=tmp_path / "log",
        stop_signal=signal.SIGTERM,
    )
    proc.wait_ready(lambda: "trapped" in (tmp_path / "log").read_text(), timeout=5)

    started = time.monotonic()
    proc.stop(timeout=0.5)

    assert time.monotonic() - started < 3
    assert proc.popen.returncode == -signal.SIGKILL
    assert_gone(proc.pid)


def test_wait_ready_fails_fast_with_the_end_of_the_log(tmp_path: Path) -> None:
    proc = ManagedProcess(
        ["sh", "-c", "echo 'boom: bad config' >&2; exit 3"], name="broken", log_path=tmp_path / "l"
    )
    with pytest.raises(ServiceError, match=r"(?s)broken exited with code 3.*boom: bad config"):
        proc.wait_ready(lambda: False, timeout=30)


def test_wait_ready_times_out_and_stops_the_process(tmp_path: Path) -> None:
    proc = ManagedProcess(["sleep", "60"], name="slow", log_path=tmp_path / "log")
    with pytest.raises(ServiceError, match="slow was not ready after"):
        proc.wait_ready(lambda: False, timeout=0.2)
    assert_gone(proc.pid)


def test_atexit_safety_net_stops_what_the_owner_forgot() -> None:
    script = textwrap.dedent(
        """
        import tempfile
        from pathlib import Path
        from devstack.process import ManagedProcess
        proc = ManagedProcess(["sleep", "60"], name="forgotten",
                              log_path=Path(tempfile.mkdtemp()) / "log")
        print(proc.pid, flush=True)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    pid = int(out.strip())
    assert not pid_alive(pid)


def test_an_owner_killed_by_sigterm_still_stops_its_children() -> None:
    script = textwrap.dedent(
        """
        import tempfile, time
        from pathlib import Path
        from devstack.process import ManagedProcess
        proc = ManagedProcess(["sleep", "60"], name="child",
                              log_path=Path(tempfile.mkdtemp()) / "log")
        print(proc.pid, flush=True)
        time.sleep(60)
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    pid = int(owner.stdout.readline())
    owner.terminate()
    assert owner.wait(timeout=30) == -signal.SIGTERM  # still dies by SIGTERM, as callers expect
    assert_gone(pid)


class Listener(LocalService):
    """The smallest service: a Python process listening on its port. `taken` launches find their
    port already taken by someone else, as when another program wins the race for it."""

    label = "listener"
    log_name = "listener.log"
    _SERVE = (
        "import socket, sys, time; s = socket.create_server(('127.0.0.1', int(sys.argv[1])));"
        "print('serving', flush=True); time.sleep(60)"
    )

    def __init__(self, *, base_dir: Path, port: int = 0, taken: int = 0) -> None:
        super().__init__(port=port, base_dir=base_dir, temp_prefix="unused-", start_timeout=10)
        self.taken = taken
        self.thieves: list[socket.socket] = []

    def _launch(self) -> ManagedProcess:
        if self.taken:
            self.taken -= 1
            self.thieves.append(socket.create_server((LOOPBACK, self.port)))
        return ManagedProcess(
            [sys.executable, "-c", self._SERVE, str(self.port)], name="listener", log_path=self.log_path
        )

    def _ready(self) -> bool:
        """Its own word, not the port: a thief on the port accepts connections too."""
        return "serving" in self.log_path.read_text() and port_accepts(self.port)

    def release(self) -> None:
        for thief in self.thieves:
            thief.close()


def test_a_first_start_that_loses_its_auto_picked_port_moves_to_another(tmp_path: Path) -> None:
    service = Listener(base_dir=tmp_path, taken=1)
    try:
        with service:
            assert port_accepts(service.port)
            assert service.port != service.thieves[0].getsockname()[1]
        assert service.pid is None
    finally:
        service.release()


def test_a_restart_keeps_the_port_its_clients_were_told(tmp_path: Path) -> None:
    with Listener(base_dir=tmp_path) as service:
        port = service.port
        service.stop()
        service.taken = 1
        with pytest.raises(ServiceError, match="Address already in use"):
            service.start()
        assert service.port == port
        service.release()

        service.start()

        assert service.port == port and port_accepts(port)
