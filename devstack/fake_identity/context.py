"""Per-app objects (config, state, key) and the tenant/policy lookups every endpoint needs."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request

from .config import FakeConfig
from .state import FakeState
from .tokens import SigningKey

EXTENSION_KEY = "fake_identity"


@dataclass
class FakeIdentity:
    """Everything one fake server instance owns; stored in `app.extensions`."""

    config: FakeConfig
    state: FakeState
    key: SigningKey

    def b2c_tenant_matches(self, segment: str) -> bool:
        """B2C accepts the tenant as `name.onmicrosoft.com` or as its GUID, in any case."""
        return segment.lower() in {self.config.b2c_domain.lower(), self.config.b2c_tenant_id}

    def policy(self, segment: str) -> str | None:
        """The configured spelling of a user flow name, matched case-insensitively."""
        wanted = segment.lower()
        return next((p for p in self.config.policies if p.lower() == wanted), None)

    def entra_tenant_id(self, segment: str) -> str | None:
        """The GUID of a directory that exists (B2C by GUID or domain, or the main one)."""
        segment = segment.lower()
        cfg = self.config
        if segment in {cfg.b2c_tenant_id.lower(), cfg.b2c_domain.lower()}:
            return cfg.b2c_tenant_id
        if segment == cfg.main_tenant_id.lower():
            return cfg.main_tenant_id
        return None


def current() -> FakeIdentity:
    return current_app.extensions[EXTENSION_KEY]


def base_url() -> str:
    """The public origin: the configured host name plus the port this server is bound to."""
    port = request.environ.get("SERVER_PORT", "443")
    return f"https://{current().config.public_host}:{port}"
