"""App Service app settings, built from the app's own declaration (`app.settings.SETTINGS`).

`plan()` decides, for every declared setting, where its value comes from in Azure; `check()`
runs before any resource exists, so a setting the app requires and infra forgets fails
`pulumi preview` (and the tests) instead of the site. `render()` fills in resource outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import web

from app.settings import SETTINGS, SETTINGS_BY_NAME, Platform, Setting
from infra.config import B2CConfig, ConfigError, ExternalIdConfig, StackConfig


@dataclass(frozen=True)
class Fixed:
    """A literal value decided by the stack configuration or by infra."""

    value: str


@dataclass(frozen=True)
class FromResource:
    """An output of another component (blob endpoint, container, …), wired in `program.build`."""

    key: str


@dataclass(frozen=True)
class FromKeyVault:
    """A Key Vault reference: App Service resolves it, the value never enters the app settings."""

    secret_name: str


@dataclass(frozen=True)
class AppDefault:
    """Left unset so the app's own default (declared next to the setting) applies."""

    reason: str = "the app's default"


@dataclass(frozen=True)
class NotInAzure:
    """Deliberately absent in Azure."""

    reason: str


Source = Fixed | FromResource | FromKeyVault | AppDefault | NotInAzure

# Settings the platform needs that are not part of the app's contract.
PLATFORM_SETTINGS = frozenset(
    {
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID",
        "SCM_DO_BUILD_DURING_DEPLOYMENT",
        "PYTHONPATH",
    }
)


# The resource output of the schema owner's identity (photoshare:dbAuth=entra).
DB_OWNER_CLIENT_ID = "db_owner_client_id"


def _database_auth(cfg: StackConfig) -> dict[str, Source]:
    """Entra: no password anywhere, the owner migrates (database.py); password: one role."""
    if cfg.database.auth == "entra":
        return {
            "DATABASE_AUTH": Fixed("entra"),
            "DATABASE_OWNER_URL": FromKeyVault("database-owner-url"),
            "DATABASE_OWNER_CLIENT_ID": FromResource(DB_OWNER_CLIENT_ID),
        }
    one_role = "photoshare:dbAuth is password: the app migrates as the server's administrator"
    return {
        "DATABASE_AUTH": Fixed("password"),
        "DATABASE_OWNER_URL": NotInAzure(one_role),
        "DATABASE_OWNER_CLIENT_ID": NotInAzure(one_role),
    }


# The Key Vault secret holding each platform's client secret.
CLIENT_SECRET_NAMES: dict[Platform, str] = {
    "b2c": "b2c-client-secret",
    "external_id": "external-id-client-secret",
}
# The resource output of a registration the program creates (photoshare:…CreateApp).
CREATED_CLIENT_ID = "created_client_id"


class ContractError(ConfigError):
    """Infra and the app's settings declaration disagree; the message names each setting."""


def plan(cfg: StackConfig, settings: Iterable[Setting] | None = None) -> dict[str, Source]:
    """Where each declared setting's value comes from; every declared name gets an entry."""
    settings = SETTINGS if settings is None else settings
    declared = {s.name: s for s in settings}
    platform = cfg.platform
    managed: dict[str, Source] = {
        "IDENTITY_PLATFORM": Fixed(platform),
        **_identity(cfg),
        "AZURE_AUTHORITY_HOST": Fixed(cfg.authority_host) if cfg.authority_host else AppDefault(),
        "GRAPH_ENDPOINT": Fixed(cfg.graph_endpoint) if cfg.graph_endpoint else AppDefault(),
        "AZURE_STORAGE_ACCOUNT_URL": FromResource("storage_account_url"),
        "AZURE_STORAGE_CONNECTION_STRING": NotInAzure(
            "the app reaches Blob Storage with its managed identity; shared keys stay off"
        ),
        "AZURE_STORAGE_CONTAINER": FromResource("storage_container"),
        "DATABASE_URL": FromKeyVault("database-url"),
        **_database_auth(cfg),
        "SECRET_KEY": FromKeyVault("flask-secret-key"),
        "APP_ENV": Fixed("production"),
        "APPLICATIONINSIGHTS_CONNECTION_STRING": (
            FromResource("appinsights_connection_string")
            if cfg.monitoring
            else NotInAzure("photoshare:monitoring is false for this stack")
        ),
    }
    # The other platform's settings stay unset: the app refuses to start when one is set.
    for other in declared.values():
        if other.platform not in (None, platform):
            managed[other.name] = NotInAzure(
                f"IDENTITY_PLATFORM is {platform}; {other.name} belongs to {other.platform}"
            )
    problems = []
    for name in cfg.app_settings:
        setting = declared.get(name)
        if setting is None:
            problems.append(f"photoshare:appSettings.{name}: app/settings.py declares no such setting")
        elif setting.secret:
            problems.append(
                f"photoshare:appSettings.{name} is a secret; secrets come from Key Vault, "
                "never from plain stack config"
            )
        elif setting.platform not in (None, platform):
            problems.append(
                f"photoshare:appSettings.{name} is a setting of IDENTITY_PLATFORM={setting.platform}, "
                f"but this stack's platform is {platform}: the app would refuse to start"
            )
        elif name in managed:
            problems.append(
                f"photoshare:appSettings.{name} is set by infra itself; use its own stack key "
                "(see infra/README.md)"
            )
    if problems:
        raise ConfigError("Invalid photoshare:appSettings:\n  - " + "\n  - ".join(problems))

    sources: dict[str, Source] = {}
    for name, setting in declared.items():
        if name in managed:
            sources[name] = managed[name]
        elif name in cfg.app_settings:
            sources[name] = Fixed(cfg.app_settings[name])
        else:
            # A setting infra has not decided on yet: check() fails if the app requires it.
            sources[name] = AppDefault(f"default {setting.default!r}")
    for name in managed.keys() - declared.keys():
        sources[name] = managed[name]  # reported by check(): infra maps an undeclared setting
    return sources


def _identity(cfg: StackConfig) -> dict[str, Source]:
    """The chosen platform's settings: its directory, its app registration, its secret."""
    identity = cfg.identity
    client_id: Source = (
        FromResource(CREATED_CLIENT_ID) if identity.create_app else Fixed(identity.client_id or "")
    )
    secret = FromKeyVault(CLIENT_SECRET_NAMES[identity.platform])
    if isinstance(identity, ExternalIdConfig):
        return {
            "EXTERNAL_ID_TENANT_SUBDOMAIN": Fixed(identity.tenant_subdomain),
            "EXTERNAL_ID_TENANT_ID": Fixed(identity.tenant_id),
            "EXTERNAL_ID_CLIENT_ID": client_id,
            "EXTERNAL_ID_CLIENT_SECRET": secret,
            "EXTERNAL_ID_AUTHORITY": (
                Fixed(identity.authority)
                if identity.authority
                else AppDefault(SETTINGS_BY_NAME["EXTERNAL_ID_AUTHORITY"].shown_default or "")
            ),
        }
    assert isinstance(identity, B2CConfig)
    return {
        "AZURE_AD_B2C_TENANT_NAME": Fixed(identity.tenant_name),
        "AZURE_AD_B2C_TENANT_ID": Fixed(identity.tenant_id),
        "AZURE_AD_B2C_CLIENT_ID": client_id,
        "AZURE_AD_B2C_CLIENT_SECRET": secret,
        "AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY": Fixed(identity.signup_signin_policy),
        "AZURE_AD_B2C_PASSWORD_RESET_POLICY": Fixed(identity.password_reset_policy),
        "AZURE_AD_B2C_PROFILE_EDIT_POLICY": Fixed(identity.profile_edit_policy),
        "AZURE_AD_B2C_AUTHORITY_HOST": (
            Fixed(identity.authority_host) if identity.authority_host else AppDefault("<tenant>.b2clogin.com")
        ),
    }


def _has_value(source: Source) -> bool:
    if isinstance(source, Fixed):
        return bool(source.value)
    return isinstance(source, FromResource | FromKeyVault)


def check(sources: Mapping[str, Source], settings: Iterable[Setting] | None = None) -> None:
    """Raise ContractError unless every setting the app needs in production gets a value, and no
    setting of the other identity platform does (the app would refuse to start)."""
    settings = SETTINGS if settings is None else settings
    declared = {s.name: s for s in settings}
    chosen = sources.get("IDENTITY_PLATFORM")
    platform = chosen.value if isinstance(chosen, Fixed) and chosen.value else "b2c"
    problems = []
    for name in sorted(sources.keys() - declared.keys()):
        problems.append(f"{name}: infra sets it but app/settings.py does not declare it")
    for name in sorted(declared.keys() - sources.keys()):
        problems.append(f"{name}: declared by the app but infra decides no value source for it")
    for name, setting in declared.items():
        source = sources.get(name)
        if source is None:
            continue
        if setting.platform not in (None, platform):
            if _has_value(source):
                problems.append(
                    f"{name} is a setting of IDENTITY_PLATFORM={setting.platform}, but infra gives it "
                    f"a value on a {platform} site: the app refuses to start"
                )
            continue
        if setting.requirement in ("required", "outside_development") and not _has_value(source):
            problems.append(
                f"{name} is required by the app ({setting.description}) but infra gives it no "
                f"value; map it in infra/appsettings.py plan()"
            )
        if setting.secret and _has_value(source) and not isinstance(source, FromKeyVault):
            problems.append(f"{name} is a secret: it must be a Key Vault reference, not a plain value")
    storage = [s for s in declared.values() if s.requirement == "storage"]
    if storage and not any(_has_value(sources.get(s.name, AppDefault())) for s in storage):
        problems.append("one of " + " / ".join(s.name for s in storage) + " is required; infra gives neither")
    if problems:
        raise ContractError(
            "The app settings do not satisfy app/settings.py:\n  - " + "\n  - ".join(problems)
        )


def key_vault_reference(secret_uri: pulumi.Input[str]) -> pulumi.Output[str]:
    """The app setting value that makes App Service fetch the secret with the app's identity."""
    return pulumi.Output.concat("@Microsoft.KeyVault(SecretUri=", secret_uri, ")")


def render(
    sources: Mapping[str, Source],
    *,
    resources: Mapping[str, pulumi.Input[str]],
    secret_uris: Mapping[str, pulumi.Input[str]],
    platform: Mapping[str, pulumi.Input[str]],
) -> list[web.NameValuePairArgs]:
    """The web app's app settings: contract settings with a value, then platform settings."""
    missing = []
    values: dict[str, pulumi.Input[str]] = {}
    for name, source in sources.items():
        if isinstance(source, Fixed) and source.value:
            values[name] = source.value
        elif isinstance(source, FromResource):
            if source.key not in resources:
                missing.append(f"{name}: no resource output {source.key!r}")
                continue
            values[name] = resources[source.key]
        elif isinstance(source, FromKeyVault):
            if source.secret_name not in secret_uris:
                missing.append(f"{name}: no Key Vault secret {source.secret_name!r}")
                continue
            values[name] = key_vault_reference(secret_uris[source.secret_name])
    unknown = set(platform) - PLATFORM_SETTINGS
    if unknown or set(platform) & set(values):
        missing.append(f"unexpected platform settings {sorted(unknown | (set(platform) & set(values)))}")
    if missing:
        raise ContractError("Cannot build the app settings:\n  - " + "\n  - ".join(missing))
    values.update(platform)
    return [web.NameValuePairArgs(name=name, value=values[name]) for name in sorted(values)]
