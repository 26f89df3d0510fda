"""The integration suite's story: real services (per TEST_SERVICES), the fake B2C/External ID/
Graph over HTTPS, the app in its production configuration under gunicorn behind a TLS front end
(nginx, playing App Service's), and clients that sign in through the fake's page. Tests about
the identity platform run on both (`platform` parametrized indirectly with `PLATFORMS`).

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
from devstack.stack import identity_env, without_identity
from tests.conftest import PLATFORMS, Platform, register_app
from tests.integration.client import AppClient
from tests.services import IMAGES_CONTAINER, Services


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this directory is `integration`, for `-m` to select or leave out."""
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def platform_envs(
    services: Services, identity: FakeIdentityServer, tls: TlsFiles
) -> dict[str, dict[str, str]]:
    """The app's production environment on the local services, per identity platform."""
    env = without_identity(os.environ)
    env.update(
        APP_ENV="production",
        SECRET_KEY=secrets.token_hex(32),
        **services.app_database(),
        AZURE_STORAGE_CONNECTION_STRING=services.storage_connection_string,
        AZURE_STORAGE_CONTAINER=IMAGES_CONTAINER,
        EMAIL_CACHE_TTL_SECONDS="3600",
    )
    return {name: {**env, **identity_env(identity, tls.bundle_pem, name)} for name in PLATFORMS}


@pytest.fixture(scope="session")
def app_env(platform_envs: dict[str, dict[str, str]]) -> dict[str, str]:
    """The B2C one: what the tests that are not about the identity platform run with."""
    return platform_envs["b2c"]


@pytest.fixture(scope="session")
def make_site(
    platform_envs: dict[str, dict[str, str]],
    identity: FakeIdentityServer,
    tls: TlsFiles,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., Site]:
    """An app instance (another platform, other settings, more workers) behind its own front
    end, not started: `with make_site(...) as site:` keeps it for the caller's scope."""

    def make(workers: int = 2, platform: str = "b2c", **overrides: str) -> Site:
        env = {**platform_envs[platform], **overrides}
        site = Site(env=env, tls=tls, workers=workers, log_dir=tmp_path_factory.mktemp("app"))
        register_app(identity, site.url)
        if site.proxy is None:
            warnings.warn(f"the app is served over {site.front_end}", stacklevel=2)
        return site

    return make


@pytest.fixture
def start_app(make_site: Callable[..., Site], platform: Platform) -> Iterator[Callable[..., Site]]:
    """Start app instances on the test's platform for one test; they stop when it ends."""
    with ExitStack() as started:

        def start(workers: int = 2, **overrides: str) -> Site:
            return started.enter_context(make_site(workers, platform.name, **overrides))

        yield start


@pytest.fixture(scope="session")
def sites(make_site: Callable[..., Site]) -> Iterator[Callable[[str], Site]]:
    """One running app per identity platform, started when a test first needs it."""
    with ExitStack() as stack:
        running: dict[str, Site] = {}

        def site(platform: str) -> Site:
            if platform not in running:
                running[platform] = stack.enter_context(make_site(platform=platform))
            return running[platform]

        yield site


@pytest.fixture(scope="session")
def app_server(sites: Callable[[str], Site]) -> Site:
    return sites("b2c")


@pytest.fixture
def platform_server(sites: Callable[[str], Site], platform: Platform) -> Site:
    """The running app on the test's identity platform."""
    return sites(platform.name)


@pytest.fixture(scope="session")
def dev_app_server(
    app_env: dict[str, str], identity: FakeIdentityServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppServer]:
    """The app as `make dev` serves it: development mode, plain HTTP, no front end."""
    env = {**app_env, "APP_ENV": "development"}
    server = AppServer(env=env, log_dir=tmp_path_factory.mktemp("dev-app"))
    register_app(identity, server.url)
    with server:
        yield server


@pytest.fixture
def client(platform_server: Site, fake: FakeIdentityClient) -> AppClient:
    return AppClient(platform_server.url, fake)


@pytest.fixture
def signed_in(client: AppClient, make_user: Callable[..., dict]) -> AppClient:
    """A client really signed in through the fake's page, as a user whose token has the email."""
    client.sign_in(make_user())
    return client


@pytest.fixture
def client_factory(platform_server: Site, fake: FakeIdentityClient) -> Callable[..., AppClient]:
    """More clients (other users, other app instances)."""

    def make(server: Site | AppServer | None = None) -> AppClient:
        return AppClient((server or platform_server).url, fake)

    return make
