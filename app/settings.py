"""Every setting the app reads, declared once.

The Pulumi program builds the App Service app settings from `SETTINGS` too, so a setting the
app needs and the infrastructure forgets is a failing test rather than a production outage.
Only this module (and `from_env`) reads the environment.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

Requirement = Literal["required", "optional", "storage", "outside_development"]


@dataclass(frozen=True)
class Setting:
    """One environment variable of the settings contract."""

    name: str
    description: str
    default: str | None = None
    requirement: Requirement = "optional"
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "AZURE_AD_B2C_TENANT_NAME",
        "B2C tenant short name (contoso of contoso.onmicrosoft.com)",
        requirement="required",
    ),
    Setting(
        "AZURE_AD_B2C_TENANT_ID",
        "GUID of the B2C directory (used for the Graph app-only token)",
        requirement="required",
    ),
    Setting(
        "AZURE_AD_B2C_CLIENT_ID", "app registration's client id, in the B2C tenant", requirement="required"
    ),
    Setting(
        "AZURE_AD_B2C_CLIENT_SECRET",
        "the app registration's client secret",
        requirement="required",
        secret=True,
    ),
    Setting("AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY", "user flow for sign-up/sign-in", "B2C_1_signupsignin"),
    Setting("AZURE_AD_B2C_PASSWORD_RESET_POLICY", "user flow for password reset", "B2C_1_passwordreset"),
    Setting("AZURE_AD_B2C_PROFILE_EDIT_POLICY", "user flow for profile edit", "B2C_1_profileedit"),
    Setting(
        "AZURE_AD_B2C_AUTHORITY_HOST", "host serving the user flows (custom domains)", "<tenant>.b2clogin.com"
    ),
    Setting(
        "AZURE_AUTHORITY_HOST",
        "Entra host for the app-only token (sovereign clouds)",
        "login.microsoftonline.com",
    ),
    Setting("GRAPH_ENDPOINT", "Microsoft Graph base URL (sovereign clouds)", "https://graph.microsoft.com"),
    Setting("AZURE_STORAGE_ACCOUNT_URL", "blob endpoint; auth by managed identity", requirement="storage"),
    Setting(
        "AZURE_STORAGE_CONNECTION_STRING",
        "connection string (Azurite, dev)",
        requirement="storage",
        secret=True,
    ),
    Setting("AZURE_STORAGE_CONTAINER", "container for images", "images"),
    Setting("DATABASE_URL", "postgresql://… (sslmode=require in Azure)", requirement="required", secret=True),
    Setting("SECRET_KEY", "signs the session cookie", requirement="outside_development", secret=True),
    Setting("MAX_UPLOAD_MB", "largest accepted upload, in MB", "20"),
    Setting("MAX_IMAGE_PIXELS", "largest accepted image, in pixels (decompression bombs)", "40000000"),
    Setting("MAX_FILES_PER_UPLOAD", "most files accepted in one upload request", "20"),
    Setting("EMAIL_CACHE_TTL_SECONDS", "how long a Graph-resolved email is reused", "86400"),
    Setting("LINK_TTL_SECONDS", "lifetime of the read-only image links", "900"),
    Setting("APP_ENV", "production or development (relaxes https and SECRET_KEY checks)", "production"),
    Setting("APPLICATIONINSIGHTS_CONNECTION_STRING", "Application Insights, when monitoring is on"),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_TENANT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,255}$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable and the fix."""


@dataclass(frozen=True)
class Settings:
    """Validated settings. Build with `from_env`; tests pass a mapping."""

    b2c_tenant_name: str
    b2c_tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    signup_signin_policy: str
    password_reset_policy: str
    profile_edit_policy: str
    b2c_authority_host: str  # scheme://host[:port], no trailing slash
    authority_host: str  # scheme://host[:port]
    graph_endpoint: str  # no trailing slash
    storage_account_url: str | None
    storage_connection_string: str | None = field(repr=False)
    storage_container: str
    database_url: str = field(repr=False)
    secret_key: str = field(repr=False)
    max_upload_bytes: int
    max_image_pixels: int
    max_files_per_upload: int
    email_cache_ttl: int
    link_ttl: int
    development: bool
    appinsights_connection_string: str | None = field(default=None, repr=False)

    @property
    def b2c_authority_base(self) -> str:
        """`https://host/tenant.onmicrosoft.com`: append a policy to get a user-flow authority."""
        return f"{self.b2c_authority_host}/{self.b2c_tenant_name}.onmicrosoft.com"

    def b2c_authority(self, policy: str) -> str:
        return f"{self.b2c_authority_base}/{policy}"

    @property
    def graph_authority(self) -> str:
        """Where the app-only Graph token comes from: the **B2C** directory, never the main one."""
        return f"{self.authority_host}/{self.b2c_tenant_id}"

    @property
    def graph_scope(self) -> str:
        parts = urlsplit(self.graph_endpoint)
        return f"{parts.scheme}://{parts.netloc}/.default"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the contract's variables; raise SettingsError naming what is wrong."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            if value:
                return value
            return SETTINGS_BY_NAME[name].default

        problems: list[str] = []
        development = (get("APP_ENV") or "production").lower() in ("development", "dev")

        def need(name: str) -> str:
            value = get(name)
            if not value:
                problems.append(f"{name} is required: {SETTINGS_BY_NAME[name].description}")
                return ""
            return value

        tenant_name = need("AZURE_AD_B2C_TENANT_NAME").removesuffix(".onmicrosoft.com")
        if tenant_name and not _TENANT_NAME.match(tenant_name):
            problems.append(
                f"AZURE_AD_B2C_TENANT_NAME must be the bare tenant name (contoso of "
                f"contoso.onmicrosoft.com), got {tenant_name!r}"
            )
        tenant_id = need("AZURE_AD_B2C_TENANT_ID")
        if tenant_id and not _GUID.match(tenant_id):
            problems.append(
                "AZURE_AD_B2C_TENANT_ID must be the B2C directory's GUID (Azure portal → your B2C "
                "tenant → Overview → Tenant ID), not a name"
            )
        client_id = need("AZURE_AD_B2C_CLIENT_ID")
        if client_id and not _GUID.match(client_id):
            problems.append(
                "AZURE_AD_B2C_CLIENT_ID must be the app registration's Application (client) ID, a GUID"
            )
        client_secret = need("AZURE_AD_B2C_CLIENT_SECRET")

        def https_base(name: str, value: str | None, *, host_only: bool) -> str:
            raw = value or ""
            if "://" not in raw:
                raw = f"https://{raw}"
            parts = urlsplit(raw)
            if not parts.netloc or (host_only and parts.path not in ("", "/")):
                problems.append(
                    f"{name} must be a host name such as login.microsoftonline.com, got {value!r}"
                )
                return ""
            if parts.scheme != "https" and not development:
                problems.append(f"{name} must use https outside development, got {value!r}")
            return f"{parts.scheme}://{parts.netloc}{'' if host_only else parts.path.rstrip('/')}"

        b2c_host = get("AZURE_AD_B2C_AUTHORITY_HOST")
        if not b2c_host or b2c_host.startswith("<tenant>"):
            b2c_host = f"{tenant_name}.b2clogin.com"
        storage_url = get("AZURE_STORAGE_ACCOUNT_URL")
        storage_cs = get("AZURE_STORAGE_CONNECTION_STRING")
        if not storage_url and not storage_cs:
            problems.append(
                "AZURE_STORAGE_ACCOUNT_URL (managed identity) or AZURE_STORAGE_CONNECTION_STRING "
                "(Azurite, dev) is required"
            )
        database_url = need("DATABASE_URL")
        if database_url and not database_url.startswith(("postgresql://", "postgres://")):
            problems.append("DATABASE_URL must be a postgresql:// URL")
        secret_key = get("SECRET_KEY") or ""
        if not secret_key:
            if development:
                secret_key = os.urandom(32).hex()  # sessions end when the dev server restarts
            else:
                problems.append(
                    "SECRET_KEY is required outside development: it signs the session cookie; "
                    "generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`"
                )

        def positive_int(name: str) -> int:
            value = get(name) or ""
            try:
                number = int(value)
            except ValueError:
                number = 0
            if number <= 0:
                problems.append(f"{name} must be a positive whole number, got {value!r}")
            return number

        settings_kwargs = dict(
            b2c_tenant_name=tenant_name,
            b2c_tenant_id=tenant_id.lower(),
            client_id=client_id,
            client_secret=client_secret,
            signup_signin_policy=get("AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY") or "",
            password_reset_policy=get("AZURE_AD_B2C_PASSWORD_RESET_POLICY") or "",
            profile_edit_policy=get("AZURE_AD_B2C_PROFILE_EDIT_POLICY") or "",
            b2c_authority_host=https_base("AZURE_AD_B2C_AUTHORITY_HOST", b2c_host, host_only=True),
            authority_host=https_base("AZURE_AUTHORITY_HOST", get("AZURE_AUTHORITY_HOST"), host_only=True),
            graph_endpoint=https_base("GRAPH_ENDPOINT", get("GRAPH_ENDPOINT"), host_only=False),
            storage_account_url=storage_url,
            storage_connection_string=storage_cs,
            storage_container=get("AZURE_STORAGE_CONTAINER") or "images",
            database_url=database_url,
            secret_key=secret_key,
            max_upload_bytes=positive_int("MAX_UPLOAD_MB") * 1024 * 1024,
            max_image_pixels=positive_int("MAX_IMAGE_PIXELS"),
            max_files_per_upload=positive_int("MAX_FILES_PER_UPLOAD"),
            email_cache_ttl=positive_int("EMAIL_CACHE_TTL_SECONDS"),
            link_ttl=positive_int("LINK_TTL_SECONDS"),
            development=development,
            appinsights_connection_string=get("APPLICATIONINSIGHTS_CONNECTION_STRING"),
        )
        for name in (
            "AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY",
            "AZURE_AD_B2C_PASSWORD_RESET_POLICY",
            "AZURE_AD_B2C_PROFILE_EDIT_POLICY",
        ):
            policy = get(name) or ""
            if not re.match(r"^[A-Za-z0-9_-]+$", policy):
                problems.append(f"{name} must be a user-flow name such as B2C_1_signupsignin, got {policy!r}")
        if problems:
            raise SettingsError("Invalid configuration:\n  - " + "\n  - ".join(problems))
        return cls(**settings_kwargs)  # type: ignore[arg-type]


def is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return bool(_GUID.match(value))


def get_settings() -> Settings:
    """The running app's settings (inside a request or app context)."""
    from flask import current_app  # only here: infra imports this module without an app

    settings: Settings = current_app.extensions["settings"]
    return settings
