"""The HTTP contract that needs no service: paging parameters, JSON or HTML errors, 401 before
any CSRF check, where a signed-out browser is sent.

The app is built by `create_app` in its production configuration, as behind App Service's TLS
front end (`X-Forwarded-Proto: https`), with real clients whose services are a loopback port
nothing listens on: a request that reaches PostgreSQL gets `database_unavailable`, so every
answer below was given before any service was asked. Sign-in state is the session `load_user`
reads (app/auth.py), whose session id a stand-in store accepts for Ada (the store's own queries
are tests/integration/test_sessions.py's); the sign-in flow itself is the integration suite's."""

from __future__ import annotations

import base64
import contextlib
import functools
import io
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.test import TestResponse

from app import create_app
from app.auth import IdentityClient, login_required
from app.db import Database, Photo
from app.graph import GraphClient
from app.sessions import SessionStore
from app.settings import Settings
from app.storage import BlobStore
from tests.unit.test_app_factory import offline_environment

SITE = "https://localhost"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
JSON = "application/json"
USER = {"oid": "0c9b1a2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d", "name": "Ada", "email": "ada@example.com"}
LIMIT_REFUSED = "limit must be a whole number from 1 to 100."
CURSOR_REFUSED = "The cursor is not one this API returned."


class AdasSessions(SessionStore):
    """Any session id is a live session of Ada's, without asking the database."""

    def user_oid(self, session_id: str) -> str | None:
        return USER["oid"]


@pytest.fixture(scope="module")
def app() -> Flask:
    return offline_app()


def offline_app(database: Callable[..., Database] | None = None, **environment: str) -> Flask:
    """The app with nothing behind it but Ada's sessions (and the `database(url=…)` given, e.g.
    rows held in memory): enough for routes, checks and pages."""
    settings = Settings.from_env(offline_environment(None, **environment))
    if database is None:
        database = functools.partial(Database, connect_timeout=1)
    db = database(url=settings.database_url)
    app = create_app(
        settings,
        db=db,
        sessions=AdasSessions(db),
        blobs=BlobStore.from_settings(settings),
        graph=GraphClient.from_settings(settings.identity),
        identity=IdentityClient.from_settings(settings.identity),
    )
    # A browser page that needs sign-in: the app's own sign-in-only routes are all API routes.
    app.add_url_rule("/album", "album", login_required(lambda: "the album"))
    return app


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with https_client(app) as client:
        yield client


@contextlib.contextmanager
def https_client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        client.environ_base["HTTP_X_FORWARDED_PROTO"] = "https"  # what the front end sends
        yield client


def sign_in(client: FlaskClient) -> None:
    with client.session_transaction() as session:
        session["sid"] = "a-session-id"
        session["user"] = dict(USER)


def csrf_token(client: FlaskClient) -> str:
    """The token a page hands the browser (base.html's meta tag), bound to this signed-in browser."""
    page = client.get("/", headers={"Accept": BROWSER})
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.get_data(as_text=True))
    assert found, page.get_data(as_text=True)
    return found.group(1)


def body_of(response: TestResponse) -> dict[str, Any]:
    assert response.is_json, (response.status_code, response.content_type)
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def error_of(response: TestResponse) -> tuple[int, str]:
    return response.status_code, body_of(response)["error"]


def cursor_of(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --- paging ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", LIMIT_REFUSED),
        ("limit=101", LIMIT_REFUSED),
        ("limit=-1", LIMIT_REFUSED),
        ("limit=ten", LIMIT_REFUSED),
        ("limit=1.5", LIMIT_REFUSED),
        ("limit=", LIMIT_REFUSED),
        ("limit=%C2%B2", LIMIT_REFUSED),  # "²": a digit to str.isdigit(), not to int()
        ("cursor=not-a-cursor", CURSOR_REFUSED),
        ("cursor=" + cursor_of(b"\xff\xfe|x"), CURSOR_REFUSED),  # not UTF-8
        ("cursor=" + cursor_of(f"2024-05-01T10:00:00|{uuid.uuid4()}".encode()), CURSOR_REFUSED),  # naive
        ("cursor=" + cursor_of(b"2024-05-01T10:00:00+00:00|not-a-uuid"), CURSOR_REFUSED),
        ("cursor=" + cursor_of(b"2024-05-01T10:00:00+00:00"), CURSOR_REFUSED),  # no id
        ("limit=10&cursor=%%%", CURSOR_REFUSED),
    ],
)
def test_bad_paging_is_refused_before_the_database_is_asked(client: FlaskClient, query: str, message: str):
    sign_in(client)
    response = client.get(f"/api/photos?{query}")
    assert error_of(response) == (400, "bad_request")
    assert body_of(response)["message"] == message


@pytest.mark.parametrize(
    "query",
    [
        "",
        "limit=1",
        "limit=100",
        f"limit=24&cursor={cursor_of(f'2024-05-01T10:00:00+00:00|{uuid.uuid4()}'.encode())}",
    ],
)
def test_good_paging_goes_on_to_the_database(client: FlaskClient, query: str):
    """The control: the same route, parsed fine, reaches PostgreSQL (refused: nothing listens)."""
    sign_in(client)
    assert error_of(client.get(f"/api/photos?{query}")) == (503, "database_unavailable")


def test_a_photo_id_that_is_no_uuid_is_not_found_before_the_database_is_asked(client: FlaskClient):
    sign_in(client)
    response = client.get("/photos/not-a-uuid")
    assert error_of(response) == (404, "not_found")
    assert body_of(response)["message"] == "No such photo."


# --- JSON or a page -------------------------------------------------------------------------


def test_a_browser_gets_an_error_page(client: FlaskClient):
    response = client.get("/no-such-page", headers={"Accept": BROWSER})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "<!doctype html>" in response.get_data(as_text=True).lower()


@pytest.mark.parametrize("accept", [JSON, None, "*/*", "application/json, text/html"])
def test_other_clients_get_json_errors(client: FlaskClient, accept: str | None):
    """JSON when the Accept header ranks it first, on a tie, or without one."""
    headers = {"Accept": accept} if accept else {}
    response = client.get("/no-such-page", headers=headers)
    assert error_of(response) == (404, "not_found")
    assert set(body_of(response)) == {"error", "message"}


@pytest.mark.parametrize("path", ["/api/no-such-route", "/readyz/x"])
def test_api_routes_answer_json_even_to_a_browser(client: FlaskClient, path: str):
    assert error_of(client.get(path, headers={"Accept": BROWSER})) == (404, "not_found")


def test_a_signed_out_api_call_is_a_json_401_even_from_a_browser(client: FlaskClient):
    response = client.get("/api/photos", headers={"Accept": BROWSER})
    assert error_of(response) == (401, "unauthenticated")
    assert body_of(response)["message"] == "Sign in first."


# --- signed out: 401 before any CSRF check --------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no token, no Origin: over HTTPS that alone would be a 400 origin_missing
        {"Origin": SITE},  # no token: would be a 400 csrf_token_missing
        {"Origin": "https://evil.example"},  # would be a 403 cross_origin
        {"Origin": SITE, "X-CSRFToken": "forged"},  # would be a 400 csrf_token_invalid
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/photos"), ("DELETE", f"/photos/{uuid.uuid4()}"), ("DELETE", "/photos/not-a-uuid")],
)
def test_a_signed_out_write_is_401_whatever_its_csrf_state(
    client: FlaskClient, method: str, path: str, headers: dict[str, str]
):
    response = client.open(path, method=method, headers={"Accept": JSON, **headers})
    assert error_of(response) == (401, "unauthenticated")


def test_a_signed_out_form_post_gets_a_401_page(client: FlaskClient):
    response = client.post(
        "/photos", data={}, content_type="multipart/form-data", headers={"Accept": BROWSER}
    )
    assert response.status_code == 401
    assert response.mimetype == "text/html"


# --- signed in: each CSRF refusal named, then the view's own checks --------------------------


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 400, "origin_missing"),
        ({"Origin": "https://evil.example"}, 403, "cross_origin"),
        ({"Referer": "https://evil.example/page"}, 403, "cross_origin"),
        ({"Origin": SITE}, 400, "csrf_token_missing"),
        ({"Origin": SITE, "X-CSRFToken": "forged"}, 400, "csrf_token_invalid"),
        ({"Referer": f"{SITE}/", "X-CSRFToken": "forged"}, 400, "csrf_token_invalid"),
    ],
)
def test_a_signed_in_write_without_origin_or_token_is_refused_by_name(
    client: FlaskClient, headers: dict[str, str], status: int, code: str
):
    csrf_token(client)  # the session holds a token, as after any page
    sign_in(client)
    assert error_of(client.post("/photos", headers={"Accept": JSON, **headers})) == (status, code)


def test_a_token_without_one_in_the_session_is_named_so(client: FlaskClient):
    sign_in(client)  # no page seen: the session holds no token to compare with
    response = client.post("/photos", headers={"Accept": JSON, "Origin": SITE, "X-CSRFToken": "any"})
    assert error_of(response) == (400, "csrf_session_missing")


def test_a_signed_in_write_with_its_token_reaches_the_view(client: FlaskClient):
    token = csrf_token(client)
    sign_in(client)
    headers = {"Accept": JSON, "Origin": SITE, "X-CSRFToken": token}

    not_multipart = client.post("/photos", data=b"{}", content_type=JSON, headers=headers)
    assert error_of(not_multipart) == (415, "unsupported_media_type")
    no_file = client.post("/photos", data={}, content_type="multipart/form-data", headers=headers)
    assert error_of(no_file) == (400, "bad_request")
    assert body_of(no_file)["message"] == "Attach one or more images in the form field 'file'."
    bad_id = client.delete("/photos/not-a-uuid", headers=headers)
    assert error_of(bad_id) == (404, "not_found")
    assert error_of(client.delete(f"/photos/{uuid.uuid4()}", headers=headers)) == (
        503,
        "database_unavailable",
    )


# --- signed out: where a browser is sent ----------------------------------------------------


def test_signed_out_home_is_the_landing_page(client: FlaskClient):
    response = client.get("/", headers={"Accept": BROWSER})
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert 'href="/auth/login' in response.get_data(as_text=True)


def test_a_page_needing_sign_in_sends_a_browser_to_sign_in_and_back(client: FlaskClient):
    response = client.get("/album?sort=new&page=2", headers={"Accept": BROWSER})
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login?next=/album?sort%3Dnew%26page%3D2"
    assert error_of(client.get("/album", headers={"Accept": JSON})) == (401, "unauthenticated")


def test_editing_the_profile_signed_out_signs_in_first(client: FlaskClient):
    response = client.get("/auth/edit-profile", headers={"Accept": BROWSER})
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login?next=/"


# --- the session's user ---------------------------------------------------------------------


def test_the_signed_in_user_is_the_sessions(client: FlaskClient):
    sign_in(client)
    assert client.get("/api/me").json == {"id": USER["oid"], "name": "Ada", "email": "ada@example.com"}
    assert client.get("/api/me/email").json == {"email": "ada@example.com", "source": "id_token"}


def test_someone_elses_email_is_forbidden(client: FlaskClient):
    sign_in(client)
    response = client.get(f"/get-user-email/{uuid.uuid4()}")
    assert error_of(response) == (403, "forbidden")
    assert body_of(response)["message"] == "You can only look up your own email."
    assert client.get(f"/get-user-email/{USER['oid'].upper()}").json == {"email": "ada@example.com"}


def test_a_session_without_an_oid_is_signed_out(client: FlaskClient):
    with client.session_transaction() as session:
        session["user"] = {"name": "Ada", "email": "ada@example.com"}
    assert error_of(client.get("/api/me")) == (401, "unauthenticated")


# --- the gallery page, the viewer and the form's refusals --------------------------------------


OTHERS_OID = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"


class Album(Database):
    """Photo rows held in memory: Ada's album is empty, one photo is someone else's."""

    def __init__(self, *, url: str, photos: list[Photo]) -> None:
        super().__init__(url=url, connect_timeout=1)
        self.photos = photos

    def list_photos(
        self, owner_oid: str, *, limit: int, before: tuple[datetime, uuid.UUID] | None = None
    ) -> list[Photo]:
        mine = [p for p in self.photos if p.owner_oid == owner_oid]
        mine.sort(key=lambda p: (p.created_at, p.id), reverse=True)
        return [p for p in mine if before is None or (p.created_at, p.id) < before][:limit]

    def get_photo(self, owner_oid: str, photo_id: uuid.UUID) -> Photo | None:
        return next((p for p in self.photos if p.id == photo_id and p.owner_oid == owner_oid), None)


OTHERS_PHOTO = Photo(
    id=uuid.uuid4(),
    owner_oid=OTHERS_OID,
    owner_email="grace@example.com",
    blob_name=f"{OTHERS_OID}/x.jpg",
    thumb_blob_name=None,
    filename="grace.jpg",
    content_type="image/jpeg",
    size=1234,
    width=64,
    height=48,
    created_at=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
)


@pytest.fixture(scope="module")
def album_app() -> Flask:
    """Settings of their own (7 MB, 3 files) and rows in memory, so the page renders."""
    return offline_app(
        functools.partial(Album, photos=[OTHERS_PHOTO]), MAX_UPLOAD_MB="7", MAX_FILES_PER_UPLOAD="3"
    )


@pytest.fixture
def album(album_app: Flask) -> Iterator[FlaskClient]:
    with album_app.test_client() as client:
        client.environ_base["HTTP_X_FORWARDED_PROTO"] = "https"
        yield client


def test_the_picker_shows_the_formats_and_limits_from_the_settings(album: FlaskClient):
    sign_in(album)
    page = album.get("/", headers={"Accept": BROWSER}).get_data(as_text=True)
    assert "JPEG, PNG, GIF or WebP; up to 7 MB per upload, at most 3 files at once." in page
    assert 'accept="image/jpeg,image/png,image/gif,image/webp"' in page
    assert re.search(r'<ul id="gallery"\s+hidden>', page)  # nothing to show: the empty state
    assert re.search(r'<p id="empty-gallery">', page)
    assert re.search(r'id="load-more" data-cursor=""\s+hidden', page)


def form_post(client: FlaskClient, *files: tuple[str, bytes], accept: str = BROWSER) -> TestResponse:
    token = csrf_token(client)
    data = {"csrf_token": token, "file": [(io.BytesIO(body), name) for name, body in files]}
    return client.post(
        "/photos",
        data=data,
        content_type="multipart/form-data",
        headers={"Accept": accept, "Origin": SITE},
    )


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 60, 40)).save(out, "PNG")
    return out.getvalue()


NOTES_REFUSED = "notes.jpg is not an image: only JPEG, PNG, GIF and WebP images are accepted."


def test_the_form_without_script_names_the_refused_file(album: FlaskClient):
    """One request for all the files: the good one is not stored, the page says which was not."""
    sign_in(album)
    response = form_post(album, ("fine.png", png()), ("notes.jpg", b"shopping: milk, eggs"))
    assert response.status_code == 415
    assert response.mimetype == "text/html"
    assert NOTES_REFUSED in response.get_data(as_text=True)


def test_the_api_names_the_refused_file_too(album: FlaskClient):
    sign_in(album)
    response = form_post(album, ("notes.jpg", b"shopping: milk, eggs"), accept=JSON)
    assert error_of(response) == (415, "unsupported_type")
    assert body_of(response)["message"] == NOTES_REFUSED
    empty = form_post(album, ("empty.png", b""), accept=JSON)
    assert body_of(empty)["message"] == "empty.png: The file is empty."


def test_too_many_files_for_the_form_is_refused_with_the_limit(album: FlaskClient):
    sign_in(album)
    response = form_post(album, *[(f"p{i}.png", png()) for i in range(4)])
    assert response.status_code == 400
    assert "At most 3 files per upload." in response.get_data(as_text=True)


def test_the_viewer_sends_a_signed_out_browser_to_sign_in_and_back(album: FlaskClient):
    path = f"/photos/{OTHERS_PHOTO.id}/view"
    response = album.get(path, headers={"Accept": BROWSER})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/auth/login?next={path}"
    assert error_of(album.get(path, headers={"Accept": JSON})) == (401, "unauthenticated")


@pytest.mark.parametrize(
    "photo_id", [str(OTHERS_PHOTO.id), str(uuid.uuid4()), "not-a-uuid"], ids=["others", "none", "bad"]
)
def test_the_viewer_of_a_photo_that_is_not_the_callers_is_the_404_page(album: FlaskClient, photo_id: str):
    sign_in(album)
    response = album.get(f"/photos/{photo_id}/view", headers={"Accept": BROWSER})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "No such photo" in page
    assert "grace.jpg" not in page


def adas_photo(i: int, **changes: Any) -> Photo:
    fields: dict[str, Any] = {
        "id": uuid.UUID(int=i + 1),
        "owner_oid": USER["oid"],
        "owner_email": None,
        "blob_name": f"{USER['oid']}/{i}.jpg",
        "thumb_blob_name": f"{USER['oid']}/{i}.thumb.jpg" if i % 2 else None,
        "filename": f'Été à Zürich {i} "quoted".jpg',
        "content_type": "image/jpeg",
        "size": 1000 + i,
        "width": 640,
        "height": 480,
        "created_at": datetime(2024, 5, 1, 10, 0, i, i * 1000 if i % 3 else 0, tzinfo=UTC),
    }
    return Photo(**{**fields, **changes})


@pytest.fixture
def adas_album() -> Iterator[tuple[Flask, Album]]:
    settings = Settings.from_env(offline_environment())
    db = Album(url=settings.database_url, photos=[adas_photo(i) for i in range(5)])
    app = create_app(settings, db=db, sessions=AdasSessions(db), blobs=BlobStore.from_settings(settings))
    yield app, db


def plain_page(app: Flask, photos: list[Photo], next_cursor: str | None) -> bytes:
    """The listing as jsonify makes it, photo by photo."""
    from flask import jsonify

    from app.views import photos_json

    with app.test_request_context():
        return jsonify({"photos": photos_json(photos), "next_cursor": next_cursor}).get_data()


@pytest.mark.parametrize("debug", [False, True])
def test_the_listing_is_jsonifys_answer_byte_for_byte(adas_album: tuple[Flask, Album], debug: bool):
    app, db = adas_album
    app.debug = debug
    with app.test_client() as client:
        client.environ_base["HTTP_X_FORWARDED_PROTO"] = "https"
        sign_in(client)
        newest = sorted(db.photos, key=lambda p: (p.created_at, p.id), reverse=True)
        first = client.get("/api/photos?limit=3")
        assert first.status_code == 200 and first.mimetype == "application/json"
        cursor = body_of(first)["next_cursor"]
        assert first.get_data() == plain_page(app, newest[:3], cursor)
        assert client.get("/api/photos?limit=3").get_data() == first.get_data()  # from kept texts
        rest = client.get(f"/api/photos?limit=3&cursor={cursor}")
        assert rest.get_data() == plain_page(app, newest[3:], None)


def test_a_changed_row_is_listed_as_it_is_now(adas_album: tuple[Flask, Album]):
    app, db = adas_album
    with app.test_client() as client:
        client.environ_base["HTTP_X_FORWARDED_PROTO"] = "https"
        sign_in(client)
        assert body_of(client.get("/api/photos?limit=5"))["photos"][0]["filename"].startswith("Été")
        db.photos = [adas_photo(4, filename="renamed.jpg")] + db.photos[:4]  # same id, same time
        listed = client.get("/api/photos?limit=5")
        assert body_of(listed)["photos"][0]["filename"] == "renamed.jpg"
        assert listed.get_data() == plain_page(app, [db.photos[0], *db.photos[4:0:-1]], None)
