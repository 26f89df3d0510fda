"""Run the Pulumi program under `pulumi.runtime.set_mocks` and record what it declares.

`deploy(config)` sets fresh mocks and config, runs `infra.program.build()` inside
`@pulumi.runtime.test`, and returns every resource's type, name and inputs (secret inputs
still wrapped, so tests can assert secretness) plus the resolved stack outputs. Each identity
platform has its base configuration (`PLATFORM_CONFIGS`); `deploy(..., platform="external_id")`
starts from the External ID one.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

from infra.package import BuiltPackage
from infra.secret_lifetime import SecretEndDateProvider

MAIN_TENANT = "11111111-2222-4333-8444-555555555555"  # the deploying identity's directory
B2C_TENANT = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
EXTERNAL_TENANT = "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff"
CLIENT_ID = "0f0e0d0c-0b0a-4909-8807-060504030201"
SUBSCRIPTION = "99999999-8888-4777-8666-555555555555"
B2C_CLIENT_SECRET = "b2c-client-secret-from-config"  # noqa: S105 - a test value to hunt for
EXTERNAL_CLIENT_SECRET = "external-id-client-secret-from-config"  # noqa: S105 - a test value
CREATED_CLIENT_ID = "12121212-3434-4565-8787-909090909090"  # what the mocked Entra assigns
CREATED_APP_PASSWORD = "generated-app-password"  # noqa: S105 - what the mocked Entra generates
OUTBOUND_IPS = "20.1.1.1,20.1.1.2,20.1.1.3"
# When the mocked engine creates a created secret's end date (infra/secret_lifetime.py).
SECRET_CREATED = datetime.datetime(2026, 3, 31, 9, 15, 42, tzinfo=datetime.UTC)

COMMON_CONFIG: dict[str, Any] = {
    "azure-native:location": "westeurope",
    "photoshare:owner": "alice@example.com",
}
BASE_CONFIG: dict[str, Any] = {
    **COMMON_CONFIG,
    "photoshare:b2cTenantName": "adatumb2c",
    "photoshare:b2cTenantId": B2C_TENANT,
    "photoshare:b2cClientId": CLIENT_ID,
    "photoshare:b2cClientSecret": B2C_CLIENT_SECRET,
}
EXTERNAL_ID_CONFIG: dict[str, Any] = {
    **COMMON_CONFIG,
    "photoshare:identityPlatform": "externalId",
    "photoshare:externalIdTenantSubdomain": "adatumcustomers",
    "photoshare:externalIdTenantId": EXTERNAL_TENANT,
    "photoshare:externalIdClientId": CLIENT_ID,
    "photoshare:externalIdClientSecret": EXTERNAL_CLIENT_SECRET,
}
PLATFORMS = ("b2c", "external_id")
PLATFORM_CONFIGS = {"b2c": BASE_CONFIG, "external_id": EXTERNAL_ID_CONFIG}
# Per platform: its tenant, the stack keys a test changes, and the app settings they become.
TENANTS = {"b2c": B2C_TENANT, "external_id": EXTERNAL_TENANT}
KEY_PREFIXES = {"b2c": "photoshare:b2c", "external_id": "photoshare:externalId"}
SETTING_PREFIXES = {"b2c": "AZURE_AD_B2C_", "external_id": "EXTERNAL_ID_"}
CLIENT_SECRETS = {"b2c": B2C_CLIENT_SECRET, "external_id": EXTERNAL_CLIENT_SECRET}


def key(platform: str, suffix: str) -> str:
    """The platform's stack key: `key("external_id", "TenantId")` → photoshare:externalIdTenantId."""
    return f"{KEY_PREFIXES[platform]}{suffix}"


def secret_end_date(days: int = 180) -> str:
    """A valid photoshare:appSecretEndDate, relative to today (the program refuses past dates)."""
    return (datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=days)).isoformat()


def create_app(platform: str) -> dict[str, Any]:
    """Overrides that let the program create the platform's app registration (its secret's end
    date left to the default, 12 months after its creation)."""
    return {
        key(platform, "CreateApp"): True,
        key(platform, "ClientId"): None,
        key(platform, "ClientSecret"): None,
    }


NAME_KEYS = {
    "azure-native:resources:ResourceGroup": "resourceGroupName",
    "azure-native:storage:StorageAccount": "accountName",
    "azure-native:storage:BlobContainer": "containerName",
    "azure-native:storage:BlobServiceProperties": "blobServicesName",
    "azure-native:storage:Blob": "blobName",
    "azure-native:dbforpostgresql:Server": "serverName",
    "azure-native:dbforpostgresql:Configuration": "configurationName",
    "azure-native:dbforpostgresql:Database": "databaseName",
    "azure-native:dbforpostgresql:FirewallRule": "firewallRuleName",
    "azure-native:keyvault:Vault": "vaultName",
    "azure-native:keyvault:Secret": "secretName",
    "azure-native:web:AppServicePlan": "name",
    "azure-native:web:WebApp": "name",
    "azure-native:managedidentity:UserAssignedIdentity": "resourceName",
    "azure-native:operationalinsights:Workspace": "workspaceName",
    "azure-native:applicationinsights:Component": "resourceName",
    "azure-native:network:VirtualNetwork": "virtualNetworkName",
    "azure-native:network:Subnet": "subnetName",
    "azure-native:privatedns:PrivateZone": "privateZoneName",
    "azure-native:privatedns:VirtualNetworkLink": "virtualNetworkLinkName",
    "azure-native:network:PrivateEndpoint": "privateEndpointName",
    "azure-native:network:PrivateDnsZoneGroup": "privateDnsZoneGroupName",
}


def plain(value: Any) -> Any:
    """The value with every secret wrapper removed (what Azure would receive)."""
    value = rpc.unwrap_rpc_secret(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def contains_secret(value: Any) -> bool:
    if rpc.is_rpc_secret(value):
        return True
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_secret(v) for v in value)
    return False


@dataclass
class Recorded:
    """One resource the program declared, and where it sits in the resource graph."""

    typ: str
    name: str
    inputs: dict[str, Any]
    urn: str = ""
    parent: str = ""
    # What the engine orders this resource after on create, and before on delete: explicit
    # depends_on and every input's resources.
    dependencies: frozenset[str] = frozenset()

    @property
    def plain(self) -> dict[str, Any]:
        return plain(self.inputs)


class GraphMonitor(MockMonitor):
    """The SDK's mock monitor, keeping each registration's URN, parent and dependencies."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        response = super().RegisterResource(request)
        dependencies = set(request.dependencies)
        for urns in request.propertyDependencies.values():
            dependencies.update(urns.urns)
        self.recording.graph[(request.type, request.name)] = (
            response.urn,
            request.parent,
            frozenset(dependencies),
        )
        return response


class RecordingMocks(pulumi.runtime.Mocks):
    """Records each resource and answers with plausible Azure outputs."""

    def __init__(self, deploying_tenant: str) -> None:
        self.deploying_tenant = deploying_tenant
        self.resources: list[Recorded] = []
        self.calls: list[str] = []
        self.graph: dict[tuple[str, str], tuple[str, str, frozenset[str]]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        self.resources.append(Recorded(args.typ, args.name, dict(args.inputs)))
        inputs = plain(args.inputs)
        state = dict(args.inputs)
        physical = inputs.get(NAME_KEYS.get(args.typ, ""), args.name)
        state["name"] = physical
        rid = f"/subscriptions/{SUBSCRIPTION}/mock/{args.typ.split(':')[-1]}/{physical}"
        typ = args.typ
        if typ == "azure-native:storage:StorageAccount":
            state["primaryEndpoints"] = {"blob": f"https://{physical}.blob.core.windows.net/"}
        elif typ == "azure-native:storage:Blob":
            state["url"] = (
                f"https://{inputs['accountName']}.blob.core.windows.net/{inputs['containerName']}/{physical}"
            )
        elif typ == "azure-native:dbforpostgresql:Server":
            state["fullyQualifiedDomainName"] = f"{physical}.postgres.database.azure.com"
        elif typ == "azure-native:keyvault:Vault":
            state["properties"] = {**inputs["properties"], "vaultUri": f"https://{physical}.vault.azure.net/"}
        elif typ == "azure-native:keyvault:Secret":
            # Key Vault names each value's version; a new value is a new version.
            uri = f"https://{inputs['vaultName']}.vault.azure.net/secrets/{physical}"
            version = hashlib.sha256(str(inputs["properties"]["value"]).encode()).hexdigest()[:32]
            # Outputs are secret where their inputs were, as in Pulumi's engine.
            state["properties"] = rpc.wrap_rpc_secret(
                {**inputs["properties"], "secretUri": uri, "secretUriWithVersion": f"{uri}/{version}"}
            )
        elif typ == "azure-native:web:WebApp":
            state["defaultHostName"] = f"{physical}.azurewebsites.net"
            identity = inputs["identity"]
            state["identity"] = {  # the response shape: user identities keyed by resource id
                "type": identity["type"],
                "principalId": "web-system-principal",
                "userAssignedIdentities": {
                    uid: {"principalId": "platform-principal", "clientId": "platform-client"}
                    for uid in identity.get("userAssignedIdentities", [])
                },
            }
            state["possibleOutboundIpAddresses"] = OUTBOUND_IPS
            state["outboundIpAddresses"] = OUTBOUND_IPS
        elif typ == "azure-native:managedidentity:UserAssignedIdentity":
            who = "platform" if args.name == "platform-identity" else args.name
            state.update(principalId=f"{who}-principal", clientId=f"{who}-client")
        elif typ == "azure-native:applicationinsights:Component":
            state["connectionString"] = "InstrumentationKey=00000000-0000-0000-0000-000000000000"
        elif typ == "random:index/randomPassword:RandomPassword":
            state["result"] = f"generated-{args.name}-Aa1-_"
        elif typ == "azuread:index/application:Application":
            state.update(clientId=CREATED_CLIENT_ID, objectId="app-object")
        elif typ == "azuread:index/servicePrincipal:ServicePrincipal":
            state["objectId"] = "app-sp-object"
        elif typ == "azuread:index/applicationPassword:ApplicationPassword":
            state["value"] = CREATED_APP_PASSWORD
        elif typ == "pulumi-python:dynamic:Resource" and args.name.endswith("-secret-end-date"):
            # The provider's own create, on a fixed clock: what the engine would store.
            props = {k: v for k, v in inputs.items() if k != "__provider"}
            state.update(SecretEndDateProvider(clock=lambda: SECRET_CREATED).create(props).outs or {})
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:  # type: ignore[override]
        self.calls.append(args.token)
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "tenantId": self.deploying_tenant,
                "subscriptionId": SUBSCRIPTION,
                "clientId": "deployer-client",
                "objectId": "deployer-object",
            }
        if args.token == "azuread:index/getServicePrincipal:getServicePrincipal":
            return {"id": "graph-sp", "objectId": "graph-sp-object", "clientId": args.args.get("clientId")}
        return {}


@dataclass
class Deployment:
    """What one run of the program declared and exported."""

    resources: list[Recorded]
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)

    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str) -> Recorded:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, got {[r.name for r in found]}"
        return found[0]

    def named(self, name: str) -> Recorded:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, got {len(found)}"
        return found[0]

    def depends_on(self, dependent: Recorded, dependency: Recorded) -> bool:
        """Whether the engine creates `dependency` first and deletes it last, directly or
        through other resources."""
        by_urn = {r.urn: r for r in self.resources}
        seen: set[str] = set()
        pending = list(dependent.dependencies)
        while pending:
            urn = pending.pop()
            if urn == dependency.urn:
                return True
            if urn not in seen and urn in by_urn:
                seen.add(urn)
                pending.extend(by_urn[urn].dependencies)
        return False

    @property
    def app_settings(self) -> dict[str, Any]:
        """The web app's app settings, secret wrappers removed."""
        site_config = self.one("azure-native:web:WebApp").plain["siteConfig"]
        return {pair["name"]: pair["value"] for pair in site_config["appSettings"]}


def tiny_package(_cfg: Any) -> BuiltPackage:
    """Stands in for the real build (pip and network are off limits in tests)."""
    return BuiltPackage(
        archive=pulumi.AssetArchive({"app/__init__.py": pulumi.StringAsset("")}),
        digest="0123456789abcdef",
    )


def run(
    config: dict[str, Any],
    *,
    stack: str = "dev",
    deploying_tenant: str = MAIN_TENANT,
    packager: Callable[[Any], BuiltPackage] = tiny_package,
    secret_keys: list[str] | None = None,
) -> Deployment:
    """Run infra.program.build() once with these config values and mocks."""
    from infra.program import build

    mocks = RecordingMocks(deploying_tenant)
    pulumi.runtime.set_mocks(
        mocks, project="photoshare", stack=stack, preview=False, monitor=GraphMonitor(mocks)
    )
    pulumi.runtime.set_all_config(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items() if v is not None},
        [k for k in config if k.endswith("Secret")] if secret_keys is None else secret_keys,
    )
    deployment = Deployment(resources=mocks.resources)

    @pulumi.runtime.test
    def program() -> pulumi.Output:
        outputs = build(packager=packager)
        names = sorted(outputs)
        values = pulumi.Output.all(*[outputs[n] for n in names])
        secrecy = pulumi.Output.all(*[pulumi.Output.from_input(outputs[n]).is_secret() for n in names])

        def record(args: list[list[Any]]) -> None:
            deployment.outputs.update(zip(names, args[0], strict=True))
            deployment.secret_outputs.update(n for n, s in zip(names, args[1], strict=True) if s)

        return pulumi.Output.all(values, secrecy).apply(record)

    program()
    for resource in deployment.resources:
        resource.urn, resource.parent, resource.dependencies = mocks.graph[(resource.typ, resource.name)]
    return deployment


@pytest.fixture(scope="session")
def deployed() -> Callable[[str], Deployment]:
    """`deployed("external_id")`: the program run once per platform with its base config, shared
    by the read-only assertions."""
    runs: dict[str, Deployment] = {}

    def _deployed(platform: str) -> Deployment:
        if platform not in runs:
            runs[platform] = run(dict(PLATFORM_CONFIGS[platform]))
        return runs[platform]

    return _deployed


@pytest.fixture(scope="session")
def default(deployed: Callable[[str], Deployment]) -> Deployment:
    """The program run once with BASE_CONFIG (B2C)."""
    return deployed("b2c")


@pytest.fixture
def deploy() -> Iterator[Callable[..., Deployment]]:
    """`deploy({"photoshare:key": value}, platform="b2c")`: run the program with the platform's
    base config plus overrides (None removes a key)."""

    def _deploy(
        overrides: dict[str, Any] | None = None, *, platform: str = "b2c", **kwargs: Any
    ) -> Deployment:
        return run({**PLATFORM_CONFIGS[platform], **(overrides or {})}, **kwargs)

    yield _deploy
