"""Typed stack configuration, validated before the program creates anything.

Every problem is collected and reported at once, each naming the `photoshare:` key and the fix,
so `pulumi preview` fails with one readable message instead of a half-created environment.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypedDict

import pulumi

from app.identity_errors import diagnose
from app.settings import B2C_DIRECTORY, EXTERNAL_DIRECTORY, SETTINGS_BY_NAME, Directory, Invalid, Platform
from infra.secret_lifetime import DEFAULT_MONTHS, MAX_DAYS, MAX_MONTHS

NAMESPACE = "photoshare"


@dataclass(frozen=True)
class PlatformKeys:
    """How a stack chooses one identity platform and names that platform's directory and app."""

    stack_value: str  # of photoshare:identityPlatform
    prefix: str  # of its stack keys: b2cTenantId, externalIdTenantId, …
    directory: Directory
    keys: tuple[str, ...]  # every stack key of the platform, set only when it is the chosen one

    def key(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    @property
    def create_app_key(self) -> str:
        return self.key("CreateApp")

    @property
    def tenant_id_label(self) -> str:
        """`photoshare:b2cTenantId (AZURE_AD_B2C_TENANT_ID)`: how messages name the tenant id."""
        return f"{NAMESPACE}:{self.key('TenantId')} ({self.directory.tenant_id_setting})"


PLATFORMS: dict[Platform, PlatformKeys] = {
    "b2c": PlatformKeys(
        stack_value="b2c",
        prefix="b2c",
        directory=B2C_DIRECTORY,
        keys=(
            "b2cTenantName",
            "b2cTenantId",
            "b2cClientId",
            "b2cClientSecret",
            "b2cCreateApp",
            "b2cSignupSigninPolicy",
            "b2cPasswordResetPolicy",
            "b2cProfileEditPolicy",
            "b2cAuthorityHost",
        ),
    ),
    "external_id": PlatformKeys(
        stack_value="externalId",
        prefix="externalId",
        directory=EXTERNAL_DIRECTORY,
        keys=(
            "externalIdTenantSubdomain",
            "externalIdTenantId",
            "externalIdClientId",
            "externalIdClientSecret",
            "externalIdCreateApp",
            "externalIdAuthority",
        ),
    ),
}


def _tenant_mixup(keys: PlatformKeys) -> str:
    directory = dataclasses.replace(keys.directory, tenant_id_setting=keys.tenant_id_label)
    return diagnose("deploying_tenant", directory).detail


# The source article's mistake, caught before anything is created: the identity directory's
# tenant id is the id of the directory being deployed with (AADSTS700016/AADSTS90002 in the app,
# otherwise; with External ID, a workforce tenant's id on the ciamlogin.com host).
TENANT_MIXUPS: dict[Platform, str] = {platform: _tenant_mixup(keys) for platform, keys in PLATFORMS.items()}
TENANT_MIXUP = TENANT_MIXUPS["b2c"]

# A client secret the program creates lapses photoshare:appSecretMonths (default 12) after its
# creation, or on photoshare:appSecretEndDate. Entra allows at most 24 months and recommends less
# than 12 (MicrosoftDocs/entra-docs docs/identity-platform/how-to-add-credentials.md, "Add a client
# secret"); the limits live with the resource that computes the date (infra/secret_lifetime.py).
APP_SECRET_MAX_DAYS = MAX_DAYS
APP_SECRET_MAX_MONTHS = MAX_MONTHS
APP_SECRET_DEFAULT_MONTHS = DEFAULT_MONTHS

PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
POSTGRES_VERSIONS = ("14", "15", "16", "17")
POSTGRES_STORAGE_GB = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32767)
_POSTGRES_TIERS = {"B": "Burstable", "D": "GeneralPurpose", "E": "MemoryOptimized"}
_POSTGRES_SKU = re.compile(r"^Standard_([BDE])\w+$")
# Free and Shared plans have no always-on and no VNet integration.
_APP_SERVICE_SKU = re.compile(r"^(B[1-3]|S[1-3]|P[0-3]v[2-4]|P[1-5]mv[34]|I[1-6]v2)$")
# The most instances a plan of each tier runs, from the "Scale out (maximum instances)" row of
# App Service's limits (MicrosoftDocs/azure-docs includes/azure-websites-limits.md, shown in
# articles/azure-resource-manager/management/azure-subscription-service-limits.md): Basic 3,
# Standard 10, Premium 30 "for v2 and v3" (v4 and the memory-optimized sizes taken as v3's).
# Isolated plans run only in an App Service Environment, which this program does not create.
_APP_SERVICE_MAX_INSTANCES = (
    (re.compile(r"^B[1-3]$"), "Basic", 3),
    (re.compile(r"^S[1-3]$"), "Standard", 10),
    (re.compile(r"^P[0-3]v[2-4]$|^P[1-5]mv[34]$"), "Premium", 30),
)
ENVIRONMENTS = ("development", "production")
# Firewall ranges wider than this are not "narrow"; use dbNetwork=vnet instead.
_MAX_FIREWALL_ADDRESSES = 256


class ConfigError(pulumi.RunError):
    """The stack configuration is unusable; the message lists every problem and its fix."""


@dataclass(frozen=True, kw_only=True)
class FirewallRange:
    """One inclusive IPv4 range allowed to reach PostgreSQL in public mode."""

    name: str
    start: str
    end: str


@dataclass(frozen=True, kw_only=True)
class DirectoryConfig:
    """The identity directory the site signs users in with, and its app registration."""

    platform: ClassVar[Platform]
    tenant_id: str
    client_id: str | None  # None when create_app: the registration is created by the program
    client_secret: pulumi.Output[str] | None = field(repr=False)
    create_app: bool
    # When create_app: the created secret lapses on secret_end_date (RFC 3339) if configured, else
    # secret_months after the secret's creation (infra/secret_lifetime.py fixes that date once).
    secret_end_date: str | None = None
    secret_months: int = APP_SECRET_DEFAULT_MONTHS


@dataclass(frozen=True, kw_only=True)
class B2CConfig(DirectoryConfig):
    """An Azure AD B2C directory with user flows."""

    platform: ClassVar[Platform] = "b2c"
    tenant_name: str
    signup_signin_policy: str
    password_reset_policy: str
    profile_edit_policy: str
    authority_host: str | None


@dataclass(frozen=True, kw_only=True)
class ExternalIdConfig(DirectoryConfig):
    """A Microsoft Entra External ID external tenant (`<subdomain>.ciamlogin.com`)."""

    platform: ClassVar[Platform] = "external_id"
    tenant_subdomain: str
    authority: str | None  # None: the app's default, https://{subdomain}.ciamlogin.com/{tenant id}/v2.0


IdentityConfig = B2CConfig | ExternalIdConfig


@dataclass(frozen=True, kw_only=True)
class DatabaseConfig:
    """PostgreSQL Flexible Server sizing and network access."""

    version: str
    sku_name: str
    sku_tier: str
    storage_gb: int
    backup_retention_days: int
    high_availability: bool
    network: Literal["vnet", "public"]
    firewall_rules: tuple[FirewallRange, ...]
    app_ip_slots: int
    # entra: no password between the app and its data; password: the documented fallback.
    auth: Literal["entra", "password"] = "entra"


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    """App Service plan size and the Python runtime (the package is built for the same one)."""

    sku: str
    capacity: int
    python_version: str


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """Everything the program reads from `Pulumi.<stack>.yaml`, typed and validated."""

    project: str
    stack: str
    environment: Literal["development", "production"]
    location: str
    owner: str | None
    database: DatabaseConfig
    web: WebConfig
    storage_allow_shared_key: bool
    blob_soft_delete_days: int
    monitoring: bool
    log_retention_days: int
    authority_host: str | None
    graph_endpoint: str | None
    vnet_address_space: str
    app_settings: dict[str, str]
    # The chosen identity platform's configuration: exactly one of the two.
    b2c: B2CConfig | None = None
    external_id: ExternalIdConfig | None = None

    def __post_init__(self) -> None:
        if (self.b2c is None) == (self.external_id is None):
            raise ValueError("StackConfig takes exactly one of b2c and external_id")

    @property
    def identity(self) -> IdentityConfig:
        """The chosen platform's directory and app registration."""
        identity = self.b2c or self.external_id
        assert identity is not None  # __post_init__
        return identity

    @property
    def platform(self) -> Platform:
        return self.identity.platform

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def tags(self) -> dict[str, str]:
        tags = {"project": self.project, "stack": self.stack}
        if self.owner:
            tags["owner"] = self.owner
        return tags


class _Reader:
    """Typed reads from pulumi.Config that record problems instead of raising on the first."""

    def __init__(self, config: pulumi.Config) -> None:
        self.config = config
        self.problems: list[str] = []

    def key(self, name: str) -> str:
        return f"{NAMESPACE}:{name}"

    def text(self, name: str, default: str | None = None, *, required: str | None = None) -> str | None:
        value = (self.config.get(name) or "").strip()
        if value:
            return value
        if required:
            self.problems.append(f"{self.key(name)} is required: {required}")
        return default

    def integer(self, name: str, default: int, *, low: int, high: int, why: str = "") -> int:
        raw = self.config.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{self.key(name)} must be a whole number, got {raw!r}")
            return default
        if not low <= value <= high:
            self.problems.append(f"{self.key(name)} must be between {low} and {high}, got {value}{why}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.config.get(name)
        if raw is None or raw == "":
            return default
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        self.problems.append(f"{self.key(name)} must be true or false, got {raw!r}")
        return default

    def structured(self, name: str, default: Any) -> Any:
        raw = self.config.get(name)
        if raw is None or raw == "":
            return default
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            self.problems.append(
                f"{self.key(name)} must be structured YAML/JSON (set it with `pulumi config set "
                f"--path` or edit Pulumi.<stack>.yaml), got {raw!r}"
            )
            return default

    def is_set(self, name: str) -> bool:
        """Whether the stack sets the key at all (secret or not, valid or not)."""
        return self.config.get_secret(name) is not None

    def setting(
        self,
        name: str,
        variable: str,
        *,
        required: bool = False,
        app_default: bool = True,
        spellings: Mapping[str, str] | None = None,
    ) -> Any:
        """A stack key that becomes one of the app's settings, parsed by the app's own parser
        (app/settings.py), so both refuse the same values with the same words. Unset, it is the
        app's default (or None with `app_default=False`: the app setting is then left out).
        `spellings` maps a stack spelling to the app's (`externalId` → `external_id`)."""
        declared = SETTINGS_BY_NAME[variable]
        given = (self.config.get(name) or "").strip()
        value = (spellings or {}).get(given, given) or (declared.default if app_default else None)
        if value is None:
            if required:
                self.problems.append(f"{self.key(name)} {declared.missing} ({variable})")
            return None
        try:
            return declared.read(value)  # as in Azure: production rules (https only)
        except Invalid as exc:
            self.problems.append(f"{self.key(name)} ({variable}) {exc}")
            return None


def _firewall_rules(reader: _Reader, raw: Any) -> tuple[FirewallRange, ...]:
    """`["203.0.113.7", "198.51.100.0/28", "192.0.2.10-192.0.2.20"]` → named inclusive ranges."""
    key = reader.key("dbFirewallRules")
    if not isinstance(raw, list):
        reader.problems.append(f"{key} must be a list of IPv4 addresses, CIDR blocks or a-b ranges")
        return ()
    rules: list[FirewallRange] = []
    for index, item in enumerate(raw):
        text = str(item).strip()
        try:
            if "-" in text:
                first, last = (ipaddress.IPv4Address(p.strip()) for p in text.split("-", 1))
            else:
                network = ipaddress.IPv4Network(text, strict=False)
                first, last = network.network_address, network.broadcast_address
        except ValueError:
            reader.problems.append(f"{key}[{index}] is not an IPv4 address, CIDR block or range: {text!r}")
            continue
        if int(first) == 0 or int(last) == 0:
            reader.problems.append(
                f"{key}[{index}] uses 0.0.0.0, Azure's 'allow every Azure service' rule, which admits "
                "other tenants too; list your own addresses or use photoshare:dbNetwork=vnet"
            )
            continue
        if int(last) < int(first) or int(last) - int(first) + 1 > _MAX_FIREWALL_ADDRESSES:
            reader.problems.append(
                f"{key}[{index}] {text!r} is not a narrow range (at most {_MAX_FIREWALL_ADDRESSES} "
                "addresses); use photoshare:dbNetwork=vnet for wider access"
            )
            continue
        rules.append(FirewallRange(name=f"config-{index}", start=str(first), end=str(last)))
    return tuple(rules)


def load(config: pulumi.Config | None = None) -> StackConfig:
    """Read and validate the stack's configuration; raise ConfigError naming every problem."""
    r = _Reader(config or pulumi.Config(NAMESPACE))
    result = StackConfig(
        project=pulumi.get_project(),
        stack=pulumi.get_stack(),
        environment=_environment(r),
        location=_location(r),
        owner=r.text("owner"),
        database=_database(r),
        web=_web(r),
        storage_allow_shared_key=r.flag("storageAllowSharedKey", False),
        blob_soft_delete_days=r.integer("blobSoftDeleteDays", 7, low=1, high=365),
        monitoring=r.flag("monitoring", True),
        log_retention_days=r.integer("logRetentionDays", 30, low=30, high=730),
        authority_host=r.setting("authorityHost", "AZURE_AUTHORITY_HOST", app_default=False),
        graph_endpoint=r.setting("graphEndpoint", "GRAPH_ENDPOINT", app_default=False),
        vnet_address_space=_vnet_address_space(r),
        app_settings=_app_settings(r),
        **_identity(r),
    )
    if r.problems:
        raise ConfigError(
            f"Stack {result.stack!r} is not configured correctly:\n  - " + "\n  - ".join(r.problems)
        )
    return result


def _environment(r: _Reader) -> Literal["development", "production"]:
    """`production` turns on what must not be undone by mistake (Key Vault purge protection)."""
    value = r.text("environment", "development") or ""
    if value not in ENVIRONMENTS:
        r.problems.append(
            f"{r.key('environment')} must be development or production, got {value!r}; production "
            "turns on Key Vault purge protection, which can never be turned off again"
        )
    return "production" if value == "production" else "development"


def _location(r: _Reader) -> str:
    location = (pulumi.Config("azure-native").get("location") or "").strip()
    if not location:
        r.problems.append(
            "azure-native:location is required: the Azure region, e.g. "
            "`pulumi config set azure-native:location westeurope`"
        )
    return location


class _ChosenIdentity(TypedDict, total=False):
    b2c: B2CConfig
    external_id: ExternalIdConfig


def _identity(r: _Reader) -> _ChosenIdentity:
    """The chosen platform's keys, read as the app reads its settings; the other platform's keys
    must be absent, since the app refuses to start with a setting of the other platform."""
    stack_values = {keys.stack_value: platform for platform, keys in PLATFORMS.items()}
    read: Platform | None = r.setting("identityPlatform", "IDENTITY_PLATFORM", spellings=stack_values)
    platform: Platform = read or "b2c"  # None: refused, and reported; read the rest as B2C
    chosen = PLATFORMS[platform]
    default = "" if r.is_set("identityPlatform") else " (the default)"
    for other in (keys for name, keys in PLATFORMS.items() if name != platform and read):
        stray = [r.key(k) for k in other.keys if r.is_set(k)]
        if stray:
            one = len(stray) == 1
            r.problems.append(
                f"{', '.join(stray)} {'is a key' if one else 'are keys'} of "
                f"identityPlatform={other.stack_value}, but {r.key('identityPlatform')} is "
                f"{chosen.stack_value}{default}: remove {'it' if one else 'them'} (`pulumi config rm "
                f"<key>`), or set identityPlatform={other.stack_value} and every key that platform needs"
            )
    if platform == "external_id":
        return {"external_id": _external_id(r, chosen)}
    return {"b2c": _b2c(r, chosen)}


class _Registration(TypedDict):
    tenant_id: str
    client_id: str | None
    client_secret: pulumi.Output[str] | None
    create_app: bool
    secret_end_date: str | None
    secret_months: int


def _registration(r: _Reader, keys: PlatformKeys) -> _Registration:
    """The directory's tenant id and the app registration: given, or created by the program."""
    directory = keys.directory
    create_key = keys.create_app_key
    create_app = r.flag(create_key, False)
    tenant_id = r.setting(keys.key("TenantId"), directory.tenant_id_setting, required=True) or ""
    client_id: str | None = None
    client_secret: pulumi.Output[str] | None = None
    if create_app:
        for key in (keys.key("ClientId"), keys.key("ClientSecret")):
            if r.is_set(key):
                r.problems.append(
                    f"{r.key(key)} must not be set with {r.key(create_key)}=true: the program "
                    "creates the app registration and its secret"
                )
    else:
        client_id = r.setting(keys.key("ClientId"), directory.client_id_setting, required=True) or ""
        if client_id and client_id == tenant_id:
            r.problems.append(
                f"{r.key(keys.key('ClientId'))} equals {r.key(keys.key('TenantId'))}: the client id "
                "is the app registration's Application (client) ID, not the directory's id"
            )
        client_secret = _client_secret(r, keys.key("ClientSecret"), directory.secret_setting)
    return _Registration(
        tenant_id=tenant_id,
        client_id=client_id,
        client_secret=client_secret,
        create_app=create_app,
        secret_end_date=_secret_end_date(r, create_app, create_key),
        secret_months=_secret_months(r, create_app, create_key),
    )


def _b2c(r: _Reader, keys: PlatformKeys) -> B2CConfig:
    return B2CConfig(
        **_registration(r, keys),
        tenant_name=r.setting("b2cTenantName", "AZURE_AD_B2C_TENANT_NAME", required=True) or "",
        signup_signin_policy=r.setting("b2cSignupSigninPolicy", "AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY") or "",
        password_reset_policy=r.setting("b2cPasswordResetPolicy", "AZURE_AD_B2C_PASSWORD_RESET_POLICY") or "",
        profile_edit_policy=r.setting("b2cProfileEditPolicy", "AZURE_AD_B2C_PROFILE_EDIT_POLICY") or "",
        authority_host=r.setting("b2cAuthorityHost", "AZURE_AD_B2C_AUTHORITY_HOST"),
    )


def _external_id(r: _Reader, keys: PlatformKeys) -> ExternalIdConfig:
    return ExternalIdConfig(
        **_registration(r, keys),
        tenant_subdomain=(
            r.setting("externalIdTenantSubdomain", "EXTERNAL_ID_TENANT_SUBDOMAIN", required=True) or ""
        ),
        authority=r.setting("externalIdAuthority", "EXTERNAL_ID_AUTHORITY", app_default=False),
    )


def _client_secret(r: _Reader, key: str, variable: str) -> pulumi.Output[str] | None:
    secret = r.config.get_secret(key)
    if secret is None:
        r.problems.append(
            f"{r.key(key)} is required: {variable}, set it with "
            f"`pulumi config set --secret {key}` (never as plain text)"
        )
    elif not pulumi.runtime.is_config_secret(r.key(key)):
        r.problems.append(
            f"{r.key(key)} is stored in plain text in Pulumi.<stack>.yaml; set it "
            f"again with `pulumi config set --secret {key}` and rotate the secret"
        )
    return secret


def _only_with_create_app(r: _Reader, key: str, create_key: str) -> None:
    r.problems.append(
        f"{r.key(key)} only applies when the program creates the app registration "
        f"({r.key(create_key)}=true); a secret you configure yourself lapses on the date "
        "chosen when it was created"
    )


def _secret_months(r: _Reader, create_app: bool, create_key: str) -> int:
    """How long the created client secret lives when no end date is configured. Another number
    rotates it: the date is computed anew, and a new password replaces the old one."""
    key = "appSecretMonths"
    if not create_app:
        if r.text(key) is not None:
            _only_with_create_app(r, key, create_key)
        return APP_SECRET_DEFAULT_MONTHS
    return r.integer(
        key,
        APP_SECRET_DEFAULT_MONTHS,
        low=1,
        high=APP_SECRET_MAX_MONTHS,
        why=f": Entra lets a client secret live at most {APP_SECRET_MAX_MONTHS} months",
    )


def _secret_end_date(r: _Reader, create_app: bool, create_key: str) -> str | None:
    """An explicit date the client secret the program creates lapses on; None: appSecretMonths
    after its creation. A later date rotates it: a password's end date cannot change in place, so
    a new password replaces the old one."""
    key = "appSecretEndDate"
    raw = r.text(key)
    if not create_app:
        if raw is not None:
            _only_with_create_app(r, key, create_key)
        return None
    if raw is None:
        return None
    today = datetime.datetime.now(datetime.UTC).date()
    latest = today + datetime.timedelta(days=APP_SECRET_MAX_DAYS)
    example = (today + datetime.timedelta(days=365)).isoformat()
    try:
        end = datetime.date.fromisoformat(raw)
    except ValueError:
        r.problems.append(f"{r.key(key)} must be a date such as {example}, got {raw!r}")
        return None
    if end <= today:
        r.problems.append(
            f"{r.key(key)} {raw} has passed: the client secret lapsed then; set a later date "
            f"(e.g. {example}) and run `pulumi up` to create a new one"
        )
    elif end > latest:
        r.problems.append(
            f"{r.key(key)} {raw} is more than 24 months ahead, longer than Entra lets a client "
            f"secret live; choose {latest.isoformat()} or earlier"
        )
    return f"{end.isoformat()}T00:00:00Z"


def _database(r: _Reader) -> DatabaseConfig:
    sku_name = r.text("dbSku", "Standard_B1ms") or ""
    sku_match = _POSTGRES_SKU.match(sku_name)
    if not sku_match:
        r.problems.append(
            f"{r.key('dbSku')} must be a Flexible Server compute size such as Standard_B1ms, "
            f"Standard_D2ds_v5 or Standard_E2ds_v5, got {sku_name!r}"
        )
    sku_tier = _POSTGRES_TIERS[sku_match.group(1)] if sku_match else "Burstable"
    version = r.text("dbVersion", "16") or ""
    if version not in POSTGRES_VERSIONS:
        r.problems.append(
            f"{r.key('dbVersion')} must be one of {', '.join(POSTGRES_VERSIONS)}, got {version!r}"
        )
    storage_gb = r.integer("dbStorageGb", 32, low=32, high=32767)
    if storage_gb not in POSTGRES_STORAGE_GB:
        r.problems.append(
            f"{r.key('dbStorageGb')} must be one of "
            f"{', '.join(map(str, POSTGRES_STORAGE_GB))}, got {storage_gb}"
        )
    high_availability = r.flag("dbHighAvailability", False)
    if high_availability and sku_tier == "Burstable":
        r.problems.append(
            f"{r.key('dbHighAvailability')}=true needs a GeneralPurpose or MemoryOptimized "
            f"{r.key('dbSku')} (e.g. Standard_D2ds_v5); Burstable servers have no high availability"
        )
    network = r.text("dbNetwork", "vnet") or ""
    if network not in ("vnet", "public"):
        r.problems.append(f"{r.key('dbNetwork')} must be vnet or public, got {network!r}")
        network = "vnet"
    auth = r.text("dbAuth", "entra") or ""
    if auth not in ("entra", "password"):
        r.problems.append(
            f"{r.key('dbAuth')} must be entra (Microsoft Entra tokens from the app's managed "
            f"identities, no password) or password (the server administrator's password), got {auth!r}"
        )
    raw_rules = r.structured("dbFirewallRules", [])
    firewall_rules = _firewall_rules(r, raw_rules)
    if network == "vnet" and raw_rules:
        r.problems.append(
            f"{r.key('dbFirewallRules')} only applies with photoshare:dbNetwork=public: a "
            "VNet-integrated server has no public endpoint"
        )
    return DatabaseConfig(
        version=version,
        sku_name=sku_name,
        sku_tier=sku_tier,
        storage_gb=storage_gb,
        backup_retention_days=r.integer("dbBackupRetentionDays", 7, low=7, high=35),
        high_availability=high_availability,
        network="public" if network == "public" else "vnet",
        firewall_rules=firewall_rules,
        auth="password" if auth == "password" else "entra",
        app_ip_slots=r.integer("dbAppIpSlots", 16, low=1, high=64),
    )


def _web(r: _Reader) -> WebConfig:
    sku = r.text("appServiceSku", "B1") or ""
    if not _APP_SERVICE_SKU.match(sku):
        r.problems.append(
            f"{r.key('appServiceSku')} must be a Basic or higher Linux plan size such as B1, S1 or "
            f"P0v3 (Free and Shared plans have no always-on or VNet integration), got {sku!r}"
        )
    python_version = r.text("pythonVersion", "3.11") or ""
    if python_version not in PYTHON_VERSIONS:
        r.problems.append(
            f"{r.key('pythonVersion')} must be one of {', '.join(PYTHON_VERSIONS)}, got {python_version!r}"
        )
    return WebConfig(sku=sku, capacity=_capacity(r, sku), python_version=python_version)


def _capacity(r: _Reader, sku: str) -> int:
    """Instances of the plan: at most what the SKU's tier runs."""
    if sku.startswith("I") and _APP_SERVICE_SKU.match(sku):
        r.problems.append(
            f"{r.key('appServiceSku')} {sku} is an Isolated plan, which runs only in an App Service "
            "Environment, and this program creates none; choose a Premium size such as P1v3 "
            "(up to 30 instances)"
        )
    tier, high = next(
        ((t, m) for pattern, t, m in _APP_SERVICE_MAX_INSTANCES if pattern.match(sku)), ("", 30)
    )
    larger = "" if high == 30 else "; a Premium plan such as P1v3 runs up to 30"
    why = f": a {tier} plan ({sku}) runs at most {high} instances{larger}" if tier else ""
    capacity = r.integer("appServiceCapacity", 1, low=1, high=high, why=why)
    return capacity


def _vnet_address_space(r: _Reader) -> str:
    space = r.text("vnetAddressSpace", "10.20.0.0/16") or ""
    try:
        if ipaddress.IPv4Network(space).prefixlen > 22:
            r.problems.append(
                f"{r.key('vnetAddressSpace')} must be /22 or larger: three /24 subnets (the app, "
                f"PostgreSQL, Key Vault's private endpoint), got {space}"
            )
    except ValueError:
        r.problems.append(f"{r.key('vnetAddressSpace')} must be an IPv4 CIDR block, got {space!r}")
    return space


def _app_settings(r: _Reader) -> dict[str, str]:
    """Extra app settings; a declared one is checked by the app's parser (which app settings
    may be set this way at all is decided in infra/appsettings.py)."""
    raw = r.structured("appSettings", {})
    if not isinstance(raw, dict):
        r.problems.append(f"{r.key('appSettings')} must be a map of setting name to value")
        return {}
    values = {str(k): str(v) for k, v in raw.items()}
    for name, value in values.items():
        declared = SETTINGS_BY_NAME.get(name)
        if declared is None or declared.secret:
            continue
        try:
            declared.read(value)
        except Invalid as exc:
            r.problems.append(f"{r.key('appSettings')}.{name} {exc}")
    return values


def check_deploying_tenant(cfg: StackConfig, deploying_tenant_id: str) -> None:
    """Refuse the source article's mistake: the deploying directory's tenant id given as the
    identity directory's (the B2C directory, or the external tenant).

    The app's Graph token would then come from the wrong directory (AADSTS700016/AADSTS90002).
    """
    tenant_id = cfg.identity.tenant_id
    if tenant_id and tenant_id.lower() == deploying_tenant_id.lower():
        raise ConfigError(TENANT_MIXUPS[cfg.platform])
