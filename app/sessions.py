"""Server-side sessions: the cookie carries a random session id (and the user's display data),
PostgreSQL holds the session's truth, shared by every instance.

A session ends 8 h after sign-in (absolute), after 2 h without a request (idle), or when it is
revoked at sign-out; a revoked, ended or unknown id signs the request out. Checking a session is
one query by primary key, whose answer each process reuses for `CHECK_TTL_SECONDS` (5 s): a
revocation takes effect on every instance within that time. `last_seen_at` is written at most
once per `TOUCH_SECONDS`, not on every request. Only the id's SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable

from flask import Flask, current_app

from app.db import Database
from app.service_errors import ServiceError

log = logging.getLogger(__name__)

ABSOLUTE_LIFETIME_SECONDS = 8 * 3600
IDLE_SECONDS = 2 * 3600
TOUCH_SECONDS = 5 * 60
CHECK_TTL_SECONDS = 5.0
PURGE_BATCH = 500  # ended sessions deleted at each sign-in, at most
_CACHE_MAX = 10_000  # live sessions remembered per process before the memory is cleared


def id_hash(session_id: str) -> bytes:
    """What the table stores for a session id."""
    return hashlib.sha256(session_id.encode("utf-8")).digest()


class SessionStore:
    """Sessions in PostgreSQL with a short per-process cache of the live ones; bound to Flask
    with `init_app`."""

    def __init__(
        self,
        db: Database,
        *,
        lifetime_seconds: int = ABSOLUTE_LIFETIME_SECONDS,
        idle_seconds: int = IDLE_SECONDS,
        touch_seconds: int = TOUCH_SECONDS,
        cache_seconds: float = CHECK_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.lifetime_seconds = lifetime_seconds
        self.idle_seconds = idle_seconds
        self.touch_seconds = touch_seconds
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._live: dict[bytes, tuple[str, float]] = {}  # id hash → (oid, checked at)
        self._lock = threading.Lock()

    def init_app(self, app: Flask) -> None:
        app.extensions["sessions"] = self

    def start(self, oid: str) -> str:
        """A new session for `oid` (after removing a batch of ended ones); returns its id."""
        try:
            purged = self.db.purge_sessions(idle_seconds=self.idle_seconds, batch=PURGE_BATCH)
        except ServiceError:  # housekeeping: the insert below reports an outage itself
            log.warning("ended sessions not purged", exc_info=True)
        else:
            if purged:
                log.info("purged %d ended sessions", purged)
        session_id = secrets.token_urlsafe(32)  # 256 bits
        self.db.create_session(id_hash(session_id), oid, lifetime_seconds=self.lifetime_seconds)
        return session_id

    def user_oid(self, session_id: str) -> str | None:
        """The user of a live session, None for a revoked, ended or unknown one. Raises the
        database's errors (DatabaseUnavailable: the request answers 503)."""
        key = id_hash(session_id)
        now = self._clock()
        with self._lock:
            cached = self._live.get(key)
        if cached is not None and now - cached[1] < self.cache_seconds:
            return cached[0]
        oid = self.db.live_session_oid(key, idle_seconds=self.idle_seconds, touch_seconds=self.touch_seconds)
        with self._lock:
            if oid is None:
                self._live.pop(key, None)
            else:
                if len(self._live) >= _CACHE_MAX:
                    self._live.clear()
                self._live[key] = (oid, now)
        return oid

    def revoke(self, session_id: str) -> None:
        """End the session for every instance (each within its cache's few seconds, this one now)."""
        key = id_hash(session_id)
        with self._lock:
            self._live.pop(key, None)
        self.db.revoke_session(key)


def get_sessions() -> SessionStore:
    return current_app.extensions["sessions"]
