"""What the app registrations hold, on both platforms: the redirect URIs registered through the
control API (the harness knows the app's URL only once it runs) and a client secret that can
expire, refused at code redemption as at the client-credentials grant."""

from __future__ import annotations

from collections.abc import Callable

import msal
import pytest
import requests

from devstack.fake_identity import FakeIdentityClient, FakeIdentityServer, TlsFiles
from tests.fake.helpers import (
    REDIRECT_URI,
    SIGNUP_SIGNIN,
    User,
    b2c_app,
    external_app,
    external_metadata_url,
    hand_made_authorize_query,
)

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")

HOME = "http://localhost:5000/"
ELSEWHERE = "http://localhost:5000/elsewhere"


def b2c_authorize_url(fake: FakeIdentityServer) -> str:
    cfg = fake.config
    return f"{fake.base_url}/{cfg.b2c_domain}/{SIGNUP_SIGNIN}/oauth2/v2.0/authorize"


def external_authorize_url(fake: FakeIdentityServer) -> str:
    return f"{fake.external_id_url}/{fake.config.external_tenant_id}/oauth2/v2.0/authorize"


@pytest.fixture
def registered(
    own_fake: FakeIdentityServer, fake_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> FakeIdentityServer:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake_tls.bundle_pem))
    control = FakeIdentityClient(own_fake.base_url)
    control.register_redirect_uris([REDIRECT_URI, HOME])
    return own_fake


def test_registering_adds_uris_once_and_both_listeners_see_them(registered: FakeIdentityServer) -> None:
    control = FakeIdentityClient(registered.base_url)
    assert control.register_redirect_uris([HOME, REDIRECT_URI]) == [REDIRECT_URI, HOME]
    assert FakeIdentityClient(registered.external_id_url).redirect_uris() == [REDIRECT_URI, HOME]
    control.reset()
    assert control.redirect_uris() == [REDIRECT_URI, HOME]  # registrations outlive knob resets


@pytest.mark.parametrize("uris", [["javascript:alert(1)"], ["/auth/callback"], "http://localhost/", [1]])
def test_only_absolute_http_urls_can_be_registered(registered: FakeIdentityServer, uris: object) -> None:
    before = FakeIdentityClient(registered.base_url).redirect_uris()
    response = requests.post(f"{registered.base_url}/_fake/redirect_uris", json={"uris": uris})
    assert response.status_code == 400
    assert FakeIdentityClient(registered.base_url).redirect_uris() == before


def test_b2c_refuses_an_unregistered_redirect_uri_with_aadb2c90006(registered: FakeIdentityServer) -> None:
    cfg = registered.config
    url = b2c_authorize_url(registered)
    other = requests.get(
        url, params=hand_made_authorize_query(client_id=cfg.client_id, redirect_uri=ELSEWHERE)
    )
    assert other.status_code == 400
    assert (
        f"AADB2C90006: The redirect URI &#39;{ELSEWHERE}&#39; provided in the request is not "
        f"registered for the client ID &#39;{cfg.client_id}&#39;."
    ) in other.text
    page = requests.get(url, params=hand_made_authorize_query(client_id=cfg.client_id))
    assert page.status_code == 200


def test_external_id_refuses_an_unregistered_redirect_uri_with_aadsts50011(
    registered: FakeIdentityServer,
) -> None:
    cfg = registered.config
    url = external_authorize_url(registered)
    query = hand_made_authorize_query(client_id=cfg.external_client_id, redirect_uri=ELSEWHERE)
    other = requests.get(url, params=query)
    assert other.status_code == 400
    assert f"AADSTS50011: The redirect URI &#39;{ELSEWHERE}&#39;" in other.text
    page = requests.get(url, params=hand_made_authorize_query(client_id=cfg.external_client_id))
    assert page.status_code == 200


@pytest.mark.parametrize(("target", "redirected"), [(HOME, True), (ELSEWHERE, False)])
def test_external_id_signs_out_to_registered_uris_only(
    registered: FakeIdentityServer, target: str, redirected: bool
) -> None:
    logout = requests.get(external_metadata_url(registered)).json()["end_session_endpoint"]
    response = requests.get(logout, params={"post_logout_redirect_uri": target}, allow_redirects=False)
    if redirected:
        assert response.status_code == 302 and response.headers["Location"] == target
    else:
        assert response.status_code == 200 and "You signed out of your account" in response.text


def test_b2c_signs_out_to_any_uri_without_an_id_token_hint(registered: FakeIdentityServer) -> None:
    """B2C checks post_logout_redirect_uri against the reply URLs only when the logout request
    carries an id_token_hint and the user flow requires one; the app sends none."""
    cfg = registered.config
    logout = f"{registered.base_url}/{cfg.b2c_domain}/{SIGNUP_SIGNIN}/oauth2/v2.0/logout"
    response = requests.get(logout, params={"post_logout_redirect_uri": ELSEWHERE}, allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"] == ELSEWHERE


def test_the_whole_b2c_flow_passes_with_registered_uris(registered: FakeIdentityServer) -> None:
    control = FakeIdentityClient(registered.base_url)
    user = control.add_user("registered@example.com", "pw", kind="local_with_emails_claim")
    app = b2c_app(registered)
    flow = app.initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    result = app.acquire_token_by_auth_code_flow(flow, control.sign_in(flow["auth_uri"], user["email"], "pw"))
    assert "id_token" in result, result


# --- an expired secret at code redemption -------------------------------------------------------


def _redeem_after_expiry(
    app: msal.ConfidentialClientApplication, control: FakeIdentityClient, user: User
) -> dict:
    flow = app.initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    params = control.sign_in_as(flow["auth_uri"], user.as_dict())
    control.set_knobs(secret_expired=True)
    return app.acquire_token_by_auth_code_flow(flow, params)


def test_b2c_code_redemption_refuses_an_expired_secret(
    fake: FakeIdentityServer, control: FakeIdentityClient, user: User
) -> None:
    result = _redeem_after_expiry(b2c_app(fake), control, user)
    assert result["error"] == "invalid_client" and "id_token" not in result
    assert result["error_description"].startswith("AADB2C90081: The specified client_secret does not match")


def test_external_id_code_redemption_refuses_an_expired_secret(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_external_user: Callable[..., User]
) -> None:
    result = _redeem_after_expiry(external_app(fake), control, make_external_user())
    assert result["error"] == "invalid_client" and "id_token" not in result
    assert result["error_codes"] == [7000222]
    app_id = fake.config.external_client_id
    assert result["error_description"].startswith(
        f"AADSTS7000222: The provided client secret keys for app '{app_id}' are expired."
    )
