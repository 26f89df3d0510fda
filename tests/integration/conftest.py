"""The integration suite's story: real services (per TEST_SERVICES), the fake B2C/Graph over
HTTPS, the app in its production configuration under gunicorn behind a TLS front end (nginx,
playing App Service's), and clients that sign in through the fake's page.

`dev_app_server` is the exception: the app as `make dev` runs it, development mode over plain
HTTP, for the tests whose subject that is."""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from devstack.appserver import AppServer, Site
from devstack.fake_identity.client import FakeIdentityClient
from devstack.fake_identity.server import FakeIdentityServer
from devstack.fake_identity.tls import TlsFiles
from devstack.stack import identity_env
from tests.integration.client import AppClient
from tests.services import IMAGES_CONTAINER, Services


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this directory is `integration`, for `-m` to select or leave out."""
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def app_env(services: Services, identity: FakeIdentityServer, tls: TlsFiles) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        APP_ENV="production",
        SECRET_KEY=secrets.token_hex(32),
        DATABASE_URL=services.database_url,
        AZURE_STORAGE_CONNECTION_STRING=services.storage_connection_string,
        AZURE_STORAGE_CONTAINER=IMAGES_CONTAINER,
        EMAIL_CACHE_TTL_SECONDS="3600",
    )
    env.update(identity_env(identity, tls.bundle_pem))
    return env


@pytest.fixture(scope="session")
def make_site(
    app_env: dict[str, str], tls: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Site]:
    """An app instance (other settings, more workers) behind its own front end, not started:
    `with make_site(...) as site:` keeps it for the caller's scope."""

    def make(workers: int = 2, **overrides: str) -> Site:
        site = Site(
            env={**app_env, **overrides}, tls=tls, workers=workers, log_dir=tmp_path_factory.mktemp("app")
        )
        if site.proxy is None:
            warnings.warn(f"the app is served over {site.front_end}", stacklevel=2)
        return site

    return make


@pytest.fixture
def start_app(make_site: Callable[..., Site]) -> Iterator[Callable[..., Site]]:
    """Start app instances for one test; they stop when it ends."""
    with ExitStack() as started:

        def start(workers: int = 2, **overrides: str) -> Site:
            return started.enter_context(make_site(workers, **overrides))

        yield start


@pytest.fixture(scope="session")
def app_server(make_site: Callable[..., Site]) -> Iterator[Site]:
    with make_site() as site:
        yield site


@pytest.fixture(scope="session")
def dev_app_server(app_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """The app as `make dev` serves it: development mode, plain HTTP, no front end."""
    env = {**app_env, "APP_ENV": "development"}
    with AppServer(env=env, log_dir=tmp_path_factory.mktemp("dev-app")) as server:
        yield server


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
