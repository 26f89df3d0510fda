"""Resource names derived from project and stack, valid for each Azure service's rules.

Every name ends with a short hash of project, stack and subscription, so two stacks whose
names only differ past the truncation point still get distinct, globally unique names.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def _slug(text: str) -> str:
    """Lowercase letters, digits and single hyphens, no hyphen at either end."""
    return _NOT_ALNUM.sub("-", text.lower()).strip("-")


def _alnum(text: str) -> str:
    return _NOT_ALNUM.sub("", text.lower())


def _digest(*parts: str, length: int) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def _hyphenated(prefix: str, body: str, suffix: str, max_len: int) -> str:
    """`prefix-body-suffix` cut to max_len by shortening the body, never the prefix or hash."""
    room = max_len - len(prefix) - len(suffix) - 2
    body = body[:room].strip("-")
    return "-".join(part for part in (prefix, body, suffix) if part)


@dataclass(frozen=True)
class Names:
    """Physical names of one stack's resources. Build with `Names.for_stack`."""

    project: str
    stack: str
    subscription_id: str

    @classmethod
    def for_stack(cls, *, project: str, stack: str, subscription_id: str) -> Names:
        return cls(project=project, stack=stack, subscription_id=subscription_id.lower())

    def _hash(self, purpose: str, length: int = 6) -> str:
        return _digest(self.project, self.stack, self.subscription_id, purpose, length=length)

    @property
    def _body(self) -> str:
        return _slug(f"{self.project}-{self.stack}")

    def _name(self, prefix: str, purpose: str, max_len: int) -> str:
        return _hyphenated(prefix, self._body, self._hash(purpose), max_len)

    @property
    def resource_group(self) -> str:
        return self._name("rg", "rg", 90)

    def storage_account(self, purpose: str = "data") -> str:
        """3–24 lowercase letters and digits, unique across Azure: prefix + body + 8-char hash."""
        prefix = {"data": "st", "package": "pk"}.get(purpose, "st")
        suffix = self._hash(f"storage-{purpose}", 8)
        body = _alnum(f"{self.project}{self.stack}")[: 24 - len(prefix) - len(suffix)]
        return f"{prefix}{body}{suffix}"

    @property
    def key_vault(self) -> str:
        """3–24 letters, digits and single hyphens, starting with a letter; unique across Azure."""
        return self._name("kv", "kv", 24)

    @property
    def postgres_server(self) -> str:
        """3–63 lowercase letters, digits and hyphens; the server's DNS label, unique across Azure."""
        return self._name("psql", "psql", 63)

    @property
    def postgres_private_zone(self) -> str:
        return f"{self.postgres_server}.private.postgres.database.azure.com"

    @property
    def web_app(self) -> str:
        """2–60 letters, digits and hyphens; `<name>.azurewebsites.net`, unique across Azure."""
        return self._name("app", "app", 60)

    @property
    def default_host_name(self) -> str:
        """Known before the app exists, so the app registration can name its redirect URIs."""
        return f"{self.web_app}.azurewebsites.net"

    @property
    def app_service_plan(self) -> str:
        return self._name("plan", "plan", 60)

    @property
    def identity(self) -> str:
        return self._name("id", "id", 128)

    @property
    def database_owner_identity(self) -> str:
        """The schema owner's identity, also its PostgreSQL role's name (Entra authentication)."""
        return self._name("iddbo", "database-owner", 63)  # a PostgreSQL identifier: 63 bytes

    @property
    def log_workspace(self) -> str:
        return self._name("log", "log", 63)

    @property
    def app_insights(self) -> str:
        return self._name("appi", "appi", 255)

    @property
    def virtual_network(self) -> str:
        return self._name("vnet", "vnet", 64)

    @property
    def key_vault_private_endpoint(self) -> str:
        """2–64 letters, digits, underscores, periods and hyphens, starting with a letter or digit."""
        return self._name("pep-kv", "pep-kv", 64)

    @property
    def app_registration_display_name(self) -> str:
        return f"{self.project} ({self.stack})"
