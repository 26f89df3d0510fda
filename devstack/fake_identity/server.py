"""The Flask app factory and a real HTTPS server running it on a background thread."""

from __future__ import annotations

import logging
import ssl
import tempfile
import threading
from pathlib import Path

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from . import b2c, control, entra, graph
from .config import FakeConfig
from .context import EXTENSION_KEY, FakeIdentity
from .state import FakeState
from .tls import TlsFiles, make_tls
from .tokens import SigningKey

log = logging.getLogger(__name__)


def create_fake_app(config: FakeConfig) -> Flask:
    """Build the fake Entra/B2C/Graph app: fresh signing key, state seeded from `config.users`."""
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep Microsoft's field order
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    state = FakeState()
    for user in config.users:
        state.add_user(**user)
    app.extensions[EXTENSION_KEY] = FakeIdentity(config=config, state=state, key=SigningKey())
    for blueprint in (control.bp, graph.bp, b2c.bp, entra.bp):
        app.register_blueprint(blueprint)
    return app


class FakeIdentityServer:
    """Serves `create_fake_app(config)` over HTTPS with werkzeug's threaded server.

    Port 0 picks a free port; `base_url` is known once `start()` returns. Without `tls`, a
    fresh CA and certificate are written to a temporary directory (see `tls.bundle_pem`).
    """

    def __init__(
        self,
        config: FakeConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: TlsFiles | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if tls is None and ssl_context is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="fake-identity-tls-")
            tls = make_tls(Path(self._tmpdir.name))
        self.tls = tls
        self._ssl_context = ssl_context or tls.server_context()  # type: ignore[union-attr]
        self.app = create_fake_app(config)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def fake(self) -> FakeIdentity:
        """In-process access to state and key (tests in the same process may use it)."""
        return self.app.extensions[EXTENSION_KEY]

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeIdentityServer.base_url is known only after start()")
        return f"https://{self.config.public_host}:{self.port}"

    def start(self) -> FakeIdentityServer:
        """Bind (so the port is known and connections queue) and serve on a daemon thread."""
        if self._server is not None:
            raise RuntimeError("FakeIdentityServer already started")
        self._server = make_server(
            self.host, self.port, self.app, threaded=True, ssl_context=self._ssl_context
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"fake-identity:{self.port}", daemon=True
        )
        self._thread.start()
        log.info("fake identity server listening on %s", self.base_url)
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
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> FakeIdentityServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
