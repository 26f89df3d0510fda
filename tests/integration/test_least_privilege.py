"""Least privilege for the data: the app connects as a role that reads and writes its tables and
nothing else, migrations run as the schema's owner and grant it that, and the connection
verifies the server's certificate (`sslmode=verify-full` with the default trust store)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from app.db import Database, with_system_roots
from devstack.postgres import APP_ROLE, OWNER_ROLE, create_database, drop_database
from devstack.process import LOOPBACK
from tests.integration.client import AppClient
from tests.services import Services


@pytest.fixture(scope="module")
def database(services: Services) -> Iterator[str]:
    """A database of this module's own, owned as the app's is (its superuser's URL)."""
    name = f"privileges_{uuid.uuid4().hex[:12]}"
    yield create_database(services.database_url, name, owner=OWNER_ROLE)
    drop_database(services.database_url, name)


@pytest.fixture(scope="module")
def migrated(services: Services, database: str) -> dict[str, str]:
    """It migrated as the app's settings say: DATABASE_URL, DATABASE_OWNER_URL."""
    if services.roles is None:
        pytest.fail("the test services have no least-privilege roles (an external server)")
    settings = services.app_database(database)
    applied = Database(url=settings["DATABASE_URL"], owner_url=settings["DATABASE_OWNER_URL"]).migrate()
    assert applied, "nothing applied on a fresh database"
    return settings


REFUSED = [
    "CREATE TABLE intruder (id int)",
    "ALTER TABLE photos ADD COLUMN intruder text",
    "DROP TABLE sessions",
    "TRUNCATE photos",
    "CREATE INDEX intruder ON photos (filename)",
    "CREATE ROLE intruder LOGIN",
    "CREATE DATABASE intruder",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_the_apps_role_cannot_change_the_schema_roles_or_databases(migrated: dict[str, str], statement: str):
    with (
        psycopg.connect(with_system_roots(migrated["DATABASE_URL"]), autocommit=True) as conn,
        pytest.raises(errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


def test_the_apps_role_reads_and_writes_rows(migrated: dict[str, str]):
    with psycopg.connect(with_system_roots(migrated["DATABASE_URL"])) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (APP_ROLE,)
        conn.execute(
            "INSERT INTO sessions (id_hash, oid, expires_at) VALUES (%s, 'someone', now())", (b"x" * 32,)
        )
        conn.execute("UPDATE sessions SET last_seen_at = now()")
        assert conn.execute("DELETE FROM sessions").rowcount == 1
        assert conn.execute("SELECT count(*) FROM photos").fetchone() == (0,)
        # Not the owner, no grant option: PostgreSQL grants nothing (a warning, not an error).
        conn.execute("GRANT SELECT ON photos TO PUBLIC")
        acl = conn.execute("SELECT relacl::text[] FROM pg_class WHERE relname = 'photos'").fetchone()
        assert acl is not None and not any(entry.startswith("=") for entry in acl[0])


def test_migrations_run_as_the_owner_and_later_tables_are_granted_too(
    database: str, migrated: dict[str, str]
):
    with psycopg.connect(database) as conn:
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    assert owners == [(OWNER_ROLE,)]
    # A table a later migration adds, as its owner, needs no grant by hand (default privileges).
    with psycopg.connect(with_system_roots(migrated["DATABASE_OWNER_URL"]), autocommit=True) as owner:
        owner.execute("CREATE TABLE later (id bigserial PRIMARY KEY, note text)")
    with psycopg.connect(with_system_roots(migrated["DATABASE_URL"]), autocommit=True) as app:
        app.execute("INSERT INTO later (note) VALUES ('granted')")
        assert app.execute("SELECT note FROM later").fetchone() == ("granted",)
        with pytest.raises(errors.InsufficientPrivilege):
            app.execute("DROP TABLE later")


def test_the_running_app_connects_as_its_role_over_verified_tls(
    services: Services, client: AppClient, make_user
):
    """What the site's pool holds, as the server sees it: the app's role, on TLS, and the
    URL the site was given verifies the certificate and the host name."""
    client.sign_in(make_user())
    assert client.photos()["photos"] == []
    with psycopg.connect(services.database_url) as conn:
        seen = conn.execute(
            "SELECT DISTINCT a.usename, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
            " WHERE a.datname = 'photoshare' AND a.usename IN (%s, %s)",
            (APP_ROLE, OWNER_ROLE),
        ).fetchall()
    assert seen == [(APP_ROLE, True)]  # the owner's migration connection was closed at start
    assert services.roles is not None
    assert "sslmode=verify-full" in services.roles.app and "sslrootcert=system" in services.roles.app


def test_verify_full_refuses_a_server_whose_name_does_not_match(services: Services):
    """The certificate names 127.0.0.1 and localhost. The same server at the same address but
    under another name (`hostaddr`: what a spoofed DNS answer amounts to) is refused, where
    `sslmode=require` connects."""
    assert services.roles is not None
    other_name = (
        services.roles.app.replace(f"@{LOOPBACK}:", "@db.photoshare.invalid:") + f"&hostaddr={LOOPBACK}"
    )
    with pytest.raises(psycopg.OperationalError, match="certificate"):
        psycopg.connect(with_system_roots(other_name), connect_timeout=5).close()
    required = other_name.replace("sslmode=verify-full", "sslmode=require")
    with psycopg.connect(with_system_roots(required), connect_timeout=5) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)


def test_system_roots_are_the_machines_own_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """psycopg's wheels bring an OpenSSL whose default store is empty: `system` becomes the
    bundle Python's ssl finds (SSL_CERT_FILE first), and nothing else in the URL changes."""
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    url = (
        "postgresql://app@db.example:5432/photoshare?sslmode=verify-full&sslrootcert=system&connect_timeout=3"
    )
    resolved = with_system_roots(url)
    assert resolved == url.replace("sslrootcert=system", f"sslrootcert={bundle}")
    assert with_system_roots("postgresql://app@db.example/p?sslmode=require") == (
        "postgresql://app@db.example/p?sslmode=require"
    )
