"""The Flask app factory and a real HTTPS server running it on a background thread."""

from __future__ import annotations

import logging
import ssl
import tempfile
from pathlib import Path

from flask import Flask, Response

from ..https_thread import HttpsThread
from . import b2c, b2c_authorize, b2c_token, control, entra, graph
from .config import FakeConfig
from .context import EXTENSION_KEY, FakeIdentity
from .errors import Rejected
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
    for blueprint in (control.bp, graph.bp, b2c.bp, b2c_authorize.bp, b2c_token.bp, entra.bp):
        app.register_blueprint(blueprint)
    app.register_error_handler(Rejected, _rejected)
    return app


def _rejected(exc: Rejected) -> Response:
    return exc.response


class FakeIdentityServer(HttpsThread):
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
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if tls is None and ssl_context is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="fake-identity-tls-")
            tls = make_tls(Path(self._tmpdir.name))
        self.tls = tls
        super().__init__(
            name="fake-identity",
            host=host,
            port=port,
            ssl_context=ssl_context or tls.server_context(),  # type: ignore[union-attr]
        )
        self.app = create_fake_app(config)

    def wsgi_app(self) -> Flask:
        return self.app

    @property
    def fake(self) -> FakeIdentity:
        """In-process access to state and key (tests in the same process may use it)."""
        return self.app.extensions[EXTENSION_KEY]

    @property
    def base_url(self) -> str:
        self._require_started()
        return f"https://{self.config.public_host}:{self.port}"

    def stop(self) -> None:
        super().stop()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
