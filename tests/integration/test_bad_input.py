"""Bad input gets a clear 4xx JSON error, nothing is stored, and the app keeps serving."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
import requests
from PIL import Image

from tests.integration.client import AppClient, make_image

PNG = make_image("PNG", (40, 30))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims huge dimensions: a decompression bomb's calling card."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def assert_refused(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert body["message"] and "Traceback" not in response.text


@pytest.fixture
def uploader(signed_in: AppClient):
    yield signed_in
    # Nothing was stored, and the app still serves.
    assert signed_in.photos()["photos"] == []
    assert signed_in.upload(("ok.png", PNG, "image/png")).status_code == 201


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("notes.jpg", b"just some text, not a picture", 415, "unsupported_type"),
        ("empty.png", b"", 400, "empty_file"),
        (
            "plain.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="9" height="9"/></svg>',
            415,
            "unsupported_type",
        ),
        (
            "script.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>',
            415,
            "unsupported_type",
        ),
        (
            "page.gif",
            b"<!doctype html><script>alert(1)</script>" + make_image("GIF"),
            415,
            "unsupported_type",
        ),
        ("bomb.png", png_header_only(100_000, 100_000), 400, "too_many_pixels"),
        ("../escape.png", PNG, 400, "invalid_filename"),
        ("nul\x00.png", PNG, 400, "invalid_filename"),
        ("bell\x07.png", PNG, 400, "invalid_filename"),
        ("x" * 1000 + ".png", PNG, 400, "invalid_filename"),
        ("....", PNG, 400, "invalid_filename"),
    ],
)
def test_bad_files_are_refused(uploader: AppClient, name, data, status, code):
    assert_refused(uploader.upload((name, data, "image/png")), status, code)


def test_truncated_jpeg(uploader: AppClient):
    jpeg = make_image("JPEG", (800, 600), quality=95)
    assert_refused(uploader.upload(("cut.jpg", jpeg[: len(jpeg) // 2], "image/jpeg")), 400, "invalid_image")


def test_gif_with_html_appended_is_served_only_as_a_gif(signed_in: AppClient):
    """A valid GIF that also contains markup is stored, but only ever served as image/gif."""
    polyglot = make_image("GIF") + b"<html><script>alert(1)</script></html>"
    photo = signed_in.upload(("poly.gif", polyglot, "text/html")).json()["photos"][0]
    assert photo["content_type"] == "image/gif"
    blob = requests.get(photo["url"], timeout=10)
    assert blob.headers["Content-Type"] == "image/gif"


def test_the_declared_part_type_is_ignored(signed_in: AppClient):
    photo = signed_in.upload(("pic.png", PNG, "text/html")).json()["photos"][0]
    assert photo["content_type"] == "image/png"


def test_no_file_field(uploader: AppClient):
    response = uploader.request(
        "POST",
        "/photos",
        files={"other": ("a.png", PNG, "image/png")},
        headers={"X-CSRFToken": uploader.csrf_token(), "Accept": "application/json"},
    )
    assert_refused(response, 400, "bad_request")


def test_not_multipart(uploader: AppClient):
    response = uploader.request(
        "POST",
        "/photos",
        json={"file": "aGVsbG8="},
        headers={"X-CSRFToken": uploader.csrf_token(), "Accept": "application/json"},
    )
    assert_refused(response, 415, "unsupported_media_type")


PART = b'Content-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'


MALFORMED = "The multipart/form-data body is malformed or ends early."


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        pytest.param(
            "multipart/form-data; boundary=xyz",
            b"--xyz\r\n" + PART + PNG,
            MALFORMED,
            id="no-closing-boundary",
        ),
        pytest.param(
            "multipart/form-data; boundary=xyz", b"--xyz\r\n" + PART[:40], MALFORMED, id="headers-cut-short"
        ),
        pytest.param(
            "multipart/form-data; boundary=xyz",
            b"--abc\r\n" + PART + PNG + b"\r\n--abc--\r\n",
            MALFORMED,
            id="other-boundary",
        ),
        pytest.param(
            "multipart/form-data",
            b"--xyz\r\n" + PART + PNG + b"\r\n--xyz--\r\n",
            "The multipart/form-data body names no boundary.",
            id="no-boundary",
        ),
        pytest.param(
            "multipart/form-data; boundary=xyz",
            b"--xyz\r\nContent-Type: image/png\r\n\r\n" + PNG + b"\r\n--xyz--\r\n",
            MALFORMED,
            id="no-content-disposition",
        ),
        pytest.param(
            "multipart/form-data; boundary=xyz",
            b"",
            "Attach one or more images in the form field 'file'.",
            id="empty-body",
        ),
    ],
)
def test_malformed_multipart(uploader: AppClient, content_type, body, message):
    """A body the multipart parser cannot read is refused as such (400), and nothing is stored;
    an empty one asks for a file."""
    response = uploader.request(
        "POST",
        "/photos",
        data=body,
        headers={
            "Content-Type": content_type,
            "X-CSRFToken": uploader.csrf_token(),
            "Accept": "application/json",
        },
    )
    assert_refused(response, 400, "bad_request")
    assert response.json()["message"] == message
    assert uploader.photos()["photos"] == []


def test_too_many_files(uploader: AppClient):
    files = [(f"p{i}.png", PNG, "image/png") for i in range(21)]
    response = uploader.upload(*files)
    assert_refused(response, 400, "bad_request")
    assert "At most 20 files" in response.json()["message"]


def test_oversized_upload_is_refused_before_the_body_is_read(signed_in: AppClient):
    """413 comes back after the headers alone, over TLS through the front end: the 25 MB body
    is never sent."""
    started = time.monotonic()
    with signed_in.raw_socket() as sock:
        sock.sendall(signed_in.upload_head(25 * 1024 * 1024))
        sock.sendall(b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n\r\n')
        reply = ""
        while "}" not in reply:  # headers and the JSON body may come in separate packets
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk.decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413"), reply[:2000]
    assert '"error":"too_large"' in reply.replace(" ", "")
    assert time.monotonic() - started < 5
    assert signed_in.photos()["photos"] == []


@pytest.mark.parametrize(
    # NUL and paths above the root never pass the front end: tests/integration/test_front_end.py
    "photo_id",
    ["not-a-uuid", "1' OR '1'='1", "1;DROP TABLE photos", "%2e%2e", "..%5c..%5cetc"],
)
def test_odd_photo_ids_are_404(signed_in: AppClient, photo_id):
    for method in ("GET", "DELETE"):
        response = signed_in.request(
            method, f"/photos/{photo_id}", headers={"X-CSRFToken": signed_in.csrf_token()}
        )
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "99999999999999999999"},
        {"limit": "1 OR 1=1"},
        {"cursor": "' OR 1=1 --"},
        {"cursor": "AAAA"},
        {"cursor": "bm90fGF8dXVpZA"},
    ],
)
def test_bad_listing_params_are_400(signed_in: AppClient, params):
    assert_refused(signed_in.get("/api/photos", params=params), 400, "bad_request")


def test_a_forged_but_wellformed_cursor_shows_only_your_photos(
    signed_in: AppClient, client_factory, make_user
):
    other = client_factory()
    other.sign_in(make_user())
    other.upload(("theirs.png", PNG, "image/png"))
    import base64

    far_future = base64.urlsafe_b64encode(b"2999-01-01T00:00:00+00:00|00000000-0000-0000-0000-000000000000")
    page = signed_in.photos(cursor=far_future.decode().rstrip("="))
    assert page["photos"] == []


def test_delete_needs_the_csrf_header(signed_in: AppClient):
    photo = signed_in.upload(("a.png", PNG, "image/png")).json()["photos"][0]
    response = signed_in.request("DELETE", f"/photos/{photo['id']}")
    assert_refused(response, 400, "csrf_token_missing")
    response = signed_in.request("DELETE", f"/photos/{photo['id']}", headers={"X-CSRFToken": "forged"})
    assert_refused(response, 400, "csrf_token_invalid")
    assert len(signed_in.photos()["photos"]) == 1


def test_stored_images_have_no_location(signed_in: AppClient):
    img = Image.new("RGB", (64, 64), (1, 2, 3))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 0.0), 3: "E", 4: (4.0, 53.0, 0.0)}
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif.tobytes())
    photo = signed_in.upload(("gps.jpg", out.getvalue(), "image/jpeg")).json()["photos"][0]
    stored = requests.get(photo["url"], timeout=10).content
    assert 0x8825 not in Image.open(io.BytesIO(stored)).getexif()
    assert photo["size"] == len(stored)
