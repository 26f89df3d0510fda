"""Per-app objects (config, state, key) and the tenant/policy lookups every endpoint needs."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from flask import current_app, request

from .config import FakeConfig
from .managed_identity_state import ManagedIdentities
from .state import FakeState
from .tokens import KeyRing

EXTENSION_KEY = "fake_identity"


@dataclass
class FakeIdentity:
    """Everything one fake server instance owns; stored in `app.extensions`."""

    config: FakeConfig
    state: FakeState
    # Salt of the pairwise `sub` values (per user, per app, per tenant) in External ID tokens.
    pairwise_salt: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    # App Service's managed identity endpoint (IDENTITY_ENDPOINT), for the site's identities.
    managed_identities: ManagedIdentities = field(default_factory=ManagedIdentities)

    @property
    def key(self) -> KeyRing:
        """The published signing keys (the current one signs); rotated through the knobs."""
        return self.state.keys

    def b2c_tenant_matches(self, segment: str) -> bool:
        """B2C accepts the tenant as `name.onmicrosoft.com` or as its GUID, in any case."""
        return segment.lower() in {self.config.b2c_domain.lower(), self.config.b2c_tenant_id}

    def policy(self, segment: str) -> str | None:
        """The configured spelling of a user flow name, matched case-insensitively."""
        wanted = segment.lower()
        return next((p for p in self.config.policies if p.lower() == wanted), None)

    def external_tenant_matches(self, segment: str) -> bool:
        """The external tenant is named by its GUID or its initial domain, in any case."""
        return segment.lower() in {self.config.external_tenant_id, self.config.external_domain.lower()}

    def entra_tenant_id(self, segment: str) -> str | None:
        """The GUID of a directory that exists (B2C or external by GUID or domain, or the main one)."""
        segment = segment.lower()
        cfg = self.config
        if segment in {cfg.b2c_tenant_id.lower(), cfg.b2c_domain.lower()}:
            return cfg.b2c_tenant_id
        if self.external_tenant_matches(segment):
            return cfg.external_tenant_id
        if segment == cfg.main_tenant_id.lower():
            return cfg.main_tenant_id
        return None

    def directory_of(self, tenant_id: str) -> str | None:
        """Which user directory a tenant GUID holds: `b2c`, `external`, or None (the main one)."""
        return {self.config.b2c_tenant_id: "b2c", self.config.external_tenant_id: "external"}.get(tenant_id)

    def registration(self, tenant_id: str, client_id: str) -> tuple[str, str] | None:
        """(client id, secret) of the app registered as `client_id` in `tenant_id`, if any."""
        cfg = self.config
        registered = {
            cfg.b2c_tenant_id: (cfg.client_id, cfg.client_secret),
            cfg.external_tenant_id: (cfg.external_client_id, cfg.external_client_secret),
        }.get(tenant_id)
        if registered is None or client_id.lower() != registered[0]:
            return None
        return registered

    def redirect_uri_registered(self, uri: str) -> bool:
        """A registered redirect URI (`config.redirect_uris` plus the control API's); any
        http(s) URL while none is registered."""
        return self.state.redirect_uri_registered(uri)


def current() -> FakeIdentity:
    return current_app.extensions[EXTENSION_KEY]


def base_url() -> str:
    """The public origin: the configured host name plus the port this server is bound to."""
    port = request.environ.get("SERVER_PORT", "443")
    return f"https://{current().config.public_host}:{port}"
