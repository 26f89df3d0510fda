"""Every setting the app reads, declared once.

Each `Setting` names its variable, the field it fills, its default and its parser, whose
message says what a good value looks like. `Settings.from_env` is derived from that table; the
Pulumi program builds the App Service app settings from it and validates its stack keys with
the same parsers, so a setting the app needs and the infrastructure forgets is a failing test
rather than a production outage. Only this module reads the environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

Requirement = Literal["required", "optional", "storage", "outside_development"]
Section = Literal["identity", "app"]
Platform = Literal["b2c", "external_id"]


class Invalid(ValueError):
    """A value a parser refuses. The message completes "<variable> …": "must be …, got '…'"."""


@dataclass(frozen=True)
class Context:
    """What a parser may depend on besides the value itself."""

    development: bool = False


Parser = Callable[[str, Context], Any]


# --- parsers: each returns the typed value or raises Invalid ---------------------------------

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_TENANT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,255}$")
_USER_FLOW = re.compile(r"^[A-Za-z0-9_-]+$")
# Blob container names: 3-63 lowercase letters, digits and single hyphens, not at either end.
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))


def text(value: str, context: Context) -> str:
    return value


# The samples' stand-ins (.env.sample, the docs): a value still equal to one was never filled in.
PLACEHOLDER_NAMES = frozenset({"contoso", "contosob2c", "fabrikam", "your-tenant", "yourtenant"})
_ZERO_GUID = "00000000-0000-0000-0000-000000000000"


def tenant_name(domain: str) -> Parser:
    """A tenant's short name (`contoso` of `contoso.{domain}`); the full domain is accepted."""

    def parse(value: str, context: Context) -> str:
        bare = value.lower().removesuffix(f".{domain}")
        if not _TENANT_NAME.match(bare):
            raise Invalid(
                f"must be the bare tenant name (contoso of contoso.{domain}), not a URL, got {value!r}"
            )
        if bare in PLACEHOLDER_NAMES:
            raise Invalid(f"is still the sample's placeholder {value!r}: use your own tenant's name")
        return bare

    return parse


def guid(what: str) -> Parser:
    """A GUID, lower-cased; `what` says which one (the message names where to find it)."""

    def parse(value: str, context: Context) -> str:
        if not is_guid(value):
            raise Invalid(f"must be a GUID: {what}, got {value!r}")
        if value == _ZERO_GUID:
            raise Invalid(f"is still the sample's placeholder (all zeros): use {what}")
        return value.lower()

    return parse


def choice(*values: str) -> Parser:
    def parse(value: str, context: Context) -> str:
        if value.lower() not in values:
            raise Invalid(f"must be {' or '.join(values)}, got {value!r}")
        return value.lower()

    return parse


def user_flow(example: str) -> Parser:
    def parse(value: str, context: Context) -> str:
        if not _USER_FLOW.match(value):
            raise Invalid(f"must be a user-flow name such as {example}, got {value!r}")
        return value

    return parse


def https_host(example: str) -> Parser:
    """`host[:port]` or `https://host[:port]` → `scheme://host[:port]` (http only in development)."""

    def parse(value: str, context: Context) -> str:
        parts = urlsplit(value if "://" in value else f"https://{value}")
        if not parts.netloc or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise Invalid(f"must be a host name such as {example}, got {value!r}")
        _require_https(parts.scheme, value, context)
        return f"{parts.scheme}://{parts.netloc}"

    return parse


def https_url(example: str) -> Parser:
    """An https base URL without a trailing slash (http only in development)."""

    def parse(value: str, context: Context) -> str:
        parts = urlsplit(value if "://" in value else f"https://{value}")
        if not parts.netloc or parts.query or parts.fragment:
            raise Invalid(f"must be a URL such as {example}, got {value!r}")
        _require_https(parts.scheme, value, context)
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"

    return parse


def _require_https(scheme: str, value: str, context: Context) -> None:
    if scheme not in ("https", "http") or (scheme == "http" and not context.development):
        raise Invalid(f"must use https outside development, got {value!r}")


def postgres_url(value: str, context: Context) -> str:
    """A postgresql:// URL; outside development one to another machine must verify the server's
    certificate and name (`sslmode=verify-full`): `require` encrypts, but to whoever answers."""
    if not value.startswith(("postgresql://", "postgres://")):
        raise Invalid("must be a postgresql:// URL")  # the value may hold a password: never echoed
    if not context.development:
        parts = urlsplit(value)
        try:
            host = parts.hostname
        except ValueError:
            raise Invalid("must be a postgresql:// URL") from None
        sslmode = parse_qs(parts.query).get("sslmode", [""])[-1]
        if host and not _is_loopback(host) and sslmode != "verify-full":
            raise Invalid(
                "must verify the database server's certificate outside development: "
                "add sslmode=verify-full&sslrootcert=system to the URL"
            )
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def container_name(value: str, context: Context) -> str:
    if not _CONTAINER.match(value):
        raise Invalid(
            "must be a blob container name: 3 to 63 lowercase letters, digits and single hyphens, "
            f"starting and ending with a letter or digit, got {value!r}"
        )
    return value


def positive_int(value: str, context: Context) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise Invalid(f"must be a positive whole number, got {value!r}")
    return number


def comma_list(value: str, context: Context) -> tuple[str, ...]:
    """`a, b` → `("a", "b")`; empty items are dropped."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


def megabytes(value: str, context: Context) -> int:
    return positive_int(value, context) * 1024 * 1024


def app_env(value: str, context: Context) -> bool:
    """True in development (`development` or `dev`), False in `production`."""
    mode = value.lower()
    if mode not in ("production", "development", "dev"):
        raise Invalid(f"must be production or development, got {value!r}")
    return mode != "production"


@dataclass(frozen=True)
class Directory:
    """How messages name the identity directory and the settings that point at it."""

    kind: str  # "B2C directory"
    tenant_id_setting: str
    client_id_setting: str
    secret_setting: str
    tenant_id_where: str  # where a person finds the right tenant id
    portal: str  # where its app registrations are
    mistaken_for: str  # the tenant whose id is put here by mistake


B2C_DIRECTORY = Directory(
    kind="B2C directory",
    tenant_id_setting="AZURE_AD_B2C_TENANT_ID",
    client_id_setting="AZURE_AD_B2C_CLIENT_ID",
    secret_setting="AZURE_AD_B2C_CLIENT_SECRET",  # noqa: S106  # a variable name
    tenant_id_where="Azure portal → switch to the B2C tenant → Overview → Tenant ID",
    portal="the B2C tenant's App registrations",
    mistaken_for="your main directory",
)
EXTERNAL_DIRECTORY = Directory(
    kind="external tenant",
    tenant_id_setting="EXTERNAL_ID_TENANT_ID",
    client_id_setting="EXTERNAL_ID_CLIENT_ID",
    secret_setting="EXTERNAL_ID_CLIENT_SECRET",  # noqa: S106  # a variable name
    tenant_id_where="Entra admin center → switch to the external tenant → Overview → Tenant ID",
    portal="the external tenant's App registrations",
    mistaken_for="your workforce tenant",
)
DIRECTORIES = {"b2c": B2C_DIRECTORY, "external_id": EXTERNAL_DIRECTORY}


# --- the contract ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One environment variable of the settings contract, and the field it fills."""

    name: str
    field: str
    description: str
    parse: Parser = text
    default: str | None = None
    shown_default: str | None = None  # for the docs, when the default is derived from others
    requirement: Requirement = "optional"
    secret: bool = False
    section: Section = "app"
    how: str | None = None  # how to get a value, added to the "is required" message
    platform: Platform | None = None  # read (and required) only for this IDENTITY_PLATFORM

    def read(self, value: str, context: Context | None = None) -> Any:
        """The parsed value; raises Invalid naming what a good value looks like."""
        return self.parse(value, context or Context())

    @property
    def missing(self) -> str:
        """Completes "<variable> …" when a required value is absent."""
        when = " outside development" if self.requirement == "outside_development" else ""
        return f"is required{when}: {self.description}" + (f"; {self.how}" if self.how else "")


_ID: Section = "identity"
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "AZURE_AD_B2C_TENANT_NAME",
        "b2c_tenant_name",
        "B2C tenant short name (contoso of contoso.onmicrosoft.com)",
        tenant_name("onmicrosoft.com"),
        requirement="required",
        section=_ID,
        platform="b2c",
    ),
    Setting(
        "AZURE_AD_B2C_TENANT_ID",
        "b2c_tenant_id",
        "GUID of the B2C directory (used for the Graph app-only token)",
        guid(f"the B2C directory's tenant id ({B2C_DIRECTORY.tenant_id_where})"),
        requirement="required",
        section=_ID,
        platform="b2c",
    ),
    Setting(
        "AZURE_AD_B2C_CLIENT_ID",
        "b2c_client_id",
        "app registration's client id, in the B2C tenant",
        guid("the app registration's Application (client) ID"),
        requirement="required",
        section=_ID,
        platform="b2c",
    ),
    Setting(
        "AZURE_AD_B2C_CLIENT_SECRET",
        "b2c_client_secret",
        "the app registration's client secret",
        requirement="required",
        secret=True,
        section=_ID,
        platform="b2c",
    ),
    Setting(
        "AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY",
        "signup_signin_policy",
        "user flow for sign-up/sign-in",
        user_flow("B2C_1_signupsignin"),
        "B2C_1_signupsignin",
        section=_ID,
        platform="b2c",
    ),
    Setting(
        "AZURE_AD_B2C_PASSWORD_RESET_POLICY",
        "password_reset_policy",
        "user flow for password reset",
        user_flow("B2C_1_passwordreset"),
        "B2C_1_passwordreset",
        section=_ID,
        platform="b2c",
    ),
    Setting(
        "AZURE_AD_B2C_PROFILE_EDIT_POLICY",
        "profile_edit_policy",
        "user flow for profile edit",
        user_flow("B2C_1_profileedit"),
        "B2C_1_profileedit",
        section=_ID,
        platform="b2c",
    ),
    Setting(
        "AZURE_AD_B2C_AUTHORITY_HOST",
        "b2c_authority_host",
        "host serving the user flows (custom domains)",
        https_host("contoso.b2clogin.com or login.contoso.com"),
        shown_default="<tenant>.b2clogin.com",
        section=_ID,
        platform="b2c",
    ),
    Setting(
        "IDENTITY_PLATFORM",
        "platform",
        "`b2c` or `external_id` (see Which identity platform?)",
        choice("b2c", "external_id"),
        "b2c",
        section=_ID,
    ),
    Setting(
        "EXTERNAL_ID_TENANT_SUBDOMAIN",
        "external_subdomain",
        "contoso of contoso.ciamlogin.com",
        tenant_name("ciamlogin.com"),
        requirement="required",
        section=_ID,
        platform="external_id",
    ),
    Setting(
        "EXTERNAL_ID_TENANT_ID",
        "external_tenant_id",
        "GUID of the external tenant (Graph token, issuer check)",
        guid(f"the external tenant's id ({EXTERNAL_DIRECTORY.tenant_id_where})"),
        requirement="required",
        section=_ID,
        platform="external_id",
    ),
    Setting(
        "EXTERNAL_ID_CLIENT_ID",
        "external_client_id",
        "app registration in the external tenant",
        guid("the app registration's Application (client) ID"),
        requirement="required",
        section=_ID,
        platform="external_id",
    ),
    Setting(
        "EXTERNAL_ID_CLIENT_SECRET",
        "external_client_secret",
        "its client secret",
        requirement="required",
        secret=True,
        section=_ID,
        platform="external_id",
    ),
    Setting(
        "EXTERNAL_ID_AUTHORITY",
        "external_authority",
        "OIDC authority; metadata at `{authority}/.well-known/openid-configuration`",
        https_url("https://contoso.ciamlogin.com/<tenant id>/v2.0"),
        shown_default="https://{subdomain}.ciamlogin.com/{tenant id}/v2.0",
        section=_ID,
        platform="external_id",
    ),
    Setting(
        "AZURE_AUTHORITY_HOST",
        "authority_host",
        "Entra host for the app-only token (sovereign clouds)",
        https_host("login.microsoftonline.com"),
        "login.microsoftonline.com",
        section=_ID,
    ),
    Setting(
        "GRAPH_ENDPOINT",
        "graph_endpoint",
        "Microsoft Graph base URL (sovereign clouds)",
        https_url("https://graph.microsoft.com"),
        "https://graph.microsoft.com",
        section=_ID,
    ),
    Setting(
        "AZURE_STORAGE_ACCOUNT_URL",
        "storage_account_url",
        "blob endpoint; auth by managed identity",
        https_url("https://<account>.blob.core.windows.net"),
        requirement="storage",
    ),
    Setting(
        "AZURE_STORAGE_CONNECTION_STRING",
        "storage_connection_string",
        "connection string (Azurite, dev)",
        requirement="storage",
        secret=True,
    ),
    Setting("AZURE_STORAGE_CONTAINER", "storage_container", "container for images", container_name, "images"),
    Setting(
        "DATABASE_URL",
        "database_url",
        "postgresql://… as the app's role, which reads and writes its tables only "
        "(`sslmode=verify-full&sslrootcert=system` outside development)",
        postgres_url,
        requirement="required",
        secret=True,
    ),
    Setting(
        "DATABASE_OWNER_URL",
        "database_owner_url",
        "postgresql://… as the role that owns the schema: migrations run as it, then grant the "
        "app's role its data privileges",
        postgres_url,
        shown_default="DATABASE_URL",
        secret=True,
    ),
    Setting(
        "DATABASE_AUTH",
        "database_auth",
        "how the app signs in to PostgreSQL: `password` (in the URLs, or none where the server "
        "trusts the host), or `entra`: a Microsoft Entra token from the site's managed identity "
        "for each new connection (the URLs then carry no password)",
        choice("password", "entra"),
        "password",
    ),
    Setting(
        "DATABASE_OWNER_CLIENT_ID",
        "database_owner_client_id",
        "with `entra`: the client id of the user-assigned managed identity DATABASE_OWNER_URL's "
        "role belongs to (none: the site's system-assigned identity)",
        guid("the identity's Client ID (portal → Managed Identities → the identity → Overview)"),
    ),
    Setting(
        "SECRET_KEY",
        "secret_key",
        "signs the session cookie",
        requirement="outside_development",
        how="generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`",
        secret=True,
    ),
    Setting(
        "SECRET_KEY_FALLBACKS",
        "secret_key_fallbacks",
        "previous SECRET_KEYs, comma-separated: cookies they signed still work while the key rotates",
        comma_list,
        secret=True,
    ),
    Setting("MAX_UPLOAD_MB", "max_upload_bytes", "largest accepted upload, in MB", megabytes, "20"),
    Setting(
        "MAX_IMAGE_PIXELS",
        "max_image_pixels",
        "largest accepted image, in pixels (decompression bombs)",
        positive_int,
        "40000000",
    ),
    Setting(
        "MAX_FILES_PER_UPLOAD",
        "max_files_per_upload",
        "most files accepted in one upload request",
        positive_int,
        "20",
    ),
    Setting(
        "EMAIL_CACHE_TTL_SECONDS",
        "email_cache_ttl",
        "how long a Graph-resolved email is reused",
        positive_int,
        "86400",
    ),
    Setting("LINK_TTL_SECONDS", "link_ttl", "lifetime of the read-only image links", positive_int, "900"),
    Setting(
        "APP_ENV",
        "development",
        "production or development (relaxes https and SECRET_KEY checks)",
        app_env,
        "production",
    ),
    Setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "appinsights_connection_string",
        "Application Insights, when monitoring is on",
    ),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


class SettingsError(ValueError):
    """Settings are missing or malformed; the message names every variable and its fix."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("Invalid configuration:\n  - " + "\n  - ".join(problems))
        self.problems = problems


class _Reader:
    """Reads declared settings from a mapping, collecting every problem instead of the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []
        self.values: dict[str, Any] = {}
        self.context = Context()  # APP_ENV is read first: the https rules depend on it
        self.context = Context(development=bool(self.read(SETTINGS_BY_NAME["APP_ENV"])))
        self.platform: Platform = self.read(SETTINGS_BY_NAME["IDENTITY_PLATFORM"]) or "b2c"

    def raw(self, setting: Setting) -> str | None:
        return self.environ.get(setting.name, "").strip() or setting.default

    def read(self, setting: Setting) -> Any:
        if setting.name not in self.values:
            self.values[setting.name] = self._parse(setting)
        return self.values[setting.name]

    def _parse(self, setting: Setting) -> Any:
        if setting.platform is not None and setting.platform != self.platform:
            if self.environ.get(setting.name, "").strip():
                self.problems.append(
                    f"{setting.name} is a setting of IDENTITY_PLATFORM={setting.platform}, but "
                    f"IDENTITY_PLATFORM is {self.platform}: remove it, or set IDENTITY_PLATFORM="
                    f"{setting.platform} (and every setting that platform needs)"
                )
            return None
        value = self.raw(setting)
        if value is not None and value.startswith(_KEY_VAULT_REFERENCE):
            self.problems.append(f"{setting.name} {UNRESOLVED_REFERENCE}")
            return None
        if value is None:
            if setting.requirement == "required" or (
                setting.requirement == "outside_development" and not self.context.development
            ):
                self.problems.append(f"{setting.name} {setting.missing}")
            return None
        try:
            return setting.read(value, self.context)
        except Invalid as exc:
            self.problems.append(f"{setting.name} {exc}")
            return None

    def section(self, section: Section) -> dict[str, Any]:
        return {s.field: self.read(s) for s in SETTINGS if s.section == section}

    def done(self) -> None:
        if self.problems:
            raise SettingsError(self.problems)


# App Service resolves `@Microsoft.KeyVault(SecretUri=…)` settings with the site's identity;
# when it cannot, the app receives the reference string itself (App Service docs, "Use Key
# Vault references": troubleshooting), which would otherwise fail as a malformed value.
_KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("
UNRESOLVED_REFERENCE = (
    "is a Key Vault reference App Service did not resolve: the site's managed identity needs the "
    "Key Vault Secrets User role on the vault (a new role assignment can take minutes to reach "
    "App Service: restart the site once it has), and the secret version it names must exist; "
    "the portal's Environment variables page shows each reference's status"
)


@dataclass(frozen=True)
class Authority:
    """An OpenID authority users sign in at (a B2C user flow, or the external tenant), where its
    metadata is, and what its ID tokens must say beyond the standard claims."""

    name: str  # the B2C user flow, or "External ID"
    url: str
    metadata_url: str
    oidc: bool = False  # MSAL gets it as `oidc_authority=` (External ID) rather than `authority=`
    tenant_id: str | None = None  # the `tid` every ID token must carry (External ID)
    # The user flow every ID token must name in `tfp` (or `acr`, B2C's older claim): a token
    # from another flow of the tenant carries the same issuer and audience (B2C).
    policy: str | None = None
    email_claim: str = "emails"  # B2C: `emails` (a list); External ID: `email` (optional claim)
    # The tenant's metadata found by its name, whatever tenant id is configured: its issuer
    # names the right id when the configured one is another tenant's (External ID).
    discovery_url: str | None = None


@dataclass(frozen=True, kw_only=True)
class IdentitySettings:
    """Where users sign in and where the app-only Graph token comes from, for the chosen
    IDENTITY_PLATFORM, with every URL the clients use computed here once."""

    platform: Platform
    b2c_tenant_name: str | None
    b2c_tenant_id: str | None
    b2c_client_id: str | None
    b2c_client_secret: str | None = field(repr=False)
    signup_signin_policy: str | None
    password_reset_policy: str | None
    profile_edit_policy: str | None
    b2c_authority_host: str | None  # scheme://host[:port]; None: <tenant>.b2clogin.com
    external_subdomain: str | None
    external_tenant_id: str | None
    external_client_id: str | None
    external_client_secret: str | None = field(repr=False)
    external_authority: str | None  # None: https://{subdomain}.ciamlogin.com/{tenant id}/v2.0
    authority_host: str  # scheme://host[:port]
    graph_endpoint: str  # no trailing slash

    # The chosen platform's, derived once:
    tenant_id: str = field(init=False)
    client_id: str = field(init=False)
    client_secret: str = field(init=False, repr=False)
    directory: Directory = field(init=False, repr=False)
    authorities: dict[str, Authority] = field(init=False, repr=False)  # "sign_in", "password_reset", …
    graph_authority: str = field(init=False, repr=False)  # the identity directory, never the main one
    graph_scope: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.platform == "external_id":
            tenant_id, client_id = self.external_tenant_id or "", self.external_client_id or ""
            secret = self.external_client_secret or ""
            authority = (
                self.external_authority or f"https://{self.external_subdomain}.ciamlogin.com/{tenant_id}/v2.0"
            )
            # One authority: user flows are linked to the app, password reset is in the sign-in page.
            host = "{0.scheme}://{0.netloc}".format(urlsplit(authority))
            authorities = {
                "sign_in": Authority(
                    "External ID",
                    authority,
                    f"{authority}/.well-known/openid-configuration",
                    oidc=True,
                    tenant_id=tenant_id,
                    email_claim="email",
                    discovery_url=(
                        f"{host}/{self.external_subdomain}.onmicrosoft.com/v2.0/.well-known/openid-configuration"
                    ),
                )
            }
        else:
            tenant_id, client_id = self.b2c_tenant_id or "", self.b2c_client_id or ""
            secret = self.b2c_client_secret or ""
            host = self.b2c_authority_host or f"https://{self.b2c_tenant_name}.b2clogin.com"
            base = f"{host}/{self.b2c_tenant_name}.onmicrosoft.com"
            flows = {
                "sign_in": self.signup_signin_policy,
                "password_reset": self.password_reset_policy,
                "profile_edit": self.profile_edit_policy,
            }
            authorities = {
                purpose: Authority(
                    policy,
                    f"{base}/{policy}",
                    f"{base}/{policy}/v2.0/.well-known/openid-configuration",
                    policy=policy,
                )
                for purpose, policy in flows.items()
                if policy
            }
        graph = urlsplit(self.graph_endpoint)
        derived = {
            "tenant_id": tenant_id,
            "client_id": client_id,
            "client_secret": secret,
            "directory": DIRECTORIES[self.platform],
            "authorities": authorities,
            "graph_authority": f"{self.authority_host}/{tenant_id}",
            "graph_scope": f"{graph.scheme}://{graph.netloc}/.default",
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @property
    def external_id(self) -> bool:
        return self.platform == "external_id"

    @property
    def tenant_label(self) -> str:
        """How reports name the tenant: `contoso.onmicrosoft.com` or `contoso.ciamlogin.com`."""
        if self.external_id:
            return f"{self.external_subdomain}.ciamlogin.com"
        return f"{self.b2c_tenant_name}.onmicrosoft.com"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IdentitySettings:
        """Only the identity settings (and APP_ENV): what `photoshare doctor` checks."""
        reader = _Reader(os.environ if environ is None else environ)
        values = reader.section("identity")
        reader.done()
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Validated settings. Build with `from_env`; tests pass a mapping."""

    identity: IdentitySettings
    storage_account_url: str | None
    storage_connection_string: str | None = field(repr=False)
    storage_container: str
    database_url: str = field(repr=False)
    database_owner_url: str | None = field(repr=False)
    database_auth: str
    database_owner_client_id: str | None
    secret_key: str = field(repr=False)
    secret_key_fallbacks: tuple[str, ...] | None = field(repr=False)
    max_upload_bytes: int
    max_image_pixels: int
    max_files_per_upload: int
    email_cache_ttl: int
    link_ttl: int
    development: bool
    appinsights_connection_string: str | None = field(repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the contract's variables; raise SettingsError naming each problem."""
        reader = _Reader(os.environ if environ is None else environ)
        identity = reader.section("identity")
        values = reader.section("app")
        storage = [s for s in SETTINGS if s.requirement == "storage"]
        if not any(reader.raw(s) for s in storage):
            reader.problems.append(
                " or ".join(f"{s.name} ({s.description})" for s in storage) + " is required"
            )
        if values["database_auth"] == "entra":
            urls = [s for s in SETTINGS if s.field in ("database_url", "database_owner_url")]
            for setting in urls:
                if values[setting.field] and urlsplit(values[setting.field]).password:
                    reader.problems.append(
                        f"{setting.name} must not hold a password with DATABASE_AUTH=entra: the "
                        "password is a Microsoft Entra token taken for each connection"
                    )
        if values["secret_key"] is None and reader.context.development:
            values["secret_key"] = os.urandom(32).hex()  # sessions end when the dev server restarts
        reader.done()
        return cls(identity=IdentitySettings(**identity), **values)


def get_settings() -> Settings:
    """The running app's settings (inside a request or app context)."""
    from flask import current_app  # only here: infra imports this module without an app

    settings: Settings = current_app.extensions["settings"]
    return settings
