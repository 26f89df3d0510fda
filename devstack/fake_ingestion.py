"""A local Application Insights ingestion endpoint: what the Azure Monitor exporter posts to.

The exporter sends `POST {IngestionEndpoint}/v2.1/track` with a JSON array of envelopes
(gzip-compressed when `Content-Encoding: gzip`) and reads back `itemsReceived`,
`itemsAccepted` and `errors`. Nothing else is called first: no discovery, no token (without an
Entra credential the instrumentation key in each envelope is the authentication). The server
keeps every envelope and every raw body, so tests can look for what must never be sent.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from .fake_identity.tls import TlsFiles
from .https_thread import HttpsThread

log = logging.getLogger(__name__)

TRACK_PATH = "/v2.1/track"


class FakeIngestion(HttpsThread):
    """HTTPS on a free loopback port, serving `TRACK_PATH`; `connection_string(ikey)` points an
    exporter at it. The TLS files are the ones its clients already trust (REQUESTS_CA_BUNDLE)."""

    def __init__(self, *, tls: TlsFiles, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(name="fake-ingestion", host=host, port=port, ssl_context=tls.server_context())
        self.tls = tls
        self._lock = threading.Lock()
        self._envelopes: list[dict[str, Any]] = []
        self._bodies: list[bytes] = []

    def wsgi_app(self) -> Any:
        return self._wsgi

    @property
    def base_url(self) -> str:
        self._require_started()
        return f"https://{self.host}:{self.port}"

    def connection_string(self, instrumentation_key: str) -> str:
        # Without the trailing "/" of Azure's own connection strings: the exporter would then
        # post to "//v2.1/track", which Azure accepts and cheroot refuses (a request target that
        # starts with "//" is not an absolute path, RFC 3986 §3.3).
        return f"InstrumentationKey={instrumentation_key};IngestionEndpoint={self.base_url}"

    # --- what was received ----------------------------------------------------------------------

    def envelopes(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._envelopes)

    def raw_bodies(self) -> list[bytes]:
        """Each request body, decompressed: the text to search for what must never be sent."""
        with self._lock:
            return list(self._bodies)

    def clear(self) -> None:
        with self._lock:
            self._envelopes.clear()
            self._bodies.clear()

    def wait_for(
        self, found: Callable[[list[dict[str, Any]]], bool], *, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """Poll until `found(envelopes)` holds; the envelopes either way (the caller asserts)."""
        deadline = time.monotonic() + timeout
        while True:
            envelopes = self.envelopes()
            if found(envelopes) or time.monotonic() >= deadline:
                return envelopes
            time.sleep(0.1)

    # --- the endpoint ---------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        if request.path != TRACK_PATH:
            return Response("not found", status=404)(environ, start_response)
        if request.method != "POST":
            return Response("method not allowed", status=405)(environ, start_response)
        body = request.get_data()
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        try:
            items = json.loads(body)
        except ValueError:
            return _json({"itemsReceived": 0, "itemsAccepted": 0, "errors": []}, 400)(environ, start_response)
        if not isinstance(items, list):
            items = [items]
        with self._lock:
            self._bodies.append(body)
            self._envelopes.extend(item for item in items if isinstance(item, dict))
        count = len(items)
        return _json({"itemsReceived": count, "itemsAccepted": count, "errors": []})(environ, start_response)


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")
