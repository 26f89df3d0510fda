"""PostgreSQL's refusals, classified against a real server: a wrong password, a missing role, a
role without grants, a missing database and a host pg_hba.conf rejects are the configuration,
each named; a stopped server is an outage; a bad query stays a bug. And the schema: checked on
a Database's first use, applied then if pending, the check retried while it fails."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

from app.db import _MIGRATION_LOCK_KEY, Database, DatabaseConfigurationError, DatabaseUnavailable
from app.service_errors import ConfigurationError, ServiceError, ServiceUnavailable
from devstack.postgres import Postgres

PASSWORD = "right-" + uuid.uuid4().hex
WRONG_PASSWORD = "wrong-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A server with the schema applied, a password-checked role `pw` that may read the app's
    tables, a role `weak` with no grants on them and a role `rejected` that pg_hba.conf turns
    away."""
    with Postgres() as service:
        Database(url=service.url).migrate()
        with psycopg.connect(service.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE pw LOGIN PASSWORD {}").format(sql.Literal(PASSWORD)))
            conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO pw")
            conn.execute("CREATE ROLE weak LOGIN")
            conn.execute("CREATE ROLE rejected LOGIN")
            conn.execute("CREATE ROLE nologin NOLOGIN")
        hba = hba_file(service)
        # First match wins: these lines go before initdb's "trust everyone".
        hba.write_text(
            "host all pw 127.0.0.1/32 scram-sha-256\nhost all rejected 127.0.0.1/32 reject\n"
            + hba.read_text()
        )
        reload_config(service)
        yield service


def hba_file(postgres: Postgres) -> Path:
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        row = conn.execute("SHOW hba_file").fetchone()
    assert row is not None  # SHOW always returns one row
    return Path(row[0])


def reload_config(postgres: Postgres) -> None:
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")


def url_as(postgres: Postgres, user: str, password: str | None = None, dbname: str = "photoshare") -> str:
    auth = f"{user}:{password}" if password else user
    return f"postgresql://{auth}@127.0.0.1:{postgres.port}/{dbname}"


@contextlib.contextmanager
def opened(
    url: str, *, max_connections: int = 10, migration_retry_seconds: float = 5.0
) -> Iterator[Database]:
    """A Database closed afterwards; it connects on first use."""
    db = Database(
        url=url,
        connect_timeout=2,
        max_connections=max_connections,
        migration_retry_seconds=migration_retry_seconds,
    )
    try:
        yield db
    finally:
        db.close()


def raised(call: Callable[[], object]) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize(
    ("user", "password", "dbname", "code", "says"),
    [
        ("pw", WRONG_PASSWORD, "photoshare", "database_auth_failed", "password"),
        ("ghost", None, "photoshare", "database_role_missing", "does not exist"),
        ("nologin", None, "photoshare", "database_role_missing", "may not log in"),
        ("rejected", None, "photoshare", "database_host_rejected", "pg_hba.conf"),
        ("photoshare", None, "no_such_db", "database_missing", "does not exist"),
    ],
)
def test_refused_connections_name_their_cause(postgres, user, password, dbname, code, says):
    db_url = url_as(postgres, user, password, dbname)

    on_migrate = raised(Database(url=db_url).migrate)
    with opened(db_url) as db:
        started = time.monotonic()
        on_query = raised(db.ping)  # the first use's schema check, on a connection of its own
        assert time.monotonic() - started < 2

    for exc in (on_migrate, on_query):
        assert isinstance(exc, DatabaseConfigurationError) and isinstance(exc, ConfigurationError)
        assert exc.code == code
        assert says in exc.message
        assert f'"{user}"' not in exc.message and dbname not in exc.message  # names go to the log only
        assert WRONG_PASSWORD not in exc.message and WRONG_PASSWORD not in str(exc)
        assert "FATAL" in exc.detail  # the server's own words, for the log


def test_the_right_password_passes(postgres):
    with opened(url_as(postgres, "pw", PASSWORD)) as db:
        db.ping()


def test_a_role_disabled_under_a_running_app_is_named_through_the_pool(postgres):
    """The pool says only "no connection after 2 s"; its direct probe names the cause."""
    role = f"disabled_{uuid.uuid4().hex[:8]}"
    who = sql.Identifier(role)
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(who))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(who))
    try:
        with opened(url_as(postgres, role)) as db:
            db.ping()  # schema current, pool open
            with psycopg.connect(postgres.url, autocommit=True) as conn:
                conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(who))
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
                )
            started = time.monotonic()
            exc = raised(db.ping)
            assert time.monotonic() - started < 8
    finally:
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(who))
            conn.execute(sql.SQL("DROP ROLE {}").format(who))
    assert isinstance(exc, DatabaseConfigurationError)
    assert exc.code == "database_role_missing"
    assert "FATAL" in exc.detail


def test_a_role_without_grants_lacks_privileges(postgres):
    db_url = url_as(postgres, "weak")
    on_migrate = raised(Database(url=db_url).migrate)
    with opened(db_url) as db:
        on_ping = raised(db.ping)  # may connect, may not read schema_migrations
        on_query = raised(lambda: db.list_photos("someone", limit=1))
    for exc in (on_migrate, on_ping, on_query):
        assert isinstance(exc, DatabaseConfigurationError)
        assert exc.code == "database_forbidden"
        assert "privileges" in exc.message
        assert "permission denied" in exc.detail


def test_a_role_without_connect_privilege_lacks_privileges(postgres):
    name = f"locked_{uuid.uuid4().hex[:8]}"
    postgres.create_database(name)
    with psycopg.connect(postgres.url_for(name), autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
    exc = raised(Database(url=url_as(postgres, "weak", dbname=name)).migrate)
    assert isinstance(exc, DatabaseConfigurationError) and exc.code == "database_forbidden"
    postgres.drop_database(name)


def test_a_stopped_server_is_an_outage(postgres):
    with opened(postgres.url) as db, opened(postgres.url, migration_retry_seconds=0.5) as late:
        db.ping()
        postgres.stop()
        try:
            on_query = raised(db.ping)
            on_first_use = raised(late.ping)  # a worker that starts during the outage
            on_migrate = raised(Database(url=postgres.url).migrate)
        finally:
            postgres.start()
        db.ping()  # serving again by itself
        time.sleep(0.6)
        late.ping()  # its first use is retried, and succeeds
    for exc in (on_query, on_first_use, on_migrate):
        assert isinstance(exc, DatabaseUnavailable) and isinstance(exc, ServiceUnavailable)
        assert not isinstance(exc, ConfigurationError)
        assert exc.code == "database_unavailable"
        assert "Connection refused" in exc.detail or "closed" in exc.detail


def test_a_busy_pool_is_an_outage_not_a_configuration_error(postgres):
    with opened(postgres.url, max_connections=1) as db:
        holding, done = threading.Event(), threading.Event()

        def hold() -> None:
            with db.connection():
                holding.set()
                done.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        holding.wait(10)
        try:
            exc = raised(db.ping)
        finally:
            done.set()
            holder.join()
    assert isinstance(exc, DatabaseUnavailable)
    assert "pool is busy" in exc.detail


def test_a_bad_query_stays_a_bug(postgres):
    with opened(postgres.url) as db, pytest.raises(psycopg.errors.UndefinedTable), db.connection() as conn:
        conn.execute("SELECT * FROM no_such_table")


def test_a_connection_the_server_ended_is_never_handed_out(postgres):
    """A fresh connection is handed out without the check's query, unless its socket shows the
    server ended it; a query on it would fail, so it is replaced before use."""
    with opened(postgres.url, max_connections=1) as db:
        with db.connection() as conn:
            backend = conn.info.backend_pid
        with db.connection() as conn:
            assert conn.info.backend_pid == backend  # the pool's one connection, fresh
        with psycopg.connect(postgres.url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        time.sleep(0.2)  # the server's goodbye reaches the socket
        assert db.list_photos("someone", limit=1) == []
        with db.connection() as conn:
            assert conn.info.backend_pid != backend


def test_a_connection_idle_for_long_is_checked_with_a_query(postgres, monkeypatch):
    with opened(postgres.url, max_connections=1) as db:
        with db.connection() as conn:
            pass
        checked: list[object] = []
        monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(checked.append))
        with db.connection():
            pass
        assert checked == []  # fresh and quiet: no round trip
        monkeypatch.setattr("app.db.FRESH_SECONDS", 0.0)
        with db.connection():
            pass
        assert checked == [conn]


def test_first_use_applies_pending_migrations(postgres):
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    with opened(postgres.create_database(name)) as db:
        assert db.list_photos("someone", limit=1) == []
    with psycopg.connect(postgres.url_for(name)) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    postgres.drop_database(name)
    assert versions == ["0001_initial", "0002_sessions"]


def test_first_use_of_a_current_schema_does_not_queue_on_the_migration_lock(postgres):
    """Workers starting while another instance holds the lock (a long migration elsewhere) serve
    at once when the schema they ship is already applied."""
    with psycopg.connect(postgres.url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_KEY,))
        with opened(postgres.url) as db:
            started = time.monotonic()
            db.ping()
            assert time.monotonic() - started < 2


def test_a_refused_schema_is_kept_and_retried_until_fixed(postgres, caplog):
    """A worker starts with a role that does not exist yet (role assignments lag deployments):
    every query says why, without waiting for the pool; once the role exists, the next query
    after the retry interval applies the schema and is served."""
    caplog.set_level(logging.INFO, logger="app.db")
    role = f"late_{uuid.uuid4().hex[:8]}"
    with opened(url_as(postgres, role, dbname=role), migration_retry_seconds=1.0) as db:
        assert raised(db.ping).code == "database_role_missing"
        assert "configuration error: database_role_missing" in caplog.text
        started = time.monotonic()
        assert raised(db.ping).code == "database_role_missing"
        assert time.monotonic() - started < 0.5  # the kept cause, no connection attempted

        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {0} LOGIN").format(sql.Identifier(role)))
            # Its own database: the owner may create tables in its public schema.
            conn.execute(sql.SQL("CREATE DATABASE {0} OWNER {0}").format(sql.Identifier(role)))
        try:
            # Fixed, but within the retry interval the kept cause still answers.
            assert raised(db.ping).code == "database_role_missing"

            time.sleep(1.1)
            db.ping()
            assert db.list_photos("someone", limit=1) == []  # the schema was applied
            assert "schema current" in caplog.text
        finally:
            db.close()
            postgres.drop_database(role)


def test_migrating_at_start_logs_what_stops_it_and_never_raises(postgres, caplog):
    Database(url=url_as(postgres, f"ghost_{uuid.uuid4().hex[:8]}")).migrate_at_start()
    refused = [r for r in caplog.records if r.name == "app.db"]
    assert [r.levelname for r in refused] == ["ERROR"]
    assert refused[0].getMessage().startswith("configuration error: database_role_missing")
    caplog.clear()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    Database(url=f"postgresql://photoshare@127.0.0.1:{port}/photoshare").migrate_at_start()
    down = [r for r in caplog.records if r.name == "app.db"]
    assert [r.levelname for r in down] == ["WARNING"]
    assert down[0].getMessage().startswith("database_unavailable")
