"""Uploads are taken in while they arrive: a refused file is answered before its body ends,
blocks reach storage while the rest is still coming, and the CSRF token may come before or
after the files, but nothing is staged without it. Through the TLS front end, as deployed."""

from __future__ import annotations

import contextlib
import hashlib
import io
import select
import socket
import ssl
import time
import uuid

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient
from PIL import Image

from app.storage import BLOCK_SIZE
from tests.integration.client import AppClient, _complete, noise_jpeg

BOUNDARY = "streamed"


def part_head(filename: str, content_type: str = "image/jpeg") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()


def token_part(token: str) -> bytes:
    return f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'.encode()


TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()


def request_head(client: AppClient, content_length: int, *, token_header: bool = True) -> bytes:
    netloc = client.base_url.split("://", 1)[1]
    token = f"X-CSRFToken: {client.csrf_token()}\r\n" if token_header else ""
    return (
        f"POST /photos HTTP/1.1\r\nHost: {netloc}\r\nAccept: application/json\r\n"
        f"Origin: {client.base_url}\r\nCookie: {client.cookie_header()}\r\n{token}"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {content_length}\r\n\r\n"
    ).encode()


def reply_status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def reply_json_text(reply: bytes) -> str:
    return reply.partition(b"\r\n\r\n")[2].decode(errors="replace")


def send_until_answered(
    sock: socket.socket, body: bytes, *, piece: int = 64 * 1024, seconds: float = 20
) -> tuple[bytes, int]:
    """Send `body` a piece at a time, as a browser on a modest link does, until the server's
    whole answer is in: (the answer, how many body bytes had been sent by then)."""
    sent, reply = 0, b""
    sock.setblocking(False)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        select.select([sock], [], [], 0.02)
        try:
            data = sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            data = None
        if data == b"":
            break
        reply += data or b""
        if _complete(reply):
            break
        if not reply and sent < len(body):
            with contextlib.suppress(ssl.SSLWantWriteError, BlockingIOError):
                sent += sock.send(body[sent : sent + piece])
    return reply, sent


def uncommitted(container: ContainerClient, oid: str) -> list[str]:
    """Blobs of the user's that have staged blocks and no content yet."""
    try:
        return [
            blob.name
            for blob in container.list_blobs(name_starts_with=f"{oid}/", include=["uncommittedblobs"])
            if not blob.size
        ]
    except ResourceNotFoundError:  # the container is made on first use
        return []


@pytest.fixture
def container(services) -> ContainerClient:
    return services.images()


def oversized_header_jpeg() -> bytes:
    """A small JPEG whose frame header claims 60000×60000 pixels."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16)).save(out, "JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") * 2
    return bytes(data)


@pytest.mark.parametrize(
    ("filename", "first_bytes", "status", "code", "words"),
    [
        ("notes.jpg", b"these are my notes\n" * 1000, 415, "unsupported_type", "notes.jpg is not an image"),
        ("huge.jpg", oversized_header_jpeg(), 400, "too_many_pixels", "huge.jpg: The image"),
    ],
)
def test_a_refused_file_is_answered_before_its_body_ends(
    signed_in: AppClient, filename, first_bytes, status, code, words
):
    body = part_head(filename) + first_bytes + b"\0" * (6 * 1024 * 1024) + TAIL
    with signed_in.raw_socket(timeout=30) as sock:
        sock.sendall(request_head(signed_in, len(body)))
        reply, sent = send_until_answered(sock, body)
    assert reply_status(reply) == status, reply[:500]
    assert f'"error":"{code}"' in reply_json_text(reply).replace(" ", "")
    assert words in reply_json_text(reply)
    assert sent < len(body) // 2  # answered long before the client would have finished
    assert signed_in.photos()["photos"] == []


def test_blocks_reach_storage_while_the_body_still_arrives(signed_in: AppClient, container: ContainerClient):
    data = noise_jpeg()
    assert len(data) > 2 * BLOCK_SIZE // 2
    assert signed_in.user is not None
    oid = signed_in.user["oid"]
    body = part_head("big.jpg") + data + TAIL
    held_back = 64 * 1024
    with signed_in.raw_socket(timeout=30) as sock:
        sock.sendall(request_head(signed_in, len(body)))
        sock.sendall(body[:-held_back])
        deadline = time.monotonic() + 15
        while not uncommitted(container, oid) and time.monotonic() < deadline:
            time.sleep(0.05)
        staged_early = uncommitted(container, oid)
        reply, _ = send_until_answered(sock, body[-held_back:])
    assert staged_early, "no block was staged before the body's last bytes were sent"
    assert reply_status(reply) == 201, reply[:500]
    photo = signed_in.photos()["photos"][0]
    stored = requests.get(photo["url"], timeout=30).content
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
    assert staged_early == [f"{oid}/{photo['id']}.jpg"]  # the same blob, now committed


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def file_part(filename: str, data: bytes) -> bytes:
    return part_head(filename) + data + b"\r\n"


def post_body(client: AppClient, body: bytes, *, token_header: bool) -> requests.Response:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Accept": "application/json"}
    if token_header:
        headers["X-CSRFToken"] = client.csrf_token()
    return client.request("POST", "/photos", data=body, headers=headers)


def small_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 100, 50)).save(out, "JPEG")
    return out.getvalue()


def test_the_token_may_come_as_a_field_before_or_after_the_files(signed_in: AppClient):
    token = signed_in.csrf_token()
    before = multipart(token_part(token), file_part("before.jpg", small_jpeg()))
    after = multipart(
        file_part("after.jpg", small_jpeg()), file_part("also.jpg", small_jpeg()), token_part(token)
    )
    for body, names in ((before, ["before.jpg"]), (after, ["after.jpg", "also.jpg"])):
        response = post_body(signed_in, body, token_header=False)
        assert response.status_code == 201, response.text
        assert [p["filename"] for p in response.json()["photos"]] == names


def test_without_a_token_nothing_is_checked_or_staged(signed_in: AppClient, container: ContainerClient):
    assert signed_in.user is not None
    signed_in.csrf_token()  # the session holds a token, as after any page
    body = multipart(file_part("big.jpg", noise_jpeg()))
    response = post_body(signed_in, body, token_header=False)
    assert response.status_code == 400
    assert response.json()["error"] == "csrf_token_missing"
    assert uncommitted(container, signed_in.user["oid"]) == []
    forged = multipart(token_part("forged"), file_part("big.jpg", noise_jpeg()))
    response = post_body(signed_in, forged, token_header=False)
    assert response.json()["error"] == "csrf_token_invalid"
    assert uncommitted(container, signed_in.user["oid"]) == []
    assert signed_in.photos()["photos"] == []


def test_a_file_with_its_location_is_stored_cleaned_under_a_new_name(signed_in: AppClient):
    """A PNG is sent to storage while it is checked (its location could only be known at its
    end); one that names a location is stored as the cleaned copy instead."""
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 0.0), 3: "E", 4: (4.0, 53.0, 0.0)}
    out = io.BytesIO()
    Image.effect_noise((1500, 1500), 60).convert("RGB").save(out, "PNG", exif=exif.tobytes())
    response = signed_in.upload((f"{uuid.uuid4().hex}.png", out.getvalue(), "image/png"))
    assert response.status_code == 201, response.text
    stored = requests.get(response.json()["photos"][0]["url"], timeout=30).content
    assert 0x8825 not in Image.open(io.BytesIO(stored)).getexif()
    assert Image.open(io.BytesIO(stored)).size == (1500, 1500)


def test_uploads_stalled_by_their_clients_hold_no_decode_slot_and_leave_nothing(
    start_app, client_factory, make_user
):
    """On one worker, with its 2 decode slots, three clients stall half-way through a large
    JPEG, then go away. Meanwhile, and after, whole uploads are decoded at once, and nothing of
    the stalled ones is stored."""
    signed_in = client_factory(start_app(workers=1))
    signed_in.sign_in(make_user())
    data = noise_jpeg()
    body = part_head("stalled.jpg") + data + TAIL
    stalled = []
    for _ in range(3):
        sock = signed_in.raw_socket(timeout=30)
        sock.sendall(request_head(signed_in, len(body)))
        sock.sendall(body[: len(body) // 2])
        stalled.append(sock)
    try:
        time.sleep(1)  # their decodes are under way and waiting for bytes
        started = time.monotonic()
        response = signed_in.upload(("whole.jpg", data, "image/jpeg"))
        assert response.status_code == 201, response.text
        assert time.monotonic() - started < 10  # a held slot would make it wait 30 s, then 503
    finally:
        for sock in stalled:
            sock.close()
    time.sleep(1)
    response = signed_in.upload(("after.jpg", data, "image/jpeg"))
    assert response.status_code == 201, response.text
    assert sorted(p["filename"] for p in signed_in.photos()["photos"]) == ["after.jpg", "whole.jpg"]
