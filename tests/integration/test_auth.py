"""Sign-in through the fake's pages, on B2C and on External ID: the happy path and what must
be refused."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import PLATFORMS, Platform
from tests.integration.client import AppClient

# What the identity platform decides runs on both; the app's own redirect and cookie rules once.
both = pytest.mark.parametrize("platform", PLATFORMS, indirect=True)
b2c = pytest.mark.parametrize("platform", ["b2c"], indirect=True)
external_id = pytest.mark.parametrize("platform", ["external_id"], indirect=True)


@both
def test_sign_in_shows_the_gallery(client: AppClient, make_user):
    user = make_user()
    client.sign_in(user)
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert user["name"] in page.text and "upload-form" in page.text


def test_login_keeps_a_safe_next(client: AppClient, make_user):
    user = make_user()
    auth_uri = client.get("/auth/login", params={"next": "/api/me"}).headers["Location"]
    params = client.fake.sign_in_as(auth_uri, user)
    assert client.finish_login(params).headers["Location"] == "/api/me"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil.example"])
def test_login_never_redirects_off_site(client: AppClient, make_user, target):
    user = make_user()
    auth_uri = client.get("/auth/login", params={"next": target}).headers["Location"]
    params = client.fake.sign_in_as(auth_uri, user)
    assert client.finish_login(params).headers["Location"] == "/"


@both
def test_a_replayed_callback_is_refused(client: AppClient, make_user):
    user = make_user()
    params = client.fake.sign_in_as(client.start_login(), user)
    assert client.finish_login(params).status_code == 302
    assert client.sign_out().status_code == 303
    replay = client.finish_login(params)
    assert replay.status_code == 400
    assert client.get("/api/me").status_code == 401


@both
def test_a_wrong_state_is_refused(client: AppClient, make_user):
    user = make_user()
    params = client.fake.sign_in_as(client.start_login(), user)
    assert client.finish_login({**params, "state": "forged"}).status_code == 400
    assert client.get("/api/me").status_code == 401


@both
def test_a_forged_response_changes_nothing_and_the_sign_in_still_completes(client: AppClient, make_user):
    """Links another site could send mid-sign-in: cancel, forgot-password, a bare code."""
    user = make_user()
    params = client.fake.sign_in_as(client.start_login(), user)
    for forged in (
        {"error": "access_denied", "error_description": "AADB2C90091: The user has cancelled."},
        {
            "error": "access_denied",
            "error_description": "AADB2C90118: The user has forgotten their password.",
        },
        {"code": "forged-code"},
    ):
        response = client.finish_login({**forged, "state": "not-this-sign-ins"})
        assert response.status_code == 400, forged  # no reset flow started, nothing cancelled
    assert client.finish_login(params).status_code == 302  # the real answer still completes
    assert client.get("/api/me").json()["id"] == user["oid"]


DEFECTS = ["wrong_aud", "wrong_iss", "expired", "bad_signature", "alg_none", "wrong_nonce"]


@pytest.mark.parametrize(
    ("platform", "defect"),
    [
        *(("b2c", d) for d in [*DEFECTS, "wrong_policy"]),
        *(("external_id", d) for d in [*DEFECTS, "wrong_tid"]),
    ],
    indirect=["platform"],
)
def test_defective_id_tokens_are_refused(client: AppClient, make_user, fake, defect):
    """Each a token the app must refuse; on B2C also one of another user flow (`tfp`), on
    External ID one of another tenant (`tid`)."""
    user = make_user()
    fake.set_knobs(next_id_token=defect)
    params = client.fake.sign_in_as(client.start_login(), user)
    response = client.finish_login(params)
    assert response.status_code == 400, defect
    assert client.get("/api/me").status_code == 401


@b2c
def test_forgot_password_starts_the_reset_flow(client: AppClient, identity):
    """B2C's page answers AADB2C90118; the app starts the reset user flow."""
    result = client.fake.submit_authorize(client.start_login(), "forgot")
    response = client.finish_login(result.params)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert identity.config.policies[1].lower() in location.lower()  # B2C_1_passwordreset
    assert "/oauth2/v2.0/authorize" in location


@external_id
def test_external_id_resets_the_password_inside_sign_in(client: AppClient, make_user, platform: Platform):
    user = make_user()
    reset = client.start_login("/auth/reset-password")  # starts sign-in: reset is on its page
    assert urlsplit(reset).path == f"/{platform.tenant_id}/oauth2/v2.0/authorize"
    params = client.fake.reset_password_in_flow(reset, user["email"], "Another-Horse-2")
    assert client.finish_login(params).status_code == 302
    assert client.get("/api/me").json()["id"] == user["oid"]
    assert client.get("/auth/edit-profile").status_code == 404  # no profile-edit flow there
    page = client.get("/", headers={"Accept": "text/html"}).text
    assert "Edit profile" not in page and "/auth/edit-profile" not in page


@both
def test_cancel_goes_back_home(client: AppClient):
    result = client.fake.submit_authorize(client.start_login(), "cancel")
    response = client.finish_login(result.params)
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/"
    assert client.get("/api/me").status_code == 401


@both
def test_logout_ends_the_identity_providers_session_too(signed_in: AppClient):
    response = signed_in.sign_out()
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.path.lower().endswith("/oauth2/v2.0/logout")
    assert parse_qs(location.query)["post_logout_redirect_uri"] == [f"{signed_in.base_url}/"]
    assert signed_in.get("/api/me").status_code == 401


def test_a_tampered_session_cookie_is_refused(signed_in: AppClient):
    cookie = next(c for c in signed_in.http.cookies if c.name == "__Host-session")
    assert cookie.value is not None
    cookie.value = cookie.value[:-3] + ("AAA" if not cookie.value.endswith("AAA") else "BBB")
    assert signed_in.get("/api/me").status_code == 401


@both
def test_sign_up_on_the_page_then_sign_in(client: AppClient):
    email = f"new.{uuid.uuid4().hex[:8]}@example.com"
    params = client.fake.sign_up(
        client.start_login(), name="New Person", email=email, password="Correct-Horse-1", kind="local"
    )  # External ID's page has no kind: its email claim is the app registration's (off here)
    assert client.finish_login(params).status_code == 302
    assert client.get("/api/me/email").json() == {"email": email, "source": "graph"}
