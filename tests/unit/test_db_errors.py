"""PostgreSQL's refusals, classified against a real server: a wrong password, a missing role, a
role without grants, a missing database and a host pg_hba.conf rejects are the configuration,
each named; a stopped server is an outage; a bad query stays a bug."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from app.db import Database, DatabaseConfigurationError, DatabaseUnavailable
from app.service_errors import ConfigurationError, ServiceError, ServiceUnavailable
from devstack.postgres import Postgres

PASSWORD = "right-" + uuid.uuid4().hex
WRONG_PASSWORD = "wrong-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A server with the schema applied, a password-checked role `pw`, a role `weak` with no
    grants on the app's tables and a role `rejected` that pg_hba.conf turns away."""
    with Postgres() as service:
        Database(url=service.url).migrate()
        with psycopg.connect(service.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE pw LOGIN PASSWORD {}").format(sql.Literal(PASSWORD)))
            conn.execute("CREATE ROLE weak LOGIN")
            conn.execute("CREATE ROLE rejected LOGIN")
            conn.execute("CREATE ROLE nologin NOLOGIN")
            row = conn.execute("SHOW hba_file").fetchone()
            assert row is not None  # SHOW always returns one row
            hba = Path(row[0])
            # First match wins: these lines go before initdb's "trust everyone".
            hba.write_text(
                "host all pw 127.0.0.1/32 scram-sha-256\n"
                "host all rejected 127.0.0.1/32 reject\n" + hba.read_text()
            )
            conn.execute("SELECT pg_reload_conf()")
        yield service


def url_as(postgres: Postgres, user: str, password: str | None = None, dbname: str = "photoshare") -> str:
    auth = f"{user}:{password}" if password else user
    return f"postgresql://{auth}@127.0.0.1:{postgres.port}/{dbname}"


@contextlib.contextmanager
def opened(url: str, **options: int) -> Iterator[Database]:
    db = Database(url=url, connect_timeout=2, **options)
    db.open()
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
        on_query = raised(db.ping)  # the pool says only "no connection after 2 s"
        assert time.monotonic() - started < 8

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


def test_a_role_without_grants_lacks_privileges(postgres):
    db_url = url_as(postgres, "weak")
    on_migrate = raised(Database(url=db_url).migrate)
    with opened(db_url) as db:
        db.ping()  # it may connect and run SELECT 1
        on_query = raised(lambda: db.list_photos("someone", limit=1))
    for exc in (on_migrate, on_query):
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
    with opened(postgres.url) as db:
        db.ping()
        postgres.stop()
        try:
            on_query = raised(db.ping)
            on_migrate = raised(Database(url=postgres.url).migrate)
        finally:
            postgres.start()
        db.ping()  # serving again by itself
    for exc in (on_query, on_migrate):
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


def test_a_migration_refused_at_start_is_kept_and_retried(postgres, caplog):
    """The app starts with a role that does not exist yet (role assignments lag deployments):
    every query says why, without waiting for the pool; once the role exists, the next query
    after the retry interval applies the schema and is served."""
    role = f"late_{uuid.uuid4().hex[:8]}"
    db = Database(url=url_as(postgres, role, dbname=role), connect_timeout=2, migration_retry_seconds=1.0)

    db.migrate_at_start()  # does not raise
    assert "configuration error: database_role_missing" in caplog.text
    db.open()
    try:
        started = time.monotonic()
        assert raised(db.ping).code == "database_role_missing"
        assert time.monotonic() - started < 1  # the kept cause, not a pool timeout

        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {0} LOGIN").format(sql.Identifier(role)))
            # Its own database: the owner may create tables in its public schema.
            conn.execute(sql.SQL("CREATE DATABASE {0} OWNER {0}").format(sql.Identifier(role)))
        # Fixed, but within the retry interval the kept cause still answers.
        assert raised(db.ping).code == "database_role_missing"

        time.sleep(1.1)
        db.ping()
        assert db.list_photos("someone", limit=1) == []  # the schema was applied
    finally:
        db.close()
        postgres.drop_database(role)
