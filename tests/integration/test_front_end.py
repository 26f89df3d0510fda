"""The production configuration as a client meets it: HTTPS through the front end, origins
checked with honest refusals, a readable 413, and exactly one proxy hop trusted."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from devstack.appserver import AppServer, Site
from tests.conftest import register_app
from tests.integration.client import AppClient, make_image, send_while_reading

PNG = make_image("PNG", (40, 30))
MB = 1024 * 1024


def upload(client: AppClient, **headers: str | None) -> requests.Response:
    """A signed-in upload with a valid token and no Referer, plus the given headers."""
    return client.request(
        "POST",
        "/photos",
        files=[("file", ("a.png", PNG, "image/png"))],
        headers={"X-CSRFToken": client.csrf_token(), "Accept": "application/json", **headers},
    )


def test_the_suite_runs_the_production_configuration(signed_in: AppClient, app_server: Site):
    assert signed_in.base_url.startswith("https://")
    assert app_server.env["APP_ENV"] == "production"
    page = signed_in.get("/", headers={"Accept": "text/html"})
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert [c.name for c in signed_in.http.cookies if c.domain == signed_in.host] == ["__Host-session"]
    login = signed_in.get("/auth/login")
    assert "redirect_uri=https%3A%2F%2F127.0.0.1" in login.headers["Location"]


def test_an_upload_with_a_valid_token_and_no_referer_succeeds(signed_in: AppClient):
    response = upload(signed_in)  # Origin as browsers send it, no Referer
    assert response.status_code == 201, response.text
    assert len(signed_in.photos()["photos"]) == 1


def test_a_referer_alone_names_the_origin(signed_in: AppClient):
    response = upload(signed_in, Origin=None, Referer=f"{signed_in.base_url}/")
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "headers, shown",
    [
        ({"Origin": "https://evil.example"}, "https://evil.example"),
        ({"Origin": None, "Referer": "https://evil.example/page?x=1"}, "https://evil.example"),
        ({"Origin": "null"}, "null"),
        ({"Origin": "http://127.0.0.1"}, "http://127.0.0.1"),  # same host, not the same origin
    ],
)
def test_another_origin_gets_403_naming_it(signed_in: AppClient, app_server: Site, headers, shown):
    response = upload(signed_in, **headers)
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error"] == "cross_origin"
    assert f"({shown})" in body["message"]
    assert signed_in.photos()["photos"] == []
    assert "cross_origin" in app_server.log()


def test_neither_origin_nor_referer_over_https_is_400_saying_so(signed_in: AppClient, app_server: Site):
    response = upload(signed_in, Origin=None)
    assert response.status_code == 400
    assert response.json()["error"] == "origin_missing"
    assert "neither an Origin nor a Referer" in response.json()["message"]
    assert "origin_missing" in app_server.log()


def test_a_cross_origin_delete_is_403(signed_in: AppClient):
    photo = upload(signed_in).json()["photos"][0]
    response = signed_in.request(
        "DELETE",
        f"/photos/{photo['id']}",
        headers={"X-CSRFToken": signed_in.csrf_token(), "Origin": "https://evil.example"},
    )
    assert response.status_code == 403 and response.json()["error"] == "cross_origin"
    assert len(signed_in.photos()["photos"]) == 1


@pytest.mark.parametrize(
    "page_seen, token, code",
    [
        (True, None, "csrf_token_missing"),
        (True, "forged", "csrf_token_invalid"),
        (False, "forged", "csrf_session_missing"),  # a session no page was rendered for has no token
    ],
)
def test_token_refusals_name_their_reason(signed_in: AppClient, app_server: Site, page_seen, token, code):
    if page_seen:
        signed_in.csrf_token()
    headers = {"Accept": "application/json"} | ({"X-CSRFToken": token} if token else {})
    response = signed_in.request(
        "POST", "/photos", files=[("file", ("a.png", PNG, "image/png"))], headers=headers
    )
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert "security token" in response.json()["message"]
    assert code in app_server.log()


def test_authenticated_answers_are_not_stored_by_caches(signed_in: AppClient, client_factory):
    for path in ("/", "/api/photos", "/api/me", "/api/me/email"):
        response = signed_in.get(path)
        assert response.headers.get("Cache-Control") == "no-store", path
    assert signed_in.get("/static/app.js").headers.get("Cache-Control") != "no-store"
    landing = client_factory().get("/", headers={"Accept": "text/html"})  # signed out
    assert "no-store" not in landing.headers.get("Cache-Control", "")


# --- 413 that a client can read -------------------------------------------------------------


@pytest.fixture(scope="module")
def small_cap_site(make_site: Callable[..., Site]) -> Iterator[Site]:
    with make_site(workers=1, MAX_UPLOAD_MB="1") as site:
        yield site


@pytest.fixture(scope="module")
def small_cap_gunicorn_tls(
    app_env: dict[str, str], identity, tls, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], AppServer]]:
    """The fallback where no nginx exists: gunicorn terminating TLS itself."""
    servers: list[AppServer] = []

    def start() -> AppServer:
        server = AppServer(
            env={**app_env, "MAX_UPLOAD_MB": "1"}, workers=1, tls=tls, log_dir=tmp_path_factory.mktemp("tls")
        )
        register_app(identity, server.url)
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


def _discarded(server, log_before: int, timeout: float = 15) -> int:
    """Bytes the app's drain discarded, from its log line (written once the drain ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.findall(r"discarded (\d+) unread bytes", server.log()[log_before:])
        if found:
            return int(found[-1])
        time.sleep(0.1)
    raise AssertionError("the app logged no drain")


def _answer_json(reply: bytes) -> dict:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), reply[:300]  # not a reset, not a 502
    return json.loads(body)


@pytest.mark.parametrize("served", ["front end", "gunicorn TLS"])
def test_a_client_sending_3x_the_cap_reads_the_413(
    served, small_cap_site, small_cap_gunicorn_tls, client_factory, make_user
):
    server = small_cap_site if served == "front end" else small_cap_gunicorn_tls()
    client = client_factory(server)
    client.sign_in(make_user())
    log_before = len(server.log())
    started = time.monotonic()
    with client.raw_socket() as sock:
        reply, sent = send_while_reading(sock, client.upload_head(3 * MB), 3 * MB)
    body = _answer_json(reply)
    assert body == {"error": "too_large", "message": "The upload is larger than 1 MB."}
    assert time.monotonic() - started < 20
    assert client.photos()["photos"] == []
    # The app read at most 2x the cap of the rest, then stopped. Straight from the client it
    # reaches that limit and closes; a front end may stop forwarding the body sooner.
    discarded = _discarded(server, log_before)
    assert discarded <= 2 * MB
    if served == "gunicorn TLS":
        assert discarded == 2 * MB
        assert "the most it reads: connection closed" in server.log()[log_before:]


@pytest.mark.parametrize("served", ["front end", "gunicorn TLS", "gunicorn behind the front end"])
def test_a_body_within_twice_the_cap_is_drained(
    served, small_cap_site, small_cap_gunicorn_tls, client_factory, make_user
):
    """1.5x the cap: the app answers, then discards the rest and closes the connection, so the
    client reads the 413. On the hop behind the front end (plain HTTP to gunicorn, what nginx or
    App Service's front end speaks) the whole body is taken and the close is clean: an end of
    stream right away, not a reset and not a keep-alive that would leave a next request unseen."""
    server = small_cap_gunicorn_tls() if served == "gunicorn TLS" else small_cap_site
    client = client_factory(server)
    client.sign_in(make_user())
    size = 3 * MB // 2
    log_before = len(server.log())
    head = client.upload_head(size)
    if served == "gunicorn behind the front end":
        sock = socket.create_connection(("127.0.0.1", int(server.direct_url.rsplit(":", 1)[1])), timeout=10)
        head = head.replace(b"\r\n\r\n", b"\r\nX-Forwarded-Proto: https\r\n\r\n", 1)
    else:
        sock = client.raw_socket()
    with sock:
        reply, sent = send_while_reading(sock, head, size)
        assert _answer_json(reply)["error"] == "too_large"
        if served == "gunicorn behind the front end":
            assert sent == size
            assert _discarded(server, log_before) == size  # the 413 came before any of it was read
            sock.setblocking(True)
            sock.settimeout(3)
            assert sock.recv(65536) == b""  # closed cleanly, at once
    assert "the most it reads" not in server.log()[log_before:]


# --- one proxy hop -----------------------------------------------------------------------------


def test_forged_forwarded_headers_do_not_change_what_the_app_believes(signed_in: AppClient, app_server: Site):
    """Through the front end, a client's own X-Forwarded-Proto/-For/-Host are overwritten or
    come before the front end's entry: the app believes only the one hop it trusts."""
    if app_server.proxy is None:
        pytest.skip("no front end: nginx is not installed")  # the suite's header says so
    forged = {
        "X-Forwarded-Proto": "http",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Host": "evil.example",
    }
    login = signed_in.get("/auth/login", headers=forged)
    assert "redirect_uri=https%3A%2F%2F127.0.0.1" in login.headers["Location"]
    assert "evil.example" not in login.headers["Location"]
    # A same-origin upload still passes the origin check: the app's own origin did not move.
    assert upload(signed_in, **forged).status_code == 201
    # The client address the app logs is the front end's entry, never the forged one.
    refused = upload(signed_in, **forged, Origin="https://forged.example")
    assert refused.status_code == 403
    log = app_server.log()
    line = next(line for line in log.splitlines() if "forged.example" in line)
    assert "from 127.0.0.1" in line and "203.0.113.7" not in log


def test_the_front_end_refuses_paths_the_app_never_sees(signed_in: AppClient, app_server: Site):
    """nginx, like App Service's front end, refuses a NUL or a path above the root itself."""
    if app_server.proxy is None:
        pytest.skip("no front end: nginx is not installed")
    for path in ("/photos/%00", "/photos/..%2f..%2fetc"):
        response = signed_in.get(path)
        assert response.status_code == 400 and "nginx" in response.headers.get("Server", "")
        # Straight to gunicorn, as the one hop would forward it: the app's own answer is 404.
        direct = requests.get(
            f"{app_server.direct_url}{path}",
            headers={
                "Cookie": signed_in.cookie_header(),
                "X-Forwarded-Proto": "https",
                "Accept": "application/json",
            },
            timeout=10,
            allow_redirects=False,
        )
        assert direct.status_code == 404 and direct.json()["error"] == "not_found"
