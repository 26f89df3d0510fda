"""Configuration of the fake identity server.

Every value (tenant ids, client ids, secrets) is supplied by the caller, who generates them
randomly per run: nothing secret lives in git. Two app registrations are described: one in the
B2C tenant and one in the External ID (external) tenant, as two real deployments would have.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_POLICIES = ["B2C_1_signupsignin", "B2C_1_passwordreset", "B2C_1_profileedit"]


@dataclass
class FakeConfig:
    """What the fake B2C tenant, the external tenant, the main Entra directory and the app
    registrations look like."""

    b2c_tenant_name: str
    b2c_tenant_id: str
    main_tenant_id: str
    client_id: str
    client_secret: str
    # The External ID tenant: `{external_subdomain}.ciamlogin.com`, initial domain
    # `{external_subdomain}.onmicrosoft.com`, and the app's registration there.
    external_tenant_id: str
    external_subdomain: str
    external_client_id: str
    external_client_secret: str
    policies: list[str] = field(default_factory=lambda: list(DEFAULT_POLICIES))
    public_host: str = "localhost"
    access_token_lifetime: int = 3600
    id_token_lifetime: int = 3600
    users: list[dict[str, Any]] = field(default_factory=list)
    # Redirect URIs registered at start (both registrations; more through the control API).
    # While none is registered, any http(s) URL is accepted.
    redirect_uris: list[str] = field(default_factory=list)
    # Whether the external registration has the `email` optional claim configured (a new
    # registration has none); the `email_claim` knob starts from this value.
    external_email_claim: bool = False

    def __post_init__(self) -> None:
        for name in (
            "b2c_tenant_id",
            "main_tenant_id",
            "client_id",
            "external_tenant_id",
            "external_client_id",
        ):
            value = getattr(self, name)
            try:
                setattr(self, name, str(uuid.UUID(value)))  # canonical lower-case form
            except (ValueError, TypeError, AttributeError) as exc:
                raise ValueError(f"FakeConfig.{name} must be a GUID, got {value!r}") from exc
        if not self.b2c_tenant_name or "." in self.b2c_tenant_name:
            raise ValueError(
                "FakeConfig.b2c_tenant_name is the short name (contoso of "
                f"contoso.onmicrosoft.com), got {self.b2c_tenant_name!r}"
            )
        if not self.external_subdomain or "." in self.external_subdomain:
            raise ValueError(
                "FakeConfig.external_subdomain is the short name (contoso of "
                f"contoso.ciamlogin.com), got {self.external_subdomain!r}"
            )
        for name in ("client_secret", "external_client_secret"):
            if not getattr(self, name):
                raise ValueError(f"FakeConfig.{name} must not be empty")
        tenants = [self.b2c_tenant_id, self.main_tenant_id, self.external_tenant_id]
        if len(set(tenants)) != len(tenants):
            raise ValueError("FakeConfig: the B2C, main and external tenant ids must differ")
        if self.external_client_id == self.client_id:
            raise ValueError(
                "FakeConfig.external_client_id must differ from client_id: the external tenant "
                "has its own app registration"
            )
        if not self.policies:
            raise ValueError("FakeConfig.policies must name at least one user flow")

    @property
    def b2c_domain(self) -> str:
        """The B2C directory's initial domain, e.g. contoso.onmicrosoft.com."""
        return f"{self.b2c_tenant_name}.onmicrosoft.com"

    @property
    def external_domain(self) -> str:
        """The external tenant's initial domain, e.g. contoso.onmicrosoft.com."""
        return f"{self.external_subdomain}.onmicrosoft.com"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FakeConfig:
        """Build from a JSON object; unknown keys are an error so typos do not pass silently."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fake identity config keys: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_json_file(cls, path: str | Path) -> FakeConfig:
        """Load the JSON file that `make dev` / the test harness wrote for this run."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write_json(self, path: str | Path) -> None:
        """Write the config (it contains the client secret: keep it out of git)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    @classmethod
    def random(
        cls,
        *,
        b2c_tenant_name: str = "photosharedev",
        external_subdomain: str = "photosharedevext",
        **overrides: Any,
    ) -> FakeConfig:
        """A fresh config with random GUIDs and secrets, as each dev/test run should use."""
        values: dict[str, Any] = {
            "b2c_tenant_name": b2c_tenant_name,
            "b2c_tenant_id": str(uuid.uuid4()),
            "main_tenant_id": str(uuid.uuid4()),
            "client_id": str(uuid.uuid4()),
            "client_secret": secrets.token_urlsafe(30),
            "external_tenant_id": str(uuid.uuid4()),
            "external_subdomain": external_subdomain,
            "external_client_id": str(uuid.uuid4()),
            "external_client_secret": secrets.token_urlsafe(30),
        }
        values.update(overrides)
        return cls(**values)
