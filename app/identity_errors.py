"""What Microsoft's identity and Graph errors mean for this app, and how to fix each.

One catalogue serves the app (a sentence safe to show users, the cause and fix for the log),
`photoshare doctor` (cause and fix on the check's line) and the Pulumi program's preview check.
The source article's mistake, the Graph token asked from the company's main tenant instead of
the identity directory, is the first entry: AADSTS700016 when the app is not registered there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.settings import Directory

ADMIN = "An administrator can run `photoshare doctor` to see the fix."
_MISCONFIGURED = "Email lookup is misconfigured:"


@dataclass(frozen=True)
class Diagnosis:
    """One error explained: `shown` is for users (no ids, no AADSTS text), the rest for admins."""

    code: str
    shown: str
    cause: str
    fix: str
    directory: Directory = field(repr=False, compare=False)
    facts: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def detail(self) -> str:
        return f"{self.cause}. Fix: {self.fix}."

    def knowing(self, tenant_id: str | None) -> Diagnosis:
        """The same diagnosis once the right directory's id is known (its fix then names it)."""
        return (
            diagnose(self.code, self.directory, known_tenant=tenant_id, **self.facts) if tenant_id else self
        )


@dataclass(frozen=True)
class _Entry:
    shown: str
    cause: str  # templates: see `diagnose` for the names they may use
    fix: str


CATALOGUE: dict[str, _Entry] = {
    "wrong_tenant": _Entry(
        f"{_MISCONFIGURED} the app asks the wrong directory for its Microsoft Graph token. {ADMIN}",
        "AADSTS700016: the app {client_id} is not registered in directory {tenant_id}: "
        "{tenant_id_setting} is probably {mistaken_for}'s tenant id",
        "{set_tenant}",
    ),
    "unknown_tenant": _Entry(
        f"{_MISCONFIGURED} the directory the app asks for its Microsoft Graph token does not exist. {ADMIN}",
        "AADSTS90002: tenant {tenant_id} does not exist at {authority_host}",
        "{set_tenant}; for sovereign clouds also set AZURE_AUTHORITY_HOST",
    ),
    "invalid_secret": _Entry(
        f"{_MISCONFIGURED} the app's client secret was refused. {ADMIN}",
        "AADSTS7000215: {secret_setting} is not a valid secret of app {client_id}",
        "put the secret's Value (not its Secret ID) from {portal} → Certificates & secrets into "
        "{secret_setting}",
    ),
    "expired_secret": _Entry(
        f"{_MISCONFIGURED} the app's client secret has expired. {ADMIN}",
        "AADSTS7000222: {secret_setting} of app {client_id} has expired",
        "create a new client secret in {portal} → Certificates & secrets and put its Value into "
        "{secret_setting}",
    ),
    "token_error": _Entry(
        f"{_MISCONFIGURED} the app could not get a Microsoft Graph token. {ADMIN}",
        "could not get a Graph token: {description}",
        "look the AADSTS code up at https://login.microsoftonline.com/error and fix the app "
        "registration in the {kind}",
    ),
    "token_endpoint_unavailable": _Entry(
        "Email lookup is unavailable: Microsoft's token service does not answer. Try again shortly.",
        "the token endpoint at {graph_authority} is unavailable ({description})",
        "retry later; if it persists, check the Azure status page",
    ),
    "graph_forbidden": _Entry(
        f"{_MISCONFIGURED} the app may not read users in Microsoft Graph. {ADMIN}",
        "Graph refused (403): the app has no permission to read users",
        "grant User.Read.All: {grant_permission}",
    ),
    "missing_role": _Entry(
        f"{_MISCONFIGURED} the app may not read users in Microsoft Graph. {ADMIN}",
        "the token has no Graph permission that can read users (roles: {roles}); Graph will answer 403",
        "grant User.Read.All (or Directory.Read.All): {grant_permission}",
    ),
    "graph_unauthorized": _Entry(
        f"{_MISCONFIGURED} Microsoft Graph refused the app's token. {ADMIN}",
        "Graph at {graph_endpoint} rejected the token (401 {description})",
        "GRAPH_ENDPOINT and AZURE_AUTHORITY_HOST must be in the same cloud, and the token must "
        "come from the {kind} ({tenant_id_setting})",
    ),
    "deploying_tenant": _Entry(
        "",
        "{tenant_id_setting} is the tenant you are deploying with, i.e. {mistaken_for}",
        "{set_tenant}",
    ),
    "issuer_tenant": _Entry(
        "",
        "{source}'s issuer names tenant {issuer_tenant}, but {tenant_id_setting} is "
        "{tenant_id}: you probably used {mistaken_for}'s id",
        "{set_tenant}",
    ),
    "token_tenant": _Entry(
        "",
        "the token's tenant (tid) is {token_tenant}, not {tenant_id_setting} {tenant_id}",
        "{set_tenant}",
    ),
}

# AADSTS codes → catalogue entries (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
AADSTS = {
    700016: "wrong_tenant",
    90002: "unknown_tenant",
    7000215: "invalid_secret",
    7000222: "expired_secret",
}

GRANT_PERMISSION = (
    "in {portal} → {client_id} → API permissions → Add a permission → Microsoft Graph → "
    "Application permissions → {permission}, then 'Grant admin consent' (an admin of the {kind} "
    "must consent)"
)


def grant_permission(directory: Directory, client_id: str, permission: str = "User.Read.All") -> str:
    """How to grant the app a Graph application permission, in the directory's portal."""
    return GRANT_PERMISSION.format(
        portal=directory.portal, client_id=client_id, permission=permission, kind=directory.kind
    )


def set_tenant(directory: Directory, known: str | None = None) -> str:
    """The fix for every wrong-tenant case, naming the right id when it is known."""
    if known:
        return (
            f"set {directory.tenant_id_setting}={known}, the {directory.kind}'s id "
            f"({directory.tenant_id_where})"
        )
    return f"set {directory.tenant_id_setting} to the {directory.kind}'s id ({directory.tenant_id_where})"


def diagnose(code: str, directory: Directory, *, known_tenant: str | None = None, **facts: Any) -> Diagnosis:
    """The catalogue's entry for `code` with the facts filled in (`client_id`, `tenant_id`,
    `authority_host`, `graph_authority`, `graph_endpoint`, `description`, …)."""
    entry = CATALOGUE.get(code) or CATALOGUE["token_error"]
    names = {
        "kind": directory.kind,
        "tenant_id_setting": directory.tenant_id_setting,
        "secret_setting": directory.secret_setting,
        "portal": directory.portal,
        "mistaken_for": directory.mistaken_for,
        "set_tenant": set_tenant(directory, known_tenant),
        **facts,
    }
    names["grant_permission"] = GRANT_PERMISSION.format_map(_Blank({"permission": "User.Read.All", **names}))
    template = _Blank(names)
    return Diagnosis(
        code if code in CATALOGUE else "token_error",
        entry.shown,
        entry.cause.format_map(template),
        entry.fix.format_map(template),
        directory,
        facts,
    )


def token_error_code(result: Mapping[str, Any] | str) -> tuple[str, str]:
    """The catalogue code for a token endpoint's (or MSAL's) error, and its first line."""
    if isinstance(result, Mapping):
        description = str(result.get("error_description") or result.get("error") or "")
        codes = _ints(result.get("error_codes") or [])
    else:
        description = result
        codes = []
    codes += [int(c) for c in re.findall(r"AADSTS(\d+)", description)]
    if "Unable to get authority configuration" in description:
        codes.append(90002)  # MSAL's wording when tenant discovery answers 400 for the tenant
    first_line = description.splitlines()[0] if description else "no description"
    return next((AADSTS[c] for c in codes if c in AADSTS), "token_error"), first_line


def _ints(values: Iterable[Any]) -> list[int]:
    return [int(v) for v in values if str(v).isdigit()]


class _Blank(dict[str, Any]):
    """Formatting facts; one the caller did not know reads as "?" rather than failing."""

    def __missing__(self, key: str) -> str:
        return "?"
