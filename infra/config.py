"""Typed stack configuration, validated before the program creates anything.

Every problem is collected and reported at once, each naming the `photoshare:` key and the fix,
so `pulumi preview` fails with one readable message instead of a half-created environment.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi

from app.settings import SETTINGS_BY_NAME, is_guid

NAMESPACE = "photoshare"

TENANT_MIXUP = (
    "AZURE_AD_B2C_TENANT_ID (photoshare:b2cTenantId) is the tenant you are deploying with, "
    "i.e. your main directory; use the B2C directory's id (Azure portal → B2C tenant → Overview)"
)

PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
POSTGRES_VERSIONS = ("14", "15", "16", "17")
POSTGRES_STORAGE_GB = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32767)
_POSTGRES_TIERS = {"B": "Burstable", "D": "GeneralPurpose", "E": "MemoryOptimized"}
_POSTGRES_SKU = re.compile(r"^Standard_([BDE])\w+$")
# Free and Shared plans have no always-on and no VNet integration.
_APP_SERVICE_SKU = re.compile(r"^(B[1-3]|S[1-3]|P[0-3]v[2-4]|P[1-5]mv[34]|I[1-6]v2)$")
_POLICY = re.compile(r"^[A-Za-z0-9_-]+$")
_TENANT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,255}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d+)?$")
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
class B2CConfig:
    """The B2C directory and app registration the deployed site signs users in with."""

    tenant_name: str
    tenant_id: str
    client_id: str | None  # None when create_app: the registration is created by the program
    client_secret: pulumi.Output[str] | None = field(repr=False)
    signup_signin_policy: str
    password_reset_policy: str
    profile_edit_policy: str
    authority_host: str | None
    create_app: bool


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
    location: str
    owner: str | None
    b2c: B2CConfig
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

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        raw = self.config.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{self.key(name)} must be a whole number, got {raw!r}")
            return default
        if not low <= value <= high:
            self.problems.append(f"{self.key(name)} must be between {low} and {high}, got {value}")
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


def _host(reader: _Reader, name: str, setting: str) -> str | None:
    value = reader.text(name)
    if value is None:
        return None
    bare = value.removeprefix("https://").rstrip("/")
    if value.startswith("http://") or not _HOST.match(bare):
        reader.problems.append(
            f"{reader.key(name)} ({setting}) must be an https host name such as "
            f"{SETTINGS_BY_NAME[setting].default}, got {value!r}"
        )
    return bare


def load(config: pulumi.Config | None = None) -> StackConfig:
    """Read and validate the stack's configuration; raise ConfigError naming every problem."""
    cfg = config or pulumi.Config(NAMESPACE)
    r = _Reader(cfg)
    problems = r.problems

    location = (pulumi.Config("azure-native").get("location") or "").strip()
    if not location:
        problems.append(
            "azure-native:location is required: the Azure region, e.g. "
            "`pulumi config set azure-native:location westeurope`"
        )

    # --- B2C ---------------------------------------------------------------------------------
    create_app = r.flag("b2cCreateApp", False)
    tenant_name = (
        r.text(
            "b2cTenantName",
            "",
            required="AZURE_AD_B2C_TENANT_NAME, the B2C tenant's short name "
            "(contoso of contoso.onmicrosoft.com)",
        )
        or ""
    )
    if tenant_name and not _TENANT_NAME.match(tenant_name):
        problems.append(
            f"{r.key('b2cTenantName')} (AZURE_AD_B2C_TENANT_NAME) must be the bare tenant name, "
            f"e.g. contoso rather than contoso.onmicrosoft.com or a URL, got {tenant_name!r}"
        )
    tenant_id = (
        r.text(
            "b2cTenantId",
            "",
            required="AZURE_AD_B2C_TENANT_ID, the B2C directory's GUID (Azure portal "
            "→ B2C tenant → Overview → Tenant ID)",
        )
        or ""
    )
    if tenant_id and not is_guid(tenant_id):
        problems.append(
            f"{r.key('b2cTenantId')} (AZURE_AD_B2C_TENANT_ID) must be the B2C directory's GUID "
            f"(Azure portal → B2C tenant → Overview → Tenant ID), not a name, got {tenant_id!r}"
        )
    client_id: str | None = None
    client_secret: pulumi.Output[str] | None = None
    if create_app:
        for key, present in (
            ("b2cClientId", cfg.get("b2cClientId") is not None),
            ("b2cClientSecret", cfg.get_secret("b2cClientSecret") is not None),
        ):
            if present:
                problems.append(
                    f"{r.key(key)} must not be set with photoshare:b2cCreateApp=true: the program "
                    "creates the app registration and its secret"
                )
    else:
        client_id = (
            r.text(
                "b2cClientId",
                "",
                required="AZURE_AD_B2C_CLIENT_ID, the app registration's "
                "Application (client) ID in the B2C tenant (or set photoshare:b2cCreateApp=true)",
            )
            or ""
        )
        if client_id and not is_guid(client_id):
            problems.append(
                f"{r.key('b2cClientId')} (AZURE_AD_B2C_CLIENT_ID) must be the app registration's "
                f"Application (client) ID, a GUID, got {client_id!r}"
            )
        if client_id and tenant_id and client_id.lower() == tenant_id.lower():
            problems.append(
                f"{r.key('b2cClientId')} equals {r.key('b2cTenantId')}: the client id is the app "
                "registration's Application (client) ID, not the directory's id"
            )
        client_secret = cfg.get_secret("b2cClientSecret")
        if client_secret is None:
            problems.append(
                f"{r.key('b2cClientSecret')} is required: AZURE_AD_B2C_CLIENT_SECRET, set it with "
                "`pulumi config set --secret b2cClientSecret` (never as plain text)"
            )
        elif not pulumi.runtime.is_config_secret(r.key("b2cClientSecret")):
            problems.append(
                f"{r.key('b2cClientSecret')} is stored in plain text in Pulumi.<stack>.yaml; set it "
                "again with `pulumi config set --secret b2cClientSecret` and rotate the secret"
            )
    policies = {}
    for key, setting in (
        ("b2cSignupSigninPolicy", "AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY"),
        ("b2cPasswordResetPolicy", "AZURE_AD_B2C_PASSWORD_RESET_POLICY"),
        ("b2cProfileEditPolicy", "AZURE_AD_B2C_PROFILE_EDIT_POLICY"),
    ):
        policy = r.text(key, SETTINGS_BY_NAME[setting].default) or ""
        if not _POLICY.match(policy):
            problems.append(
                f"{r.key(key)} ({setting}) must be a user-flow name such as "
                f"{SETTINGS_BY_NAME[setting].default}, got {policy!r}"
            )
        policies[key] = policy
    b2c = B2CConfig(
        tenant_name=tenant_name,
        tenant_id=tenant_id.lower(),
        client_id=client_id,
        client_secret=client_secret,
        signup_signin_policy=policies["b2cSignupSigninPolicy"],
        password_reset_policy=policies["b2cPasswordResetPolicy"],
        profile_edit_policy=policies["b2cProfileEditPolicy"],
        authority_host=_host(r, "b2cAuthorityHost", "AZURE_AD_B2C_AUTHORITY_HOST"),
        create_app=create_app,
    )

    # --- Database ----------------------------------------------------------------------------
    sku_name = r.text("dbSku", "Standard_B1ms") or ""
    sku_match = _POSTGRES_SKU.match(sku_name)
    if not sku_match:
        problems.append(
            f"{r.key('dbSku')} must be a Flexible Server compute size such as Standard_B1ms, "
            f"Standard_D2ds_v5 or Standard_E2ds_v5, got {sku_name!r}"
        )
    sku_tier = _POSTGRES_TIERS[sku_match.group(1)] if sku_match else "Burstable"
    version = r.text("dbVersion", "16") or ""
    if version not in POSTGRES_VERSIONS:
        problems.append(
            f"{r.key('dbVersion')} must be one of {', '.join(POSTGRES_VERSIONS)}, got {version!r}"
        )
    storage_gb = r.integer("dbStorageGb", 32, low=32, high=32767)
    if storage_gb not in POSTGRES_STORAGE_GB:
        problems.append(
            f"{r.key('dbStorageGb')} must be one of "
            f"{', '.join(map(str, POSTGRES_STORAGE_GB))}, got {storage_gb}"
        )
    high_availability = r.flag("dbHighAvailability", False)
    if high_availability and sku_tier == "Burstable":
        problems.append(
            f"{r.key('dbHighAvailability')}=true needs a GeneralPurpose or MemoryOptimized "
            f"{r.key('dbSku')} (e.g. Standard_D2ds_v5); Burstable servers have no high availability"
        )
    network = r.text("dbNetwork", "vnet") or ""
    if network not in ("vnet", "public"):
        problems.append(f"{r.key('dbNetwork')} must be vnet or public, got {network!r}")
        network = "vnet"
    raw_rules = r.structured("dbFirewallRules", [])
    firewall_rules = _firewall_rules(r, raw_rules)
    if network == "vnet" and raw_rules:
        problems.append(
            f"{r.key('dbFirewallRules')} only applies with photoshare:dbNetwork=public: a "
            "VNet-integrated server has no public endpoint"
        )
    database = DatabaseConfig(
        version=version,
        sku_name=sku_name,
        sku_tier=sku_tier,
        storage_gb=storage_gb,
        backup_retention_days=r.integer("dbBackupRetentionDays", 7, low=7, high=35),
        high_availability=high_availability,
        network="public" if network == "public" else "vnet",
        firewall_rules=firewall_rules,
        app_ip_slots=r.integer("dbAppIpSlots", 16, low=1, high=64),
    )

    # --- Web app -----------------------------------------------------------------------------
    web_sku = r.text("appServiceSku", "B1") or ""
    if not _APP_SERVICE_SKU.match(web_sku):
        problems.append(
            f"{r.key('appServiceSku')} must be a Basic or higher Linux plan size such as B1, S1 or "
            f"P0v3 (Free and Shared plans have no always-on or VNet integration), got {web_sku!r}"
        )
    python_version = r.text("pythonVersion", "3.11") or ""
    if python_version not in PYTHON_VERSIONS:
        problems.append(
            f"{r.key('pythonVersion')} must be one of {', '.join(PYTHON_VERSIONS)}, got {python_version!r}"
        )
    web = WebConfig(
        sku=web_sku,
        capacity=r.integer("appServiceCapacity", 1, low=1, high=30),
        python_version=python_version,
    )

    # --- Everything else ---------------------------------------------------------------------
    vnet_address_space = r.text("vnetAddressSpace", "10.20.0.0/16") or ""
    try:
        if ipaddress.IPv4Network(vnet_address_space).prefixlen > 23:
            problems.append(f"{r.key('vnetAddressSpace')} must be /23 or larger (two /24 subnets)")
    except ValueError:
        problems.append(f"{r.key('vnetAddressSpace')} must be an IPv4 CIDR block, got {vnet_address_space!r}")

    app_settings = r.structured("appSettings", {})
    if not isinstance(app_settings, dict):
        problems.append(f"{r.key('appSettings')} must be a map of setting name to value")
        app_settings = {}

    result = StackConfig(
        project=pulumi.get_project(),
        stack=pulumi.get_stack(),
        location=location,
        owner=r.text("owner"),
        b2c=b2c,
        database=database,
        web=web,
        storage_allow_shared_key=r.flag("storageAllowSharedKey", False),
        blob_soft_delete_days=r.integer("blobSoftDeleteDays", 7, low=1, high=365),
        monitoring=r.flag("monitoring", True),
        log_retention_days=r.integer("logRetentionDays", 30, low=30, high=730),
        authority_host=_host(r, "authorityHost", "AZURE_AUTHORITY_HOST"),
        graph_endpoint=_graph_endpoint(r),
        vnet_address_space=vnet_address_space,
        app_settings={str(k): str(v) for k, v in app_settings.items()},
    )
    if problems:
        raise ConfigError(
            f"Stack {result.stack!r} is not configured correctly:\n  - " + "\n  - ".join(problems)
        )
    return result


def _graph_endpoint(reader: _Reader) -> str | None:
    value = reader.text("graphEndpoint")
    if value is not None and not value.startswith("https://"):
        reader.problems.append(
            f"{reader.key('graphEndpoint')} (GRAPH_ENDPOINT) must be an https URL such as "
            f"https://graph.microsoft.com, got {value!r}"
        )
    return value.rstrip("/") if value else None


def check_deploying_tenant(cfg: StackConfig, deploying_tenant_id: str) -> None:
    """Refuse the source article's mistake: the main directory's tenant id given as the B2C one.

    The app's Graph token would then come from the wrong directory (AADSTS700016/AADSTS90002).
    """
    if cfg.b2c.tenant_id and cfg.b2c.tenant_id.lower() == deploying_tenant_id.lower():
        raise ConfigError(TENANT_MIXUP)
