"""What every suite that runs the app shares, set up once per run: the services (per
TEST_SERVICES), the tests' CA, the fake Entra/B2C/Graph server and its users; and, at the top
of every run, how the app is served."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator

import pytest

from devstack.fake_identity.client import FakeIdentityClient
from devstack.fake_identity.config import FakeConfig
from devstack.fake_identity.server import FakeIdentityServer
from devstack.fake_identity.tls import TlsFiles, make_tls
from devstack.frontend import find_nginx, nginx_version
from devstack.postgres import create_database, drop_database
from devstack.stack import CA_BUNDLE_VARIABLES
from tests.services import Services, chosen_provider, provide


def pytest_report_header() -> list[str]:
    nginx = find_nginx()
    if nginx:
        return [f"app served: production mode behind nginx {nginx_version(nginx)} (TLS front end)"]
    return ["app served: production mode over gunicorn's own TLS (nginx not found: no front end)"]


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
    with pytest.MonkeyPatch.context() as patch:
        # The test process talks to the fake too (its sign-in page, its control API).
        for key in CA_BUNDLE_VARIABLES:
            patch.setenv(key, str(tls.bundle_pem))
        server = FakeIdentityServer(FakeConfig.random(b2c_tenant_name="photosharetest"), tls=tls).start()
        server.bundle_pem = tls.bundle_pem  # type: ignore[attr-defined]
        yield server
        server.stop()


@pytest.fixture
def fake(identity: FakeIdentityServer) -> Iterator[FakeIdentityClient]:
    """The fake's control API, with knobs and counters reset around each test."""
    client = FakeIdentityClient(identity.base_url)
    client.reset()
    yield client
    client.reset()


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
def fresh_database(services: Services) -> Iterator[str]:
    """An empty database on the same server, dropped afterwards."""
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    yield create_database(services.database_url, name)
    drop_database(services.database_url, name)
