"""The integration suite's story: real services (per TEST_SERVICES), the fake B2C/Graph over
HTTPS, the app in its production configuration under gunicorn behind a TLS front end (nginx,
playing App Service's), and clients that sign in through the fake's page.

`dev_app_server` is the exception: the app as `make dev` runs it, development mode over plain
HTTP, for the tests whose subject that is."""

from __future__ import annotations

import os
import secrets
import uuid
import warnings
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from devstack.appserver import AppServer, Site
from devstack.fake_identity.client import FakeIdentityClient
from devstack.fake_identity.config import FakeConfig
from devstack.fake_identity.server import FakeIdentityServer
from devstack.fake_identity.tls import TlsFiles, make_tls
from devstack.stack import identity_env
from tests.integration.client import AppClient
from tests.services import IMAGES_CONTAINER, Services, chosen_provider, provide

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    with provide(chosen_provider()) as provided:
        yield provided


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The tests' CA and a certificate for 127.0.0.1/localhost: the fake and the front end."""
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def identity(tls: TlsFiles) -> Iterator[FakeIdentityServer]:
    saved = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    # The test process talks to the fake too (its sign-in page, its control API).
    os.environ["REQUESTS_CA_BUNDLE"] = os.environ["CURL_CA_BUNDLE"] = str(tls.bundle_pem)
    server = FakeIdentityServer(FakeConfig.random(b2c_tenant_name="photosharetest"), tls=tls).start()
    server.bundle_pem = tls.bundle_pem  # type: ignore[attr-defined]
    yield server
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def fake(identity: FakeIdentityServer) -> Iterator[FakeIdentityClient]:
    """The fake's control API, with knobs and counters reset around each test."""
    client = FakeIdentityClient(identity.base_url)
    client.reset()
    yield client
    client.reset()


@pytest.fixture(scope="session")
def app_env(services: Services, identity: FakeIdentityServer) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        APP_ENV="production",
        SECRET_KEY=secrets.token_hex(32),
        DATABASE_URL=services.database_url,
        AZURE_STORAGE_CONNECTION_STRING=services.storage_connection_string,
        AZURE_STORAGE_CONTAINER=IMAGES_CONTAINER,
        EMAIL_CACHE_TTL_SECONDS="3600",
    )
    env.update(identity_env(identity, identity.bundle_pem))  # type: ignore[attr-defined]
    return env


@pytest.fixture(scope="session")
def start_app(
    app_env: dict[str, str], tls: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Site]]:
    """Start extra app instances (other settings, more workers), each behind its own front end;
    all stopped at the end."""
    started: list[Site] = []

    def start(workers: int = 2, **overrides: str) -> Site:
        site = Site(
            env={**app_env, **overrides}, tls=tls, workers=workers, log_dir=tmp_path_factory.mktemp("app")
        )
        started.append(site.start())
        if site.proxy is None:
            warnings.warn(f"the app is served over {site.front_end}", stacklevel=2)
        return site

    yield start
    for site in started:
        site.stop()


@pytest.fixture(scope="session")
def app_server(start_app: Callable[..., Site]) -> Site:
    return start_app()


@pytest.fixture(scope="session")
def dev_app_server(app_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The app as `make dev` serves it: development mode, plain HTTP, no front end."""
    env = {**app_env, "APP_ENV": "development"}
    with AppServer(env=env, log_dir=tmp_path_factory.mktemp("dev-app")) as server:
        yield server


@pytest.fixture
def make_user(fake: FakeIdentityClient) -> Callable[..., dict]:
    """Create a user in the fake B2C directory: kind local_with_emails_claim | local | social."""

    def make(kind: str = "local_with_emails_claim", **extra: str) -> dict:
        email = f"user-{uuid.uuid4().hex[:10]}@example.com"
        password = secrets.token_urlsafe(12)
        user = fake.add_user(email, password, name=f"Test {kind}", kind=kind, **extra)
        return {**user, "email": email, "password": password}

    return make


@pytest.fixture
def client(app_server: Site, fake: FakeIdentityClient) -> AppClient:
    return AppClient(app_server.url, fake)


@pytest.fixture
def signed_in(client: AppClient, make_user: Callable[..., dict]) -> AppClient:
    """A client really signed in through the fake B2C page, as a user whose token has `emails`."""
    client.sign_in(make_user())
    return client


@pytest.fixture
def client_factory(app_server: Site, fake: FakeIdentityClient) -> Callable[..., AppClient]:
    """More clients (other users, other app instances)."""

    def make(server: Site | AppServer | None = None) -> AppClient:
        return AppClient((server or app_server).url, fake)

    return make


@pytest.fixture
def fresh_database(services: Services) -> Iterator[str]:
    """An empty database on the same server, dropped afterwards."""
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = services.database_url.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
