"""What every suite that runs the app shares, set up once per run: the services (per
TEST_SERVICES), the tests' CA, the fake Entra/B2C/Graph server and its users; and, at the top
of every run, how the app is served."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from app.settings import B2C_DIRECTORY, EXTERNAL_DIRECTORY, Directory
from devstack.fake_identity.client import FakeIdentityClient
from devstack.fake_identity.config import FakeConfig
from devstack.fake_identity.server import FakeIdentityServer
from devstack.fake_identity.tls import TlsFiles, make_tls
from devstack.frontend import find_nginx, nginx_version
from devstack.postgres import OWNER_ROLE, create_database, drop_database
from devstack.stack import CA_BUNDLE_VARIABLES
from tests.services import Services, chosen_provider, provide


def pytest_report_header() -> list[str]:
    nginx = find_nginx()
    if nginx:
        return [f"app served: production mode behind nginx {nginx_version(nginx)} (TLS front end)"]
    return ["app served: production mode over gunicorn's own TLS (nginx not found: no front end)"]


@pytest.fixture(scope="session")
def services(tls: TlsFiles) -> Iterator[Services]:
    with pytest.MonkeyPatch.context() as patch, provide(chosen_provider(), tls) as provided:
        # The app's URLs verify the local PostgreSQL against the default trust, which has the
        # tests' CA in it: here too, for what the tests connect as the app.
        patch.setenv("SSL_CERT_FILE", str(tls.bundle_pem))
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


def register_app(identity: FakeIdentityServer, url: str) -> None:
    """Register an app's redirect and sign-out URIs with the fake, as an app registration lists
    them: the fake then refuses any other (AADB2C90006, AADSTS50011), as the real services do."""
    identity.register_redirect_uris([f"{url}/auth/callback", f"{url}/"])


PLATFORMS = ("b2c", "external_id")
# On External ID, the B2C account kinds the tests name stand for the closest kind there, and
# for whether the ID token carries the email (the app registration's `email` optional claim).
EXTERNAL_KINDS = {
    "local_with_emails_claim": ("email_password", True),
    "local": ("email_password", False),
    "social": ("google", False),
    "email_password": ("email_password", False),
    "email_otp": ("email_otp", False),
    "google": ("google", False),
}


@dataclass(frozen=True)
class Platform:
    """One identity platform as the tests see it: its name, the fake's ids for it, and the
    app's names for its settings."""

    name: str
    tenant_id: str
    client_id: str
    client_secret: str
    directory: Directory

    @property
    def external_id(self) -> bool:
        return self.name == "external_id"


@pytest.fixture
def platform(request: pytest.FixtureRequest, identity: FakeIdentityServer) -> Platform:
    """The identity platform a test runs on: B2C, unless parametrized (`indirect=True`) with
    `PLATFORMS`."""
    name = getattr(request, "param", "b2c")
    cfg = identity.config
    if name == "external_id":
        return Platform(
            name,
            cfg.external_tenant_id,
            cfg.external_client_id,
            cfg.external_client_secret,
            EXTERNAL_DIRECTORY,
        )
    return Platform(name, cfg.b2c_tenant_id, cfg.client_id, cfg.client_secret, B2C_DIRECTORY)


@pytest.fixture
def make_user(fake: FakeIdentityClient, platform: Platform) -> Callable[..., dict]:
    """Create a user in the platform's directory of the fake: kind local_with_emails_claim |
    local | social (on External ID also email_password | email_otp | google)."""

    def make(kind: str = "local_with_emails_claim", **extra: str) -> dict:
        email = f"user-{uuid.uuid4().hex[:10]}@example.com"
        password = secrets.token_urlsafe(12)
        if platform.external_id:
            kind, claim = EXTERNAL_KINDS[kind]
            fake.set_knobs(email_claim=claim)
            user = fake.add_user(
                email, password, name=f"Test {kind}", kind=kind, directory="external", **extra
            )
        else:
            user = fake.add_user(email, password, name=f"Test {kind}", kind=kind, **extra)
        return {**user, "email": email, "password": password}

    return make


@pytest.fixture
def fresh_database(services: Services) -> Iterator[str]:
    """An empty database on the same server, owned as the app's own is (its superuser's URL;
    `services.app_database(fresh_database)` gives the app's settings for it), dropped afterwards."""
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    yield create_database(services.database_url, name, owner=OWNER_ROLE if services.roles else None)
    drop_database(services.database_url, name)
