"""/readyz and the errors name what is misconfigured: a storage key Blob Storage refuses, a
database role without grants or without existence. None of them is reported as an outage, and
the app log has each as a configuration error. None stops the start, and neither does a
database that is down: gunicorn's master applies the schema before the workers start, and a
worker applies what is still pending once the database answers."""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from devstack.appserver import PROJECT_ROOT, Site
from devstack.process import LOOPBACK, free_port
from tests.integration.client import AppClient, make_image
from tests.services import Services


def logged_as_configuration_error(log: str, code: str) -> bool:
    return any("ERROR" in line and f"configuration error: {code}" in line for line in log.splitlines())


def database_url_as(services: Services, user: str, password: str | None) -> str:
    parts = urlsplit(services.database_url)
    auth = f"{user}:{password}" if password else user
    return urlunsplit(parts._replace(netloc=f"{auth}@{parts.hostname}:{parts.port}"))


def shipped_migrations() -> list[str]:
    return sorted(p.stem for p in (PROJECT_ROOT / "app" / "migrations").glob("*.sql"))


def applied_migrations(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return sorted(row[0] for row in conn.execute("SELECT version FROM schema_migrations"))


def app_messages(log: str) -> list[str]:
    """The JSON log lines' messages, in order (gunicorn's error log lines included)."""
    messages = []
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            messages.append(str(record.get("message", "")))
    return messages


class Relay:
    """A loopback port that refuses connections until `start`, then relays each to `target`:
    PostgreSQL down, then back, at an address the app was started with."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.port = free_port()
        self._target = (target_host, target_port)
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []

    def start(self) -> Relay:
        self._listener = socket.create_server((LOOPBACK, self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            upstream = socket.create_connection(self._target, timeout=10)
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the other side or stop() closed it

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for sock in self._sockets:
            sock.close()

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
    # One role for everything (no DATABASE_OWNER_URL): the app migrates as its own role.
    server = start_app(
        workers=1, DATABASE_URL=database_url_as(services, role, password), DATABASE_OWNER_URL=""
    )
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
    server = start_app(
        workers=1, DATABASE_URL=database_url_as(services, role, password), DATABASE_OWNER_URL=""
    )
    client: AppClient = client_factory(server)

    ready = client.get("/readyz")
    assert ready.status_code == 503
    # With password authentication PostgreSQL does not tell a missing role from a wrong
    # password (on purpose); with trust it says the role does not exist.
    code = "database_auth_failed" if password else "database_role_missing"
    assert ready.json()["checks"] == {"database": code, "storage": "ok"}
    assert logged_as_configuration_error(server.log(), code)
    assert role not in ready.text  # names go to the log only


def test_the_schema_is_applied_once_by_gunicorns_master_before_the_workers_start(
    services: Services, start_app: Callable[..., Site], client_factory, fresh_database
):
    server = start_app(workers=3, **services.app_database(fresh_database))
    client: AppClient = client_factory(server)
    assert client.get("/readyz").status_code == 200
    assert applied_migrations(fresh_database) == shipped_migrations()

    deadline = time.monotonic() + 15  # /readyz answered once one worker was up; the others boot on
    while True:
        messages = app_messages(server.log())
        workers = [i for i, m in enumerate(messages) if m.startswith("Booting worker")]
        if len(workers) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    applied = [i for i, m in enumerate(messages) if m.startswith("applied migration")]
    assert len(applied) == len(shipped_migrations()), messages  # once, not once per worker
    assert len(workers) == 3, messages
    assert max(applied) < min(workers), messages
    server.stop()  # before its database is dropped


def test_a_database_down_at_start_is_reported_and_the_schema_applied_once_it_answers(
    services: Services, start_app: Callable[..., Site], client_factory, fresh_database
):
    """The site starts and is alive while PostgreSQL does not answer; /readyz says it is down
    (not misconfigured), and once it answers a worker applies the schema and is ready."""
    parts = urlsplit(fresh_database)
    assert parts.hostname is not None and parts.port is not None
    relay = Relay(parts.hostname, parts.port)

    def via_relay(url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit(parts._replace(netloc=f"{parts.netloc.rpartition('@')[0]}@{LOOPBACK}:{relay.port}"))

    server = start_app(
        workers=1, **{k: via_relay(v) for k, v in services.app_database(fresh_database).items()}
    )
    client: AppClient = client_factory(server)

    assert client.get("/healthz").status_code == 200
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.json()["checks"] == {"database": "down", "storage": "ok"}
    assert any(
        "database_unavailable" in m and "schema not applied at start" in m for m in app_messages(server.log())
    )
    assert not any("configuration error" in m for m in app_messages(server.log()))

    with relay:
        deadline = time.monotonic() + 30  # the first use is retried at most every few seconds
        while (ready := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ready.status_code == 200, ready.text
        assert applied_migrations(fresh_database) == shipped_migrations()
        server.stop()  # before the relay and the database go
