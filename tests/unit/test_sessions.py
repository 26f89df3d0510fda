"""The session store's own rules, with a stand-in for its table: the per-request cost (one query
per session per cache period, none inside it), revocation seen at once where it happened, ids
of 256 random bits of which only a hash is handed to the database. The queries themselves run
against PostgreSQL in tests/integration/test_sessions.py."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, cast

import pytest

from app.db import Database, DatabaseUnavailable
from app.sessions import CHECK_TTL_SECONDS, IDLE_SECONDS, SessionStore, id_hash

OID = "0c9b1a2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"


class Table:
    """The `sessions` table as the store's queries see it, counting the queries."""

    def __init__(self) -> None:
        self.rows: dict[bytes, str] = {}
        self.queries: list[str] = []
        self.down = False

    def _query(self, name: str) -> None:
        if self.down:
            raise DatabaseUnavailable("connection refused")
        self.queries.append(name)

    def purge_sessions(self, *, idle_seconds: int, batch: int) -> int:
        self._query("purge")
        return 0

    def create_session(self, id_hash: bytes, oid: str, *, lifetime_seconds: int) -> None:
        self._query("create")
        self.rows[id_hash] = oid

    def live_session_oid(self, id_hash: bytes, *, idle_seconds: int, touch_seconds: int) -> str | None:
        self._query("lookup")
        return self.rows.get(id_hash)

    def revoke_session(self, id_hash: bytes) -> None:
        self._query("revoke")
        self.rows.pop(id_hash, None)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store() -> tuple[SessionStore, Table, Clock]:
    table, clock = Table(), Clock()
    return SessionStore(cast(Database, table), clock=clock), table, clock


def test_a_session_id_is_256_random_bits_and_only_its_hash_is_stored():
    sessions, table, _ = store()
    first, second = sessions.start(OID), sessions.start(OID)
    assert first != second
    assert len(base64.urlsafe_b64decode(first + "=")) == 32
    assert set(table.rows) == {hashlib.sha256(s.encode()).digest() for s in (first, second)}
    assert table.queries == ["purge", "create", "purge", "create"]  # ended rows go at each sign-in


def test_one_query_per_cache_period_however_many_requests():
    sessions, table, clock = store()
    session_id = sessions.start(OID)
    table.queries.clear()
    for _ in range(50):
        assert sessions.user_oid(session_id) == OID
        clock.now += CHECK_TTL_SECONDS / 100
    assert table.queries == ["lookup"]
    clock.now += CHECK_TTL_SECONDS
    assert sessions.user_oid(session_id) == OID
    assert table.queries == ["lookup", "lookup"]


def test_the_cache_lasts_a_few_seconds_at_most():
    assert 0 < CHECK_TTL_SECONDS <= 5
    assert IDLE_SECONDS == 2 * 3600


def test_a_revocation_elsewhere_is_seen_within_the_cache_period_and_here_at_once():
    sessions, table, clock = store()
    other_instance = SessionStore(cast(Database, table), clock=clock)
    session_id = sessions.start(OID)
    assert sessions.user_oid(session_id) == OID
    assert other_instance.user_oid(session_id) == OID

    sessions.revoke(session_id)
    assert sessions.user_oid(session_id) is None  # where it was revoked: at once
    assert other_instance.user_oid(session_id) == OID  # elsewhere: until its cached answer expires
    clock.now += CHECK_TTL_SECONDS
    assert other_instance.user_oid(session_id) is None


def test_an_unknown_id_is_asked_every_time_and_never_remembered():
    sessions, table, _ = store()
    assert sessions.user_oid("made-up") is None
    assert sessions.user_oid("made-up") is None
    assert table.queries == ["lookup", "lookup"]
    assert id_hash("made-up") not in table.rows


def test_an_outage_is_raised_not_taken_for_a_signed_out_session():
    sessions, table, _ = store()
    session_id = sessions.start(OID)
    table.down = True
    with pytest.raises(DatabaseUnavailable):  # app.errors answers 503, the user stays signed in
        sessions.user_oid(session_id)


def test_the_purge_failing_does_not_stop_a_sign_in_it_cannot_complete_anyway():
    class PurgeFails(Table):
        def purge_sessions(self, **kwargs: Any) -> int:
            raise DatabaseUnavailable("connection lost")

    table = PurgeFails()
    session_id = SessionStore(cast(Database, table)).start(OID)
    assert table.rows == {id_hash(session_id): OID}
