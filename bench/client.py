"""A user of the app over HTTP, signed in through the fake B2C page like a browser, and a
multipart body streamed from disk so the benchmark itself never holds a 200 MB upload."""

from __future__ import annotations

import mimetypes
import re
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from devstack.fake_identity.client import FakeIdentityClient

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
CHUNK = 1024 * 1024


class MultipartFile:
    """multipart/form-data with one file field, read from disk in 1 MiB chunks.

    requests sends an iterable with a length as a streamed body with Content-Length, which the
    app needs to refuse an oversized upload before reading it.
    """

    def __init__(self, path: Path, *, field: str = "file", content_type: str | None = None) -> None:
        self.path = path
        boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self._head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{path.name}"\r\n'
            f"Content-Type: {content_type or mimetypes.guess_type(path.name)[0]}\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self._length = len(self._head) + path.stat().st_size + len(self._tail)

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        yield self._head
        with open(self.path, "rb") as file:
            while chunk := file.read(CHUNK):
                yield chunk
        yield self._tail


def post_file(
    http: requests.Session, url: str, path: Path, headers: dict[str, str] | None = None
) -> requests.Response:
    """POST one file as the form field `file`, streamed."""
    body = MultipartFile(path)
    return http.post(
        url,
        data=body,
        headers={**(headers or {}), "Content-Type": body.content_type, "Accept": "application/json"},
        timeout=300,
    )


def new_user(fake: FakeIdentityClient, kind: str) -> dict[str, Any]:
    """A user in the fake B2C directory: `local_with_emails_claim` or `local` (Graph only)."""
    email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
    password = secrets.token_urlsafe(12)
    user = fake.add_user(email, password, name=f"Bench {kind}", kind=kind)
    return {**user, "email": email, "password": password}


class Browser:
    """One signed-in user of the app: its session cookie and CSRF token."""

    def __init__(self, base_url: str, fake_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.fake = FakeIdentityClient(fake_url)
        self._csrf: str | None = None

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("allow_redirects", False)
        return self.http.get(self.base_url + path, **kwargs)

    def sign_in(self, user: dict[str, Any]) -> Browser:
        response = self.get("/auth/login")
        if response.status_code != 302:
            raise RuntimeError(f"/auth/login answered {response.status_code}: {response.text[:300]}")
        params = self.fake.sign_in(response.headers["Location"], user["email"], user["password"])
        done = self.get("/auth/callback", params=params)
        if done.status_code != 302:
            raise RuntimeError(f"/auth/callback answered {done.status_code}: {done.text[:300]}")
        return self

    @property
    def cookie_header(self) -> str:
        """The session as a Cookie header, for a load generator outside this process."""
        return "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)

    def csrf_token(self) -> str:
        if self._csrf is None:
            match = _CSRF.search(self.get("/", headers={"Accept": "text/html"}).text)
            if match is None:
                raise RuntimeError("no CSRF token on the page: is the user signed in?")
            self._csrf = match.group(1)
        return self._csrf

    def upload(self, path: Path, *, url: str | None = None) -> requests.Response:
        """POST one file to /photos (of `url` instead of the app's own, e.g. through a link)."""
        return post_file(
            self.http, (url or self.base_url) + "/photos", path, {"X-CSRFToken": self.csrf_token()}
        )

    def close(self) -> None:
        """Close the keep-alive connections, so stopping gunicorn does not wait on them."""
        self.http.close()
        self.fake.session.close()

    def delete(self, photo_id: str) -> None:
        self.http.delete(
            f"{self.base_url}/photos/{photo_id}", headers={"X-CSRFToken": self.csrf_token()}, timeout=30
        )
