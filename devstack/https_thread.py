"""A WSGI app served over HTTPS by werkzeug's threaded server on a daemon thread.

The fakes (Entra/B2C/Graph, Application Insights ingestion) run in the test or `make dev`
process itself, so their state can be read directly; this is their one start/stop protocol.
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any, Self

from werkzeug.serving import BaseWSGIServer, make_server

log = logging.getLogger(__name__)


class HttpsThread:
    """Port 0 picks a free port, known once `start()` returns; `stop()` is idempotent."""

    def __init__(self, *, name: str, host: str, port: int, ssl_context: ssl.SSLContext) -> None:
        self.name = name
        self.host = host
        self.port = port
        self._ssl_context = ssl_context
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def wsgi_app(self) -> Any:
        """The WSGI application to serve."""
        raise NotImplementedError

    @property
    def started(self) -> bool:
        return self._server is not None

    def _require_started(self) -> None:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__}'s address is known only after start()")

    def start(self) -> Self:
        """Bind (so the port is known and connections queue) and serve on a daemon thread."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._server = make_server(
            self.host, self.port, self.wsgi_app(), threaded=True, ssl_context=self._ssl_context
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"{self.name}:{self.port}", daemon=True
        )
        self._thread.start()
        log.info("%s listening on port %d", self.name, self.port)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
