"""An HTTP client for the running app that signs in through the fake B2C page, like a browser."""

from __future__ import annotations

import io
import os
import re
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
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 60)
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
        params = self.fake.sign_in(auth_uri, user["email"], user["password"])
        response = self.finish_login(params)
        assert response.status_code == 302, response.text
        assert urlsplit(response.headers["Location"]).path == "/"
        self.user = user

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

    def delete(self, photo_id: str) -> requests.Response:
        return self.request("DELETE", f"/photos/{photo_id}", headers={"X-CSRFToken": self.csrf_token()})


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))
