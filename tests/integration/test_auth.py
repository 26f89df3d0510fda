"""Sign-in through the fake B2C user flows: the happy path and what must be refused."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.client import AppClient


def test_sign_in_shows_the_gallery(client: AppClient, make_user):
    user = make_user()
    client.sign_in(user)
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert user["name"] in page.text and "upload-form" in page.text


def test_login_keeps_a_safe_next(client: AppClient, make_user):
    user = make_user()
    auth_uri = client.get("/auth/login", params={"next": "/api/me"}).headers["Location"]
    params = client.fake.sign_in(auth_uri, user["email"], user["password"])
    assert client.finish_login(params).headers["Location"] == "/api/me"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example", "/\\evil.example"])
def test_login_never_redirects_off_site(client: AppClient, make_user, target):
    user = make_user()
    auth_uri = client.get("/auth/login", params={"next": target}).headers["Location"]
    params = client.fake.sign_in(auth_uri, user["email"], user["password"])
    assert client.finish_login(params).headers["Location"] == "/"


def test_a_replayed_callback_is_refused(client: AppClient, make_user):
    user = make_user()
    params = client.fake.sign_in(client.start_login(), user["email"], user["password"])
    assert client.finish_login(params).status_code == 302
    client.get("/auth/logout")
    replay = client.finish_login(params)
    assert replay.status_code == 400
    assert client.get("/api/me").status_code == 401


def test_a_wrong_state_is_refused(client: AppClient, make_user):
    user = make_user()
    params = client.fake.sign_in(client.start_login(), user["email"], user["password"])
    assert client.finish_login({**params, "state": "forged"}).status_code == 400
    assert client.get("/api/me").status_code == 401


@pytest.mark.parametrize(
    "defect", ["wrong_aud", "wrong_iss", "expired", "bad_signature", "alg_none", "wrong_nonce"]
)
def test_defective_id_tokens_are_refused(client: AppClient, make_user, fake, defect):
    user = make_user()
    fake.set_knobs(next_id_token=defect)
    params = client.fake.sign_in(client.start_login(), user["email"], user["password"])
    response = client.finish_login(params)
    assert response.status_code == 400, defect
    assert client.get("/api/me").status_code == 401


def test_forgot_password_starts_the_reset_flow(client: AppClient, identity):
    result = client.fake.submit_authorize(client.start_login(), "forgot")
    response = client.finish_login(result.params)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert identity.config.policies[1].lower() in location.lower()  # B2C_1_passwordreset
    assert "/oauth2/v2.0/authorize" in location


def test_cancel_goes_back_home(client: AppClient):
    result = client.fake.submit_authorize(client.start_login(), "cancel")
    response = client.finish_login(result.params)
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/"
    assert client.get("/api/me").status_code == 401


def test_logout_ends_the_b2c_session_too(signed_in: AppClient):
    response = signed_in.get("/auth/logout")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path.lower().endswith("/oauth2/v2.0/logout")
    assert parse_qs(location.query)["post_logout_redirect_uri"] == [f"{signed_in.base_url}/"]
    assert signed_in.get("/api/me").status_code == 401


def test_a_tampered_session_cookie_is_refused(signed_in: AppClient):
    cookie = next(c for c in signed_in.http.cookies if c.name == "__Host-session")
    assert cookie.value is not None
    cookie.value = cookie.value[:-3] + ("AAA" if not cookie.value.endswith("AAA") else "BBB")
    assert signed_in.get("/api/me").status_code == 401


def test_sign_up_on_the_page_then_sign_in(client: AppClient):
    email = f"new.{uuid.uuid4().hex[:8]}@example.com"
    params = client.fake.sign_up(
        client.start_login(), name="New Person", email=email, password="Correct-Horse-1", kind="local"
    )
    assert client.finish_login(params).status_code == 302
    assert client.get("/api/me/email").json() == {"email": email, "source": "graph"}
