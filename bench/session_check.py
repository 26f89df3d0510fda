"""Measurement 7: what checking the session in PostgreSQL adds to a signed-in gallery request.

The app as shipped answers most checks from its per-process cache (app/sessions.py, 5 s). The
worst case is a check on every request: the same app, built through `create_app`'s `sessions`
seam with a store whose cache keeps nothing, serves the second side. Both are asked in turn on
one keep-alive connection each, against the PostgreSQL of the run; the check is also timed
alone, uncached and cached, from this process.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from flask import Flask

from app import create_app
from app.db import Database
from app.sessions import CHECK_TTL_SECONDS, SessionStore
from app.settings import Settings
from bench.gallery import KeepAlive, percentile
from bench.report import Figure, Target
from devstack.appserver import AppServer

RISE_TARGET_MS = 1.0


def uncached_app() -> Flask:
    """The app with a session store that queries PostgreSQL on every request (gunicorn target
    `bench.session_check:uncached_app()`)."""
    settings = Settings.from_env()
    db = Database(url=settings.database_url)
    return create_app(settings, db=db, sessions=SessionStore(db, cache_seconds=0))


def uncached_server(*, env: dict[str, str], log_dir: Path) -> AppServer:
    return AppServer(
        env=env,
        workers=1,
        threads=4,
        log_dir=log_dir,
        wsgi_app="bench.session_check:uncached_app()",
        name="app uncached sessions",
    )


def _check_ms(database_url: str, oid: str, runs: int) -> tuple[list[float], list[float]]:
    """`SessionStore.user_oid` timed in this process on a real session: (uncached, cached) ms."""
    db = Database(url=database_url)
    try:
        uncached, cached = SessionStore(db, cache_seconds=0), SessionStore(db)
        session_id = uncached.start(oid)
        try:

            def timed(store: SessionStore) -> float:
                started = time.perf_counter()
                if store.user_oid(session_id) != oid:
                    raise RuntimeError("the session created for the check is not live")
                return (time.perf_counter() - started) * 1000

            for _ in range(10):
                timed(uncached), timed(cached)
            return [timed(uncached) for _ in range(runs)], [timed(cached) for _ in range(runs)]
        finally:
            uncached.revoke(session_id)
    finally:
        db.close()


def latency_rise(
    shipped_url: str,
    uncached_url: str,
    cookie: str,
    *,
    database_url: str,
    oid: str,
    page_size: int,
    requests_per_url: int,
) -> list[Figure]:
    """Gallery p50 on the app as shipped (cache warm) and with every request querying, in turn."""
    api = f"/api/photos?limit={page_size}"
    shipped, uncached = KeepAlive(shipped_url, cookie), KeepAlive(uncached_url, cookie)
    try:
        for _ in range(10):
            shipped.timed_ms(api), uncached.timed_ms(api)
        shipped_ms: list[float] = []
        uncached_ms: list[float] = []
        for _ in range(requests_per_url):
            shipped_ms.append(shipped.timed_ms(api))
            uncached_ms.append(uncached.timed_ms(api))
    finally:
        shipped.close()
        uncached.close()
    check_uncached, check_cached = _check_ms(database_url, oid, requests_per_url)
    shipped_p50, uncached_p50 = statistics.median(shipped_ms), statistics.median(uncached_ms)
    return [
        Figure(
            7,
            "session_check_p50_rise",
            f"GET {api}: p50 rise when every request checks its session in PostgreSQL",
            uncached_p50 - shipped_p50,
            "ms",
            Target("≤", RISE_TARGET_MS),
            {
                "as shipped p50 ms": shipped_p50,
                "as shipped p95 ms": percentile(shipped_ms, 0.95),
                "every request queries p50 ms": uncached_p50,
                "every request queries p95 ms": percentile(uncached_ms, 0.95),
                "check alone, uncached p50 ms": statistics.median(check_uncached),
                "check alone, cached p50 ms": statistics.median(check_cached),
                "requests each": requests_per_url,
            },
            note=(
                "the worst case; as shipped, one check a session per process every "
                f"{CHECK_TTL_SECONDS:g} s queries and the rest cost the cached figure; "
                "sequential, keep-alive, one gunicorn worker each, requests interleaved"
            ),
        )
    ]
