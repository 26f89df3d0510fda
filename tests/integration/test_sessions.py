"""Sessions live in PostgreSQL: sign-out revokes them for every instance, they end at their
absolute and idle limits, a GET or a forged POST signs nobody out, and the key rotates without
signing anyone out. Timestamps are shifted in the table rather than waited for."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable

import psycopg
from flask import Flask

from app.sessions import CHECK_TTL_SECONDS
from devstack.appserver import Site
from tests.integration.client import AppClient
from tests.services import Services


def after_the_cache() -> None:
    """Past every process's cached answer: what the table says now is what the app answers."""
    time.sleep(CHECK_TTL_SECONDS + 0.5)


def copy_of(client: AppClient, make: Callable[..., AppClient], server: Site | None = None) -> AppClient:
    """Another client holding the same cookies, as a stolen or copied cookie would be."""
    copy = make(server)
    copy.http.cookies.update(client.http.cookies)
    return copy


def session_cookie(client: AppClient, secret_key: str) -> dict:
    """The session cookie's content, read as the app reads it."""
    cookie = next(c for c in client.http.cookies if c.name == "__Host-session")
    app = Flask(__name__)
    app.secret_key = secret_key
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    assert serializer is not None and cookie.value is not None
    return serializer.loads(cookie.value)


def still_live(services: Services, client: AppClient) -> bool:
    """Whether the table, which every instance answers from once its cache lapses, still holds
    the client's session as not revoked."""
    assert client.user is not None
    with psycopg.connect(services.database_url) as conn:
        row = conn.execute("SELECT revoked_at FROM sessions WHERE oid = %s", (client.user["oid"],)).fetchone()
    return row is not None and row[0] is None


def shift(services: Services, oid: str, assignments: str) -> None:
    """Move a user's session timestamps, e.g. `last_seen_at = now() - interval '3 hours'`."""
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        updated = conn.execute(f"UPDATE sessions SET {assignments} WHERE oid = %s", (oid,)).rowcount
    assert updated == 1


def test_a_cookie_copied_before_sign_out_is_refused_after_it_on_every_instance(
    signed_in: AppClient, client_factory, start_app
):
    other_instance = start_app()
    same_instance = copy_of(signed_in, client_factory)
    elsewhere = copy_of(signed_in, client_factory, other_instance)
    assert same_instance.get("/api/me").status_code == 200
    assert elsewhere.get("/api/me").status_code == 200  # now cached by that instance

    assert signed_in.sign_out().status_code == 303
    assert signed_in.get("/api/me").status_code == 401
    after_the_cache()
    assert same_instance.get("/api/me").status_code == 401
    assert elsewhere.get("/api/me").status_code == 401
    page = elsewhere.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200 and 'id="sign-in"' in page.text  # a page: signed out, not an error


def test_a_cross_site_get_of_logout_signs_nobody_out(signed_in: AppClient, services: Services):
    """What a link or an <img> on another site makes the browser send."""
    page = signed_in.get("/auth/logout", headers={"Accept": "text/html", "Referer": "https://evil.example/"})
    assert page.status_code == 200
    assert re.search(
        r'<form method="post" action="/auth/logout">\s*<input type="hidden" name="csrf_token"', page.text
    )
    assert still_live(services, signed_in)
    assert signed_in.get("/api/me").status_code == 200


def test_a_sign_out_post_without_its_token_or_from_another_site_is_refused(
    signed_in: AppClient, services: Services
):
    token = signed_in.csrf_token()  # a page seen: the session holds the token to compare with
    missing = signed_in.request("POST", "/auth/logout", headers={"Accept": "application/json"})
    assert (missing.status_code, missing.json()["error"]) == (400, "csrf_token_missing")
    forged = signed_in.request(
        "POST", "/auth/logout", data={"csrf_token": "forged"}, headers={"Accept": "application/json"}
    )
    assert (forged.status_code, forged.json()["error"]) == (400, "csrf_token_invalid")
    cross_site = signed_in.request(
        "POST",
        "/auth/logout",
        data={"csrf_token": token},
        headers={"Accept": "application/json", "Origin": "https://evil.example"},
    )
    assert (cross_site.status_code, cross_site.json()["error"]) == (403, "cross_origin")
    assert still_live(services, signed_in)
    assert signed_in.get("/api/me").status_code == 200


def test_signing_out_when_already_signed_out_is_not_refused(client: AppClient):
    """The logout page's own form, from a browser whose session has already ended."""
    page = client.get("/auth/logout", headers={"Accept": "text/html"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    response = client.request("POST", "/auth/logout", data={"csrf_token": token.group(1)})
    assert response.status_code == 303
    assert "post_logout_redirect_uri" in response.headers["Location"]


def test_the_table_holds_the_session_ids_hash_not_the_id(signed_in: AppClient, services: Services, app_env):
    content = session_cookie(signed_in, app_env["SECRET_KEY"])
    session_id = content["sid"]
    assert len(session_id) >= 22  # token_urlsafe(32): 256 random bits
    assert signed_in.user is not None and content["user"]["oid"] == signed_in.user["oid"]
    with psycopg.connect(services.database_url) as conn:
        rows = conn.execute(
            "SELECT id_hash, oid, expires_at - created_at AS lifetime, revoked_at FROM sessions"
            " WHERE oid = %s",
            (signed_in.user["oid"],),
        ).fetchall()
        as_text = conn.execute(
            "SELECT count(*) FROM sessions WHERE encode(id_hash, 'escape') LIKE %s OR oid = %s",
            (f"%{session_id}%", session_id),
        ).fetchone()
    assert len(rows) == 1
    id_hash, _oid, lifetime, revoked_at = rows[0]
    assert bytes(id_hash) == hashlib.sha256(session_id.encode()).digest()
    assert lifetime.total_seconds() == 8 * 3600 and revoked_at is None
    assert as_text == (0,)


def test_a_session_ends_8_hours_after_sign_in_however_active(signed_in: AppClient, services: Services):
    """Shifted before any instance has checked (and cached) the new session."""
    assert signed_in.user is not None
    shift(
        services,
        signed_in.user["oid"],
        "created_at = now() - interval '8 hours 1 minute', expires_at = now() - interval '1 minute',"
        " last_seen_at = now()",
    )
    assert signed_in.get("/api/me").status_code == 401
    page = signed_in.get("/auth/edit-profile", headers={"Accept": "text/html"})
    assert page.status_code == 302 and page.headers["Location"] == "/auth/login?next=/"


def test_a_session_ends_after_2_hours_idle_and_activity_keeps_it(signed_in: AppClient, services: Services):
    assert signed_in.user is not None
    oid = signed_in.user["oid"]
    shift(services, oid, "last_seen_at = now() - interval '1 hour 59 minutes'")
    assert signed_in.get("/api/me").status_code == 200  # within the idle limit: and seen now
    with psycopg.connect(services.database_url) as conn:
        row = conn.execute("SELECT now() - last_seen_at FROM sessions WHERE oid = %s", (oid,)).fetchone()
    assert row is not None and row[0].total_seconds() < 60

    shift(services, oid, "last_seen_at = now() - interval '2 hours 1 minute'")
    after_the_cache()
    assert signed_in.get("/api/me").status_code == 401


def test_a_cookie_signed_with_the_previous_key_works_after_rotation(
    signed_in: AppClient, client_factory, start_app, app_env
):
    new_key = secrets.token_hex(32)
    rotated = start_app(
        SECRET_KEY=new_key, SECRET_KEY_FALLBACKS=f"{secrets.token_hex(32)}, {app_env['SECRET_KEY']}"
    )
    without_fallback = start_app(SECRET_KEY=new_key)
    assert signed_in.user is not None
    assert copy_of(signed_in, client_factory, rotated).get("/api/me").json()["id"] == signed_in.user["oid"]
    assert copy_of(signed_in, client_factory, without_fallback).get("/api/me").status_code == 401


def test_a_sign_in_removes_ended_sessions(client: AppClient, make_user, services: Services):
    ended = [secrets.token_bytes(32) for _ in range(3)]
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sessions (id_hash, oid, created_at, last_seen_at, expires_at, revoked_at) VALUES"
            " (%s, 'expired', now() - interval '9 hours', now(), now() - interval '1 hour', NULL),"
            " (%s, 'idle', now() - interval '3 hours', now() - interval '3 hours',"
            "  now() + interval '5 hours', NULL),"
            " (%s, 'revoked', now(), now(), now(), now())",
            ended,
        )
    client.sign_in(make_user())
    with psycopg.connect(services.database_url) as conn:
        left = conn.execute("SELECT count(*) FROM sessions WHERE id_hash = ANY(%s)", (ended,)).fetchone()
    assert left == (0,)
