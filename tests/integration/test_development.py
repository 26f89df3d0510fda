"""Development mode, as `make dev` serves it: plain HTTP on localhost, no front end. Every
other integration test runs the production configuration behind the TLS front end."""

from __future__ import annotations

import pytest

from devstack.appserver import AppServer
from tests.integration.client import AppClient, make_image

PNG = make_image("PNG", (40, 30))


@pytest.fixture
def dev_client(dev_app_server: AppServer, fake, make_user) -> AppClient:
    client = AppClient(dev_app_server.url, fake)
    client.sign_in(make_user())
    return client


def test_signs_in_and_uploads_over_plain_http(dev_client: AppClient):
    assert dev_client.base_url.startswith("http://")
    response = dev_client.upload(("a.png", PNG, "image/png"))
    assert response.status_code == 201, response.text
    assert [p["filename"] for p in dev_client.photos()["photos"]] == ["a.png"]
    login = dev_client.get("/auth/login")
    assert "redirect_uri=http%3A%2F%2F127.0.0.1" in login.headers["Location"]


def test_cookie_is_not_secure_and_there_is_no_hsts(dev_client: AppClient):
    page = dev_client.get("/", headers={"Accept": "text/html"})
    assert "Strict-Transport-Security" not in page.headers
    cookie = next(c for c in dev_client.http.cookies if c.domain == dev_client.host)
    assert cookie.name == "session" and not cookie.secure


def test_over_plain_http_the_token_alone_decides(dev_client: AppClient):
    """No TLS, so no origin to insist on when a client sends none; another origin is still 403."""
    token = dev_client.csrf_token()
    files = [("file", ("a.png", PNG, "image/png"))]
    plain = dev_client.request("POST", "/photos", files=files, headers={"X-CSRFToken": token, "Origin": None})
    assert plain.status_code == 201
    cross = dev_client.request(
        "POST", "/photos", files=files, headers={"X-CSRFToken": token, "Origin": "http://evil.example"}
    )
    assert cross.status_code == 403 and cross.json()["error"] == "cross_origin"
