"""What the devstack tests check after a stop: nothing of the service is left running."""

from __future__ import annotations

from pathlib import Path

from devstack.process import pid_alive


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


def assert_gone(pid: int) -> None:
    assert not pid_alive(pid), f"process {pid} still running"
    assert group_members(pid) == [], f"process group {pid} still has {group_members(pid)}"
