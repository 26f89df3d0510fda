"""An HTTP client for the running app that signs in through the fake B2C page, like a browser."""

from __future__ import annotations

import contextlib
import io
import os
import re
import select
import socket
import ssl
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from PIL import Image

from devstack.fake_identity.client import FakeIdentityClient


def make_image(
    fmt: str = "JPEG", size: tuple[int, int] = (320, 240), color=(200, 60, 40), **options
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt, **options)
    return out.getvalue()


def noise_jpeg(side: int = 1216) -> bytes:
    """Random noise at quality 100 without subsampling: ~4 bytes a pixel, ~6 MB at 1216²,
    more than one of the app's 4 MiB upload blocks."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(
        out, "JPEG", quality=100, subsampling=0
    )
    return out.getvalue()


class AppClient:
    def __init__(self, base_url: str, fake: FakeIdentityClient) -> None:
        self.base_url = base_url
        self.fake = fake
        self.http = requests.Session()
        self.user: dict[str, Any] | None = None

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 30)
        return self.http.get(self.url(path), **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Like a browser, a state-changing request names its origin (and sends no Referer)."""
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 60)
        if method.upper() not in ("GET", "HEAD", "OPTIONS"):
            headers = dict(kwargs.get("headers") or {})
            headers.setdefault("Origin", self.base_url)
            kwargs["headers"] = {k: v for k, v in headers.items() if v is not None}
        return self.http.request(method, self.url(path), **kwargs)

    # --- sign-in through the fake B2C page ---------------------------------------------------

    def start_login(self, path: str = "/auth/login") -> str:
        """The app's redirect to the user flow; returns the authorize URL."""
        response = self.get(path)
        assert response.status_code == 302, response.text
        return response.headers["Location"]

    def finish_login(self, params: dict[str, str]) -> requests.Response:
        return self.get("/auth/callback", params=params)

    def sign_in(self, user: dict[str, Any]) -> None:
        auth_uri = self.start_login()
        params = self.fake.sign_in_as(auth_uri, user)
        response = self.finish_login(params)
        assert response.status_code == 302, response.text
        assert urlsplit(response.headers["Location"]).path == "/"
        self.user = user

    def sign_out(self) -> requests.Response:
        """The header's sign-out form, as a browser submits it: a POST with the page's token."""
        return self.request("POST", "/auth/logout", data={"csrf_token": self.csrf_token()})

    # --- API helpers --------------------------------------------------------------------------

    def csrf_token(self) -> str:
        page = self.get("/", headers={"Accept": "text/html"})
        match = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
        assert match, "no CSRF token on the page"
        return match.group(1)

    def upload(self, *files: tuple[str, bytes, str], as_json: bool = True) -> requests.Response:
        headers = {"X-CSRFToken": self.csrf_token()}
        if as_json:
            headers["Accept"] = "application/json"
        else:
            headers["Accept"] = "text/html"
        return self.request("POST", "/photos", files=[("file", f) for f in files], headers=headers)

    def photos(self, **params: Any) -> dict[str, Any]:
        response = self.get("/api/photos", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.http.cookies if c.domain == self.host)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    def raw_socket(self, timeout: float = 10) -> socket.socket:
        """A connection to the app as a client opens it (TLS when the URL is https), for
        requests `requests` cannot make (a body that outruns the answer)."""
        target = urlsplit(self.base_url)
        raw = socket.create_connection((target.hostname, target.port), timeout=timeout)
        if target.scheme != "https":
            return raw
        context = ssl.create_default_context(cafile=os.environ.get("REQUESTS_CA_BUNDLE"))
        return context.wrap_socket(raw, server_hostname=target.hostname)

    def upload_head(self, content_length: int) -> bytes:
        """The head of a signed-in multipart upload with a valid token, as a browser sends it."""
        netloc = urlsplit(self.base_url).netloc
        return (
            f"POST /photos HTTP/1.1\r\nHost: {netloc}\r\nAccept: application/json\r\n"
            f"Origin: {self.base_url}\r\nCookie: {self.cookie_header()}\r\n"
            f"X-CSRFToken: {self.csrf_token()}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {content_length}\r\n\r\n"
        ).encode()

    def delete(self, photo_id: str) -> requests.Response:
        return self.request("DELETE", f"/photos/{photo_id}", headers={"X-CSRFToken": self.csrf_token()})


def send_while_reading(
    sock: socket.socket, head: bytes, body_size: int, *, seconds: float = 30
) -> tuple[bytes, int]:
    """Send `head` then `body_size` bytes of body, reading whatever the server answers as it
    comes, like a browser that keeps uploading: returns (what was read, body bytes sent).
    Stops when the server closes or resets the connection, or after `seconds`."""
    sock.sendall(head)
    sock.setblocking(False)
    chunk = b"x" * 65536
    received, sent = b"", 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if sent < body_size else [], [], 0.5)
            if readable or (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                try:
                    data = sock.recv(65536)
                except (ssl.SSLWantReadError, BlockingIOError):
                    data = None
                if data == b"":
                    break
                received += data or b""
                if sent >= body_size and _complete(received):
                    break
            if writable:
                with contextlib.suppress(ssl.SSLWantWriteError, BlockingIOError):
                    sent += sock.send(chunk[: body_size - sent])
    except OSError:  # reset, broken pipe: what was read so far is the answer
        pass
    return received, sent


def _complete(reply: bytes) -> bool:
    head, sep, body = reply.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    return bool(sep and match and len(body) >= int(match.group(1)))


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))
