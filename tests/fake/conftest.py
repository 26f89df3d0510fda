"""One fake identity server per session (both listeners on port 0, own CA); knobs and counters
reset per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from devstack.fake_identity import (
    FakeConfig,
    FakeIdentityClient,
    FakeIdentityServer,
    TlsFiles,
    make_tls,
)
from tests.fake.helpers import User, new_email


@pytest.fixture(scope="session")
def fake_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("fake-identity-tls"))


@pytest.fixture(scope="session")
def fake_config() -> FakeConfig:
    return FakeConfig.random()


@pytest.fixture(scope="session")
def fake_server(fake_config: FakeConfig, fake_tls: TlsFiles) -> Iterator[FakeIdentityServer]:
    with FakeIdentityServer(fake_config, tls=fake_tls) as server:
        yield server


@pytest.fixture(scope="module")
def own_fake(fake_tls: TlsFiles) -> Iterator[FakeIdentityServer]:
    """A fake of the test module's own, for tests that change what every other test relies on
    in the shared one (its signing keys, its registered redirect URIs)."""
    with FakeIdentityServer(FakeConfig.random(), tls=fake_tls) as server:
        yield server


@pytest.fixture
def fake(
    fake_server: FakeIdentityServer, fake_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> FakeIdentityServer:
    """The running server, trusted by requests/MSAL in this test, with default knobs."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake_tls.bundle_pem))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(fake_tls.bundle_pem))
    FakeIdentityClient(fake_server.base_url).reset()
    return fake_server


@pytest.fixture
def control(fake: FakeIdentityServer) -> FakeIdentityClient:
    return FakeIdentityClient(fake.base_url)


@pytest.fixture
def make_user(control: FakeIdentityClient) -> Callable[..., User]:
    """Create users in the fake directory; they persist for the session, so emails are unique."""

    def make(kind: str = "local_with_emails_claim", **extra: str) -> User:
        email, password = new_email(), uuid.uuid4().hex
        created = control.add_user(email, password, name="Test User", kind=kind, **extra)
        return User(created["oid"], email, password, created["name"], kind)

    return make


@pytest.fixture
def make_external_user(control: FakeIdentityClient) -> Callable[..., User]:
    """Create users in the fake external tenant: kind email_password | email_otp | google."""

    def make(kind: str = "email_password", **extra: str) -> User:
        email = new_email()
        password = uuid.uuid4().hex if kind == "email_password" else ""
        created = control.add_user(
            email, password or None, name="External User", kind=kind, directory="external", **extra
        )
        return User(created["oid"], email, password, created["name"], kind, "external")

    return make


@pytest.fixture
def user(make_user: Callable[..., User]) -> User:
    return make_user()
