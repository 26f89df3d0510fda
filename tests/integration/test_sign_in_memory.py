"""Sign-ins do not grow a worker's memory: 300 users signed in through one worker of the
production server leave its resident memory within a bound that keeping each user's tokens
would exceed (the in-process check of MSAL's caches: tests/unit/test_sign_in_cache.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from devstack.appserver import Site
from tests.integration.client import AppClient

USERS = 300
WARM_UP = 30  # first sign-ins: metadata, keys, MSAL's and the allocator's first-use state
# Measured on this project's machine: the worker grows about 250 KB over the 300 sign-ins
# (the session check's per-process cache, the allocator); with MSAL's default cache, which
# keeps each user's ID token, refresh token and account, about 1 MB. The growth is read over
# two halves of 150: what each user leaves grows both, while a one-off step of the allocator
# (a new arena: ~430 KB, seen now and then in either half) grows one only, so the smaller half
# is held to half the bound.
GROWTH_BOUND = 640 * 1024


def worker_pid(site: Site) -> int:
    master = site.pid
    assert master is not None
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_300_sign_ins_through_one_worker_keep_its_memory_flat(
    start_app: Callable[..., Site], client_factory: Callable[..., AppClient], fake
):
    site = start_app(workers=1)
    client = client_factory(site)  # one browser, signing in as one user after another

    def sign_in() -> None:
        email = f"many-{uuid.uuid4().hex[:12]}@example.com"
        user = {**fake.add_user(email, "Pw-123456789"), "email": email, "password": "Pw-123456789"}
        client.http.cookies.clear()
        client.sign_in(user)

    for _ in range(WARM_UP):
        sign_in()
    worker = worker_pid(site)
    readings = [resident_bytes(worker)]
    for _ in range(2):
        for _ in range(USERS // 2):
            sign_in()
        readings.append(resident_bytes(worker))
    assert client.get("/api/me").json()["id"] == client.user["oid"]  # type: ignore[index]
    assert worker_pid(site) == worker  # the same worker all along
    halves = [after - before for before, after in zip(readings, readings[1:], strict=False)]
    assert min(halves) < GROWTH_BOUND // 2, f"{halves} bytes more over each {USERS // 2} sign-ins"
