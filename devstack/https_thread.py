"""A WSGI app served over HTTPS by cheroot's threaded server on a daemon thread.

The fakes (Entra/B2C/Graph, Application Insights ingestion) run in the test or `make dev`
process itself, so their state can be read directly; this is their one start/stop protocol.

cheroot (CherryPy's server) keeps connections alive, as the real services do. werkzeug's
development server closes every connection, so each request to a fake paid a new TLS
handshake and, on the client, a fresh load of the CA bundle (about 50 ms a request here).
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any, Self

from cheroot import wsgi
from cheroot.ssl import Adapter
from cheroot.ssl.builtin import BuiltinSSLAdapter

log = logging.getLogger(__name__)
THREADS = 16  # requests served at once: the tests' concurrent uploads and sign-ins
SHUTDOWN_SECONDS = 5


class _ContextAdapter(BuiltinSSLAdapter):
    """cheroot's TLS adapter serving a context made elsewhere (its own loads PEM files)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        Adapter.__init__(self, "", "")
        self.context = context
        self._server_env: dict[str, str] = {}


class _Server(wsgi.Server):
    """Its notes (a client that dropped the handshake, say) go to the log, not to stderr."""

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        log.log(level, "%s: %s", self.server_name, msg, exc_info=traceback)


class HttpsThread:
    """Port 0 picks a free port, known once `start()` returns; `stop()` is idempotent."""

    def __init__(self, *, name: str, host: str, port: int, ssl_context: ssl.SSLContext) -> None:
        self.name = name
        self.host = host
        self.port = port
        self._ssl_context = ssl_context
        self._server: _Server | None = None
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
        server = _Server(
            (self.host, self.port),
            self.wsgi_app(),
            numthreads=THREADS,
            server_name=self.name,
            shutdown_timeout=SHUTDOWN_SECONDS,
        )
        server.ssl_adapter = _ContextAdapter(self._ssl_context)
        server.prepare()  # binds and listens
        self._server = server
        self.port = server.bind_addr[1]
        self._thread = threading.Thread(target=server.serve, name=f"{self.name}:{self.port}", daemon=True)
        self._thread.start()
        log.info("%s listening on port %d", self.name, self.port)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
