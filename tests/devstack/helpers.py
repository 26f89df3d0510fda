"""What the devstack tests check after a stop: nothing of the service is left running."""

from __future__ import annotations

from devstack.process import pid_alive, processes


def assert_gone(pid: int) -> None:
    assert not pid_alive(pid), f"process {pid} still running"
    assert processes(group=pid) == [], f"process group {pid} still has {processes(group=pid)}"
