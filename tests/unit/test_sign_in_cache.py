"""The sign-in apps keep no user tokens: many sign-ins through one process leave MSAL's caches
empty (the app-only Graph token is the only token a process keeps)."""

from __future__ import annotations

import tracemalloc
import uuid

import msal
import pytest

from app.auth import IdentityClient
from app.settings import IdentitySettings
from devstack.fake_identity.client import FakeIdentityClient
from devstack.fake_identity.server import FakeIdentityServer
from devstack.stack import identity_env
from tests.conftest import register_app

REDIRECT_URI = "https://localhost/auth/callback"
SIGN_INS = 8


@pytest.mark.parametrize("platform", ["b2c"])  # one IdentityClient.app() for both platforms
def test_many_sign_ins_leave_no_user_tokens_in_memory(identity: FakeIdentityServer, tls, platform):
    register_app(identity, REDIRECT_URI.removesuffix("/auth/callback"))
    fake = FakeIdentityClient(identity.base_url)
    settings = IdentitySettings.from_env(
        {**identity_env(identity, tls.bundle_pem, platform), "APP_ENV": "production"}
    )
    client = IdentityClient.from_settings(settings)
    app = client.app("sign_in")
    directory = "external" if platform == "external_id" else "b2c"

    def sign_in() -> None:
        email = f"cache-{uuid.uuid4().hex[:10]}@example.com"
        user = {
            **fake.add_user(email, "Pw-123456789", directory=directory),
            "email": email,
            "password": "Pw-123456789",
        }
        flow = app.initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
        params = fake.sign_in_as(flow["auth_uri"], user)
        result = app.acquire_token_by_auth_code_flow(flow, params)
        assert "id_token" in result, result  # the sign-in itself works
        claims = client.validate_id_token(result["id_token"], flow="sign_in", nonce=flow["nonce"])
        assert client.signed_in_user(claims, flow="sign_in")["oid"] == user["oid"]

    sign_in()  # metadata, keys and MSAL's own first-use state
    # What MSAL and the app keep: allocations made with either on the stack (the in-process
    # fake and the test's own log capture grow too, and are not the app's memory).
    kept_by_us = [tracemalloc.Filter(True, f"*/{package}/*", all_frames=True) for package in ("msal", "app")]
    tracemalloc.start(12)
    before = tracemalloc.take_snapshot().filter_traces(kept_by_us)
    for _ in range(SIGN_INS):
        sign_in()
    after = tracemalloc.take_snapshot().filter_traces(kept_by_us)
    growth = sum(d.size_diff for d in after.compare_to(before, "filename"))
    tracemalloc.stop()

    for kind in ("IdToken", "AccessToken", "RefreshToken", "Account"):
        assert list(app.token_cache.search(kind)) == [], kind
    # A user's ID, access and refresh tokens are a few KB: kept, 8 sign-ins would be 20 KB+.
    assert growth < 10 * 1024, f"{growth} bytes kept after {SIGN_INS} sign-ins"

    # MSAL's own default cache, for comparison, keeps every user's tokens.
    app.token_cache = msal.TokenCache()
    sign_in()
    assert len(list(app.token_cache.search("IdToken"))) == 1
