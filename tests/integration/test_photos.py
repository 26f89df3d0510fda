"""Upload, list, download and delete over real HTTP against real Azurite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import uuid

import psycopg
import requests
from PIL import Image

from tests.integration.client import AppClient, make_image


def test_upload_list_download_delete(signed_in: AppClient, services):
    jpeg = make_image("JPEG", (640, 480))
    png = make_image("PNG", (300, 200), color=(10, 200, 90))
    response = signed_in.upload(("holiday.jpg", jpeg, "image/jpeg"), ("chart.png", png, "image/png"))
    assert response.status_code == 201, response.text
    created = response.json()["photos"]
    assert [p["filename"] for p in created] == ["holiday.jpg", "chart.png"]
    assert [(p["width"], p["height"], p["size"]) for p in created] == [
        (640, 480, len(jpeg)),
        (300, 200, len(png)),
    ]

    listed = signed_in.photos()["photos"]
    assert {p["id"] for p in listed} == {p["id"] for p in created}
    assert listed == sorted(listed, key=lambda p: (p["created_at"], p["id"]), reverse=True)

    for photo, original in zip(created, (jpeg, png), strict=True):
        # The link goes straight to Blob Storage (Azurite), not through the app.
        blob = requests.get(photo["url"], timeout=10)
        assert blob.status_code == 200
        assert hashlib.sha256(blob.content).digest() == hashlib.sha256(original).digest()
        assert blob.headers["Content-Type"] == photo["content_type"]
        thumb = requests.get(photo["thumbnail_url"], timeout=10)
        assert Image.open(io.BytesIO(thumb.content)).format == "JPEG"
        # GET /photos/<id> redirects to a fresh short-lived link to the same bytes.
        redirect = signed_in.get(f"/photos/{photo['id']}")
        assert redirect.status_code == 302
        assert requests.get(redirect.headers["Location"], timeout=10).content == original

    # Each row carries the owner's object id and email; the blob name is server-chosen.
    with psycopg.connect(services.database_url) as conn:
        rows = conn.execute(
            "SELECT owner_oid, owner_email, blob_name FROM photos WHERE id = ANY(%s)",
            ([p["id"] for p in created],),
        ).fetchall()
    assert signed_in.user is not None  # the signed_in fixture signed in
    assert {(r[0], r[1]) for r in rows} == {(signed_in.user["oid"], signed_in.user["email"])}
    assert all(r[2].startswith(f"{signed_in.user['oid']}/") and "holiday" not in r[2] for r in rows)

    gone = created[0]
    assert signed_in.delete(gone["id"]).status_code == 204
    assert [p["id"] for p in signed_in.photos()["photos"]] == [created[1]["id"]]
    assert requests.get(gone["url"], timeout=10).status_code == 404
    assert signed_in.get(f"/photos/{gone['id']}").status_code == 404
    assert signed_in.delete(gone["id"]).status_code == 404


def test_html_form_upload_redirects_to_the_gallery(signed_in: AppClient):
    response = signed_in.upload(("cat.gif", make_image("GIF"), "image/gif"), as_json=False)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/")
    page = signed_in.get("/", headers={"Accept": "text/html"}).text
    assert "cat.gif" in page
    assert 'id="userEmail"' in page


def test_bad_upload_is_refused_and_nothing_is_stored(signed_in: AppClient):
    response = signed_in.upload(
        ("fine.png", make_image("PNG"), "image/png"),
        ("evil.jpg", b"<svg onload=alert(1)>", "image/jpeg"),
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_type"
    assert signed_in.photos()["photos"] == []


def test_pagination_is_newest_first_with_a_cursor(signed_in: AppClient):
    ids = []
    for i in range(5):
        response = signed_in.upload((f"p{i}.png", make_image("PNG", (20 + i, 20)), "image/png"))
        ids.append(response.json()["photos"][0]["id"])
    first = signed_in.photos(limit=2)
    second = signed_in.photos(limit=2, cursor=first["next_cursor"])
    third = signed_in.photos(limit=2, cursor=second["next_cursor"])
    seen = [p["id"] for page in (first, second, third) for p in page["photos"]]
    assert seen == list(reversed(ids))
    assert third["next_cursor"] is None
    assert signed_in.get("/api/photos", params={"cursor": "not-a-cursor"}).status_code == 400
    assert signed_in.get("/api/photos", params={"limit": "100000"}).status_code == 400


def test_photos_of_others_are_invisible(signed_in: AppClient, client_factory, make_user):
    photo = signed_in.upload(("mine.png", make_image("PNG"), "image/png")).json()["photos"][0]
    other = client_factory()
    other.sign_in(make_user())
    assert other.photos()["photos"] == []
    assert other.get(f"/photos/{photo['id']}").status_code == 404
    assert other.delete(photo["id"]).status_code == 404
    assert other.get("/photos/not-a-uuid").status_code == 404
    assert len(signed_in.photos()["photos"]) == 1


def test_signed_out_callers_get_401_json_or_the_sign_in_page(client: AppClient):
    for path in ("/api/photos", "/api/me", "/api/me/email", "/photos/x", "/get-user-email/x"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"] == "unauthenticated"
    for method, path in (("POST", "/photos"), ("DELETE", f"/photos/{uuid.uuid4()}")):
        response = client.request(method, path, headers={"Accept": "application/json"})
        assert response.status_code == 401, (method, path)
        assert response.json()["error"] == "unauthenticated"
    landing = client.get("/", headers={"Accept": "text/html"})
    assert landing.status_code == 200 and "/auth/login" in landing.text
    edit = client.get("/auth/edit-profile")
    assert edit.status_code == 302 and "/auth/login" in edit.headers["Location"]


def test_state_changing_requests_need_the_csrf_token(signed_in: AppClient):
    response = signed_in.request(
        "POST",
        "/photos",
        files=[("file", ("a.png", make_image("PNG"), "image/png"))],
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "csrf_token_missing"
    assert signed_in.photos()["photos"] == []


def test_probes(client: AppClient):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "storage": "ok"}


def test_pages_carry_security_headers(signed_in: AppClient):
    response = signed_in.get("/", headers={"Accept": "text/html"})
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    cookie = next(c for c in signed_in.http.cookies if c.name == "__Host-session")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.secure and cookie.path == "/"
    assert not cookie.domain_specified  # __Host-: no Domain attribute
