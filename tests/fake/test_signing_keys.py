"""Signing-key rotation on the knobs: the new key (new kid) is published beside the old one and
signs from then on; tokens signed before stay verifiable until the old key is retired."""

from __future__ import annotations

import jwt
import pytest
import requests

from devstack.fake_identity import FakeIdentityClient, FakeIdentityServer, TlsFiles
from tests.fake.helpers import (
    REDIRECT_URI,
    SIGNUP_SIGNIN,
    b2c_app,
    external_app,
    external_metadata_url,
    graph_token,
    jwks_keys,
    verify_jwt,
)

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")


@pytest.fixture
def server(
    own_fake: FakeIdentityServer, fake_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> FakeIdentityServer:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake_tls.bundle_pem))
    FakeIdentityClient(own_fake.base_url).reset()
    return own_fake


def b2c_metadata_url(fake: FakeIdentityServer) -> str:
    return f"{fake.base_url}/{fake.config.b2c_domain}/{SIGNUP_SIGNIN}/v2.0/.well-known/openid-configuration"


def jwks_uris(fake: FakeIdentityServer) -> list[str]:
    """Every JWKS the fake publishes: a B2C user flow's, Entra's, External ID's."""
    entra = f"{fake.base_url}/{fake.config.b2c_tenant_id}/v2.0/.well-known/openid-configuration"
    return [
        requests.get(url).json()["jwks_uri"]
        for url in (b2c_metadata_url(fake), entra, external_metadata_url(fake))
    ]


def published_kids(fake: FakeIdentityServer) -> list[list[str]]:
    return [[k["kid"] for k in requests.get(uri).json()["keys"]] for uri in jwks_uris(fake)]


def b2c_id_token(fake: FakeIdentityServer, control: FakeIdentityClient, email: str) -> str:
    app = b2c_app(fake)
    flow = app.initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    result = app.acquire_token_by_auth_code_flow(flow, control.sign_in(flow["auth_uri"], email, "pw"))
    return result["id_token"]


def external_id_token(fake: FakeIdentityServer, control: FakeIdentityClient, email: str) -> str:
    app = external_app(fake)
    flow = app.initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    params = control.sign_in_as(
        flow["auth_uri"], {"email": email, "kind": "email_password", "password": "pw"}
    )
    return app.acquire_token_by_auth_code_flow(flow, params)["id_token"]


def graph_status(fake: FakeIdentityServer, token: str) -> int:
    return requests.get(
        f"{fake.base_url}/v1.0/users", headers={"Authorization": f"Bearer {token}"}
    ).status_code


def test_rotation_publishes_a_new_key_beside_the_old_then_retires_the_old(server: FakeIdentityServer) -> None:
    control = FakeIdentityClient(server.base_url)
    email = f"rotate-{server.port}@example.com"
    control.add_user(email, "pw")
    control.add_user(email, "pw", directory="external")
    old_kid = server.fake.key.kid
    assert published_kids(server) == [[old_kid]] * 3
    old_b2c, old_external = b2c_id_token(server, control, email), external_id_token(server, control, email)
    old_graph = graph_token(server)

    kids = control.rotate_signing_key()
    new_kid = kids[0]
    assert kids == [new_kid, old_kid] and new_kid != old_kid
    assert published_kids(server) == [[new_kid, old_kid]] * 3
    assert control.knobs()["rotate_signing_key"] is False  # an action, not a setting

    new_b2c, new_external = b2c_id_token(server, control, email), external_id_token(server, control, email)
    new_graph = graph_token(server)
    assert {jwt.get_unverified_header(t)["kid"] for t in (new_b2c, new_external, new_graph)} == {new_kid}
    assert {jwt.get_unverified_header(t)["kid"] for t in (old_b2c, old_external, old_graph)} == {old_kid}
    # A JWKS consumer (the app's ID-token check, jwt.PyJWKSet) verifies tokens of either key.
    for token in (old_b2c, new_b2c):
        verify_jwt(token, metadata_url=b2c_metadata_url(server), audience=server.config.client_id)
    for token in (old_external, new_external):
        verify_jwt(
            token, metadata_url=external_metadata_url(server), audience=server.config.external_client_id
        )
    assert {key.key_id for key in jwks_keys(jwks_uris(server)[0]).keys} == {old_kid, new_kid}
    assert graph_status(server, old_graph) == graph_status(server, new_graph) == 200

    assert control.retire_old_signing_keys() == [new_kid]
    assert published_kids(server) == [[new_kid]] * 3
    with pytest.raises(KeyError):
        verify_jwt(old_b2c, metadata_url=b2c_metadata_url(server), audience=server.config.client_id)
    verify_jwt(new_b2c, metadata_url=b2c_metadata_url(server), audience=server.config.client_id)
    assert graph_status(server, old_graph) == 401 and graph_status(server, new_graph) == 200


def test_reset_keeps_only_the_current_key(server: FakeIdentityServer) -> None:
    control = FakeIdentityClient(server.base_url)
    control.rotate_signing_key()
    kids = control.rotate_signing_key()
    assert len(kids) == 3 and len(set(kids)) == 3
    control.reset()
    assert control.signing_kids() == [kids[0]] == [server.fake.key.kid]
