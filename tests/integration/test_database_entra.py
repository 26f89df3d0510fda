"""DATABASE_AUTH=entra: the app signs in to PostgreSQL with Microsoft Entra tokens from the site's
managed identity (App Service's IDENTITY_ENDPOINT, played by the fake), one per new connection,
the owner with its user-assigned identity. The suites' PostgreSQL plays Azure's part: a role
signs in only with a password (scram), and that password is the last token issued to its
identity, so an expired or another identity's token is refused; `pgaadauth_create_principal`,
which the owner (an Entra administrator in Azure) calls for the app's role, creates the role."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from devstack.appserver import Site
from devstack.fake_identity.managed_identity_state import IssuedToken, ManagedIdentities
from devstack.fake_identity.server import FakeIdentityServer
from devstack.postgres import database_url
from tests.integration.client import AppClient, make_image
from tests.services import Services

# Azure's function, as far as the app uses it: a role for the named identity (here, any name).
PGAADAUTH = """
CREATE OR REPLACE FUNCTION pgaadauth_create_principal(name text, is_admin boolean, is_mfa boolean)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    EXECUTE format('CREATE ROLE %I LOGIN', name);
    RETURN format('Created role for "%s"', name);
END $$
"""


@dataclass
class EntraDatabase:
    env: dict[str, str]
    identities: ManagedIdentities
    app_role: str
    owner_role: str

    def issued_to(self, client_id: str) -> list[IssuedToken]:
        return [t for t in self.identities.issued if t.client_id == client_id]


def _as(url: str, role: str, database: str) -> str:
    """`url` (the superuser's) as `role` without a password, on `database`, verifying TLS."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(
        parts._replace(
            netloc=f"{role}@{host}", path=f"/{database}", query="sslmode=verify-full&sslrootcert=system"
        )
    )


@pytest.fixture
def entra_database(services: Services, identity: FakeIdentityServer) -> Iterator[EntraDatabase]:
    if services.postgres is None:
        pytest.fail("needs the local PostgreSQL (its pg_hba.conf decides how roles sign in)")
    suffix = uuid.uuid4().hex[:8]
    app_role, owner_role, database = f"entra_app_{suffix}", f"entra_owner_{suffix}", f"entra_{suffix}"
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(owner_role)))
        names = sql.Identifier(database), sql.Identifier(owner_role)
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(*names))
        hba = Path(conn.execute("SHOW hba_file").fetchone()[0])  # type: ignore[index]
    original = hba.read_text()
    # First match wins: these roles sign in with a password only (over TLS, as Azure requires).
    lines = [f"hostssl all {role} 127.0.0.1/32 scram-sha-256\n" for role in (app_role, owner_role)]
    hba.write_text("".join(lines) + original)
    identities = identity.fake.managed_identities
    identities.issued.clear()  # what this test's site is issued, from here on
    owner_client_id = str(uuid.uuid4())
    identities.user_assigned.add(owner_client_id)
    role_of = {identities.system_client_id: app_role, owner_client_id: owner_role}

    def accept(token: IssuedToken) -> None:
        """What Azure's PostgreSQL does with the identity's token: the role's password now (the
        app's role once the owner has created it)."""
        if token.resource != "https://ossrdbms-aad.database.windows.net" or token.client_id not in role_of:
            return
        with (
            contextlib.suppress(psycopg.errors.UndefinedObject),
            psycopg.connect(services.database_url, autocommit=True) as admin,
        ):
            admin.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role_of[token.client_id]), sql.Literal(token.token)
                )
            )

    identities.on_issue = accept
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
    with psycopg.connect(database_url(services.database_url, "postgres"), autocommit=True) as conn:
        conn.execute(PGAADAUTH)
        conn.execute(
            sql.SQL(
                "GRANT EXECUTE ON FUNCTION pgaadauth_create_principal(text, boolean, boolean) TO {}"
            ).format(sql.Identifier(owner_role))
        )
    try:
        yield EntraDatabase(
            env={
                "DATABASE_AUTH": "entra",
                "DATABASE_URL": _as(services.database_url, app_role, database),
                "DATABASE_OWNER_URL": _as(services.database_url, owner_role, database),
                "DATABASE_OWNER_CLIENT_ID": owner_client_id,
                **identities.env(identity.base_url),
                # azure-identity reads AZURE_AUTHORITY_HOST too, and takes `host:port` for a
                # scheme: the same host, spelled as a URL, which the app's setting also accepts.
                "AZURE_AUTHORITY_HOST": f"https://{urlsplit(identity.base_url).netloc}",
            },
            identities=identities,
            app_role=app_role,
            owner_role=owner_role,
        )
    finally:
        identities.on_issue = None
        identities.lifetime = ManagedIdentities.lifetime
        identities.user_assigned.discard(owner_client_id)
        hba.write_text(original)
        with psycopg.connect(database_url(services.database_url, "postgres"), autocommit=True) as conn:
            conn.execute("DROP FUNCTION IF EXISTS pgaadauth_create_principal(text, boolean, boolean)")
        with psycopg.connect(services.database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))
            for role in (app_role, owner_role):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_the_app_signs_in_to_postgresql_with_its_identitys_tokens(
    entra_database: EntraDatabase,
    services: Services,
    start_app: Callable[..., Site],
    client_factory: Callable[..., AppClient],
    make_user,
):
    # Tokens that lapse within azure-identity's refresh margin (5 minutes): it keeps none, so
    # each new connection must take a new one.
    entra_database.identities.lifetime = 299
    site = start_app(workers=1, **entra_database.env)
    client = client_factory(site)
    client.sign_in(make_user())
    assert client.upload(("a.png", make_image("PNG"), "image/png")).status_code == 201
    owner_tokens = entra_database.issued_to(entra_database.env["DATABASE_OWNER_CLIENT_ID"])
    assert owner_tokens, "the migrations ran without the owner's token"
    assert any(
        f"created the Microsoft Entra principal {entra_database.app_role}" in line
        for line in site.log().splitlines()
    )
    system = entra_database.identities.system_client_id
    first = len(entra_database.issued_to(system))
    assert first >= 1

    # Every connection of the app's role is cut; the pool's next one needs a token again, and
    # the last one has lapsed (the role's password is whatever was issued last).
    with psycopg.connect(services.database_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            (entra_database.app_role,),
        )
    assert len(client.photos()["photos"]) == 1
    assert len(entra_database.issued_to(system)) > first
    with psycopg.connect(services.database_url) as admin:
        seen = admin.execute(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE usename IN (%s, %s)",
            (entra_database.app_role, entra_database.owner_role),
        ).fetchall()
    assert seen == [(entra_database.app_role,)]  # the pool: the app's role only


def test_a_refused_identity_token_names_the_database_misconfigured(
    entra_database: EntraDatabase, start_app: Callable[..., Site], client_factory: Callable[..., AppClient]
):
    """The site's identity endpoint refuses (here: a wrong IDENTITY_HEADER, as with no identity
    turned on): /readyz names the database as misconfigured, not as down."""
    env = {**entra_database.env, "IDENTITY_HEADER": "not-the-sites"}
    site = start_app(workers=1, **env)
    ready = client_factory(site).get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "database_token_failed"
    assert "managed identity" in ready.json()["message"]
    assert entra_database.issued_to(entra_database.identities.system_client_id) == []
