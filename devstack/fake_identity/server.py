"""The Flask apps and a real HTTPS server running them on background threads.

Two listeners, one fake: the main one plays login.microsoftonline.com, the B2C hosts and
graph.microsoft.com; the second plays ciamlogin.com (External ID), whose paths
(`/{tenant}/v2.0/.well-known/openid-configuration`, `/{tenant}/oauth2/v2.0/token`) are the
same as Entra's and need a host of their own. Both serve the same state, key and config.
"""

from __future__ import annotations

import logging
import ssl
import tempfile
from pathlib import Path
from typing import Self

from flask import Blueprint, Flask, Response

from ..https_thread import HttpsThread
from . import (
    b2c,
    b2c_authorize,
    b2c_token,
    control,
    entra,
    external_id,
    external_id_authorize,
    external_id_token,
    graph,
    managed_identity,
)
from .config import FakeConfig
from .context import EXTENSION_KEY, FakeIdentity
from .errors import Rejected
from .state import FakeState
from .tls import TlsFiles, make_tls

log = logging.getLogger(__name__)


def _app(fake: FakeIdentity, *blueprints: Blueprint) -> Flask:
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep Microsoft's field order
    app.jinja_env.trim_blocks = app.jinja_env.lstrip_blocks = True
    app.extensions[EXTENSION_KEY] = fake
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    app.register_error_handler(Rejected, _rejected)
    return app


def create_fake_app(config: FakeConfig) -> Flask:
    """Build the main app (Entra, B2C, Graph, control): fresh signing keys, state seeded from
    `config.users` and `config.redirect_uris`. `create_external_id_app(app.extensions[...])`
    builds its ciamlogin.com twin."""
    state = FakeState(email_claim=config.external_email_claim, redirect_uris=config.redirect_uris)
    for user in config.users:
        state.add_user(**user)
    fake = FakeIdentity(config=config, state=state)
    return _app(
        fake, control.bp, graph.bp, b2c.bp, b2c_authorize.bp, b2c_token.bp, entra.bp, managed_identity.bp
    )


def create_external_id_app(fake: FakeIdentity) -> Flask:
    """The ciamlogin.com app (External ID endpoints, and the control API) over `fake`'s state."""
    return _app(fake, control.bp, external_id.bp, external_id_authorize.bp, external_id_token.bp)


def _rejected(exc: Rejected) -> Response:
    return exc.response


class _Listener(HttpsThread):
    """The ciamlogin.com listener: its own port, the same TLS context."""

    def __init__(self, app: Flask, *, name: str, host: str, port: int, ssl_context: ssl.SSLContext) -> None:
        super().__init__(name=name, host=host, port=port, ssl_context=ssl_context)
        self._app = app

    def wsgi_app(self) -> Flask:
        return self._app


class FakeIdentityServer(HttpsThread):
    """Serves `create_fake_app(config)` over HTTPS (devstack.https_thread), and its
    External ID twin on a second port (`external_id_url`), started and stopped together.

    Port 0 picks a free port; the URLs are known once `start()` returns. Without `tls`, a
    fresh CA and certificate are written to a temporary directory (see `tls.bundle_pem`).
    """

    def __init__(
        self,
        config: FakeConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        external_id_port: int = 0,
        tls: TlsFiles | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        if tls is None and ssl_context is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="fake-identity-tls-")
            tls = make_tls(Path(self._tmpdir.name))
        self.tls = tls
        context = ssl_context or tls.server_context()  # type: ignore[union-attr]
        super().__init__(name="fake-identity", host=host, port=port, ssl_context=context)
        self.app = create_fake_app(config)
        self.external_app = create_external_id_app(self.fake)
        self._external = _Listener(
            self.external_app,
            name="fake-identity-external-id",
            host=host,
            port=external_id_port,
            ssl_context=context,
        )

    def wsgi_app(self) -> Flask:
        return self.app

    @property
    def fake(self) -> FakeIdentity:
        """In-process access to state and key (tests in the same process may use it)."""
        return self.app.extensions[EXTENSION_KEY]

    def register_redirect_uris(self, uris: list[str]) -> list[str]:
        """In-process `POST /_fake/redirect_uris`: register the app's redirect (and sign-out)
        URIs once its URL is known; returns all registered."""
        return self.fake.state.register_redirect_uris(list(uris))

    @property
    def base_url(self) -> str:
        self._require_started()
        return f"https://{self.config.public_host}:{self.port}"

    @property
    def external_id_url(self) -> str:
        """The ciamlogin.com stand-in, e.g. https://localhost:PORT2 (authority: `/{tenant}/v2.0`)."""
        if not self._external.started:
            raise RuntimeError(f"{type(self).__name__}'s address is known only after start()")
        return f"https://{self.config.public_host}:{self._external.port}"

    def start(self) -> Self:
        super().start()
        try:
            self._external.start()
        except BaseException:
            super().stop()
            raise
        return self

    def stop(self) -> None:
        self._external.stop()
        super().stop()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
