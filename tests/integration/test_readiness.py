"""/readyz and the errors name what is misconfigured: a storage key Blob Storage refuses, a
database role without grants or without existence. None of them is reported as an outage, and
the app log has each as a configuration error."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from devstack.appserver import Site
from tests.integration.client import AppClient, make_image
from tests.services import Services


def logged_as_configuration_error(log: str, code: str) -> bool:
    return any("ERROR" in line and f"configuration error: {code}" in line for line in log.splitlines())


def database_url_as(services: Services, user: str, password: str | None) -> str:
    parts = urlsplit(services.database_url)
    auth = f"{user}:{password}" if password else user
    return urlunsplit(parts._replace(netloc=f"{auth}@{parts.hostname}:{parts.port}"))


@pytest.fixture
def role_without_grants(services: Services) -> Iterator[tuple[str, str | None]]:
    """A role that may log in and nothing else: no grant on the app's tables."""
    name = f"nogrants_{uuid.uuid4().hex[:8]}"
    password = secrets.token_hex(16) if urlsplit(services.database_url).password else None
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
        )
    yield name, password
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_a_refused_storage_key_is_named_not_an_outage(
    services: Services, start_app: Callable[..., Site], client_factory, make_user
):
    wrong_key = secrets.token_bytes(64).hex()
    connection_string = re.sub(
        r"AccountKey=[^;]+", f"AccountKey={wrong_key}", services.storage_connection_string
    )
    server = start_app(workers=1, AZURE_STORAGE_CONNECTION_STRING=connection_string)
    client: AppClient = client_factory(server)

    ready = client.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["error"] == "not_ready"
    assert body["checks"] == {"database": "ok", "storage": "storage_auth_failed"}
    assert body["message"].startswith("storage: ") and "account key" in body["message"]

    client.sign_in(make_user())
    upload = client.upload(("a.jpg", make_image(), "image/jpeg"))
    assert upload.status_code == 503
    assert upload.json()["error"] == "storage_auth_failed"  # not storage_unavailable
    assert "account key" in upload.json()["message"]
    assert client.photos()["photos"] == []  # nothing acknowledged, no row

    log = server.log()
    assert logged_as_configuration_error(log, "storage_auth_failed")
    assert "storage_unavailable" not in log
    assert wrong_key not in log and wrong_key not in ready.text


def test_a_role_without_grants_is_named_and_served_once_granted(
    services: Services, start_app: Callable[..., Site], client_factory, role_without_grants
):
    """The app starts although the migration is refused (grants lag deployments), /readyz says
    so, and once the grants are there the next /readyz applies the schema and is ready."""
    role, password = role_without_grants
    server = start_app(workers=1, DATABASE_URL=database_url_as(services, role, password))
    client: AppClient = client_factory(server)

    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": "database_forbidden", "storage": "ok"}
    assert ready.json()["message"].startswith("database: ") and "privileges" in ready.json()["message"]
    if password:
        assert password not in ready.text and password not in server.log()
    assert logged_as_configuration_error(server.log(), "database_forbidden")
    assert "database_unavailable" not in server.log()

    with psycopg.connect(services.database_url, autocommit=True) as conn:
        who = sql.Identifier(role)
        conn.execute(sql.SQL("GRANT CREATE, USAGE ON SCHEMA public TO {}").format(who))
        conn.execute(
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(who)
        )
    deadline = time.monotonic() + 30  # the migration is retried at most every few seconds
    while (ready := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "storage": "ok"}
    server.stop()  # before its role is dropped


def test_a_role_that_does_not_exist_is_named(
    services: Services, start_app: Callable[..., Site], client_factory
):
    role = f"ghost_{uuid.uuid4().hex[:8]}"
    password = secrets.token_hex(16) if urlsplit(services.database_url).password else None
    server = start_app(workers=1, DATABASE_URL=database_url_as(services, role, password))
    client: AppClient = client_factory(server)

    ready = client.get("/readyz")
    assert ready.status_code == 503
    # With password authentication PostgreSQL does not tell a missing role from a wrong
    # password (on purpose); with trust it says the role does not exist.
    code = "database_auth_failed" if password else "database_role_missing"
    assert ready.json()["checks"] == {"database": code, "storage": "ok"}
    assert logged_as_configuration_error(server.log(), code)
    assert role not in ready.text  # names go to the log only
