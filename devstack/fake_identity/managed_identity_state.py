"""The site's managed identities in the fake, and the tokens they were issued
(devstack/fake_identity/managed_identity.py serves them)."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

MANAGED_IDENTITY_PATH = "/msi/token"


@dataclass(frozen=True)
class IssuedToken:
    client_id: str
    object_id: str
    resource: str
    token: str
    expires_on: int


@dataclass
class ManagedIdentities:
    """The site's identities and what they were issued; `lifetime` is each token's, in seconds."""

    header: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    system_client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    user_assigned: set[str] = field(default_factory=set)
    lifetime: int = 3600
    on_issue: Callable[[IssuedToken], None] | None = None
    issued: list[IssuedToken] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def env(self, base_url: str) -> dict[str, str]:
        """What App Service sets on the site for azure-identity."""
        return {"IDENTITY_ENDPOINT": f"{base_url}{MANAGED_IDENTITY_PATH}", "IDENTITY_HEADER": self.header}

    @staticmethod
    def object_id(client_id: str) -> str:
        """A stable object id per identity (its service principal's)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"managed-identity:{client_id}"))

    def issue(self, client_id: str, resource: str, sign: Callable[[dict[str, object]], str]) -> IssuedToken:
        now = int(time.time())
        object_id = self.object_id(client_id)
        claims: dict[str, object] = {
            "aud": resource,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "appid": client_id,
            "idtyp": "app",
            "oid": object_id,
            "sub": object_id,
            "uti": secrets.token_urlsafe(12),
        }
        token = IssuedToken(client_id, object_id, resource, sign(claims), now + self.lifetime)
        if self.on_issue is not None:
            self.on_issue(token)  # before the caller has it: the resource knows it first
        with self._lock:
            self.issued.append(token)
        return token
