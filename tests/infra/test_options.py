"""Stack settings switch optional resources on and off."""

from __future__ import annotations

import pulumi
import pytest

from infra.b2c_app import GRAPH_APP_ID, GRAPH_USER_READ_ALL_ROLE
from infra.database import _addresses
from tests.infra.conftest import B2C_TENANT, OUTBOUND_IPS

pytestmark = pytest.mark.infra

FIREWALL = "azure-native:dbforpostgresql:FirewallRule"


def test_public_database_gets_narrow_rules_and_the_apps_outbound_addresses(deploy) -> None:
    deployment = deploy(
        {
            "photoshare:dbNetwork": "public",
            "photoshare:dbFirewallRules": ["203.0.113.7", "198.51.100.16/28", "192.0.2.10-192.0.2.20"],
            "photoshare:dbAppIpSlots": 5,
        }
    )
    server = deployment.one("azure-native:dbforpostgresql:Server").plain
    assert server["network"] == {"publicNetworkAccess": "Enabled"}
    rules = {
        r.plain["firewallRuleName"]: (r.plain["startIpAddress"], r.plain["endIpAddress"])
        for r in deployment.of_type(FIREWALL)
    }
    assert rules["config-0"] == ("203.0.113.7", "203.0.113.7")
    assert rules["config-1"] == ("198.51.100.16", "198.51.100.31")
    assert rules["config-2"] == ("192.0.2.10", "192.0.2.20")
    app_rules = {name: ips for name, ips in rules.items() if name.startswith("app-outbound-")}
    assert len(app_rules) == 5
    assert {start for start, _ in app_rules.values()} == set(OUTBOUND_IPS.split(","))
    for start, end in rules.values():
        assert start != "0.0.0.0" and end != "0.0.0.0"
    assert deployment.of_type("azure-native:network:VirtualNetwork") == []
    assert "virtualNetworkSubnetId" not in deployment.one("azure-native:web:WebApp").plain


def test_vnet_database_creates_the_private_network(default) -> None:
    assert len(default.of_type("azure-native:network:VirtualNetwork")) == 1
    assert len(default.of_type("azure-native:network:Subnet")) == 2
    zone = default.one("azure-native:privatedns:PrivateZone").plain
    server = default.one("azure-native:dbforpostgresql:Server").plain["serverName"]
    assert zone["privateZoneName"] == f"{server}.private.postgres.database.azure.com"
    assert default.one("azure-native:privatedns:VirtualNetworkLink").plain["registrationEnabled"] is False


def test_outbound_address_slots_repeat_spares_and_refuse_too_many() -> None:
    assert _addresses("20.1.1.2, 20.1.1.1,20.1.1.2", 4) == ["20.1.1.1", "20.1.1.2"]
    with pytest.raises(pulumi.RunError, match="raise it to 3 or use photoshare:dbNetwork=vnet"):
        _addresses(OUTBOUND_IPS, 2)


def test_b2c_app_registration_is_off_by_default(default) -> None:
    assert not [r for r in default.resources if r.typ.startswith("azuread:")]


def test_b2c_app_registration_is_created_in_the_b2c_tenant_when_asked(deploy) -> None:
    deployment = deploy(
        {
            "photoshare:b2cCreateApp": True,
            "photoshare:b2cClientId": None,
            "photoshare:b2cClientSecret": None,
        }
    )
    provider = deployment.one("pulumi:providers:azuread").plain
    assert provider["tenantId"] == B2C_TENANT
    registration = deployment.one("azuread:index/application:Application").plain
    host = deployment.one("azure-native:web:WebApp").plain["name"] + ".azurewebsites.net"
    assert registration["web"]["redirectUris"] == [f"https://{host}/auth/callback"]
    assert registration["signInAudience"] == "AzureADandPersonalMicrosoftAccount"
    [graph] = registration["requiredResourceAccesses"]
    assert graph["resourceAppId"] == GRAPH_APP_ID
    assert {"id": GRAPH_USER_READ_ALL_ROLE, "type": "Role"} in graph["resourceAccesses"]
    consent = deployment.one("azuread:index/appRoleAssignment:AppRoleAssignment").plain
    assert consent == {
        "appRoleId": GRAPH_USER_READ_ALL_ROLE,
        "principalObjectId": "app-sp-object",
        "resourceObjectId": "graph-sp-object",
    }
    settings = deployment.app_settings
    assert settings["AZURE_AD_B2C_CLIENT_ID"] == "12121212-3434-4565-8787-909090909090"
    assert settings["AZURE_AD_B2C_CLIENT_SECRET"].startswith("@Microsoft.KeyVault(")
    secret = deployment.named("secrets-b2c-client-secret").plain["properties"]["value"]
    assert secret == "generated-b2c-app-password"
    assert deployment.outputs["b2cClientId"] == "12121212-3434-4565-8787-909090909090"
    assert deployment.secret_outputs == set()


def test_monitoring_can_be_switched_off(deploy) -> None:
    deployment = deploy({"photoshare:monitoring": False})
    for typ in (
        "azure-native:operationalinsights:Workspace",
        "azure-native:applicationinsights:Component",
        "azure-native:monitor:DiagnosticSetting",
    ):
        assert deployment.of_type(typ) == []
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" not in deployment.app_settings


def test_monitoring_sends_app_service_logs_to_the_workspace(default) -> None:
    workspace = default.one("azure-native:operationalinsights:Workspace").plain
    insights = default.one("azure-native:applicationinsights:Component").plain
    assert insights["ingestionMode"] == "LogAnalytics"
    assert insights["workspaceResourceId"].endswith(workspace["workspaceName"])
    diagnostics = default.one("azure-native:monitor:DiagnosticSetting").plain
    assert diagnostics["workspaceId"].endswith(workspace["workspaceName"])
    assert {log["category"] for log in diagnostics["logs"]} >= {"AppServiceConsoleLogs", "AppServiceHTTPLogs"}


def test_shared_key_access_is_an_explicit_opt_in(deploy) -> None:
    deployment = deploy({"photoshare:storageAllowSharedKey": True})
    account = deployment.named("storage-account").plain
    assert account["allowSharedKeyAccess"] is True
    assert account["allowBlobPublicAccess"] is False


def test_sizes_come_from_stack_config(deploy) -> None:
    deployment = deploy(
        {
            "photoshare:appServiceSku": "P0v3",
            "photoshare:appServiceCapacity": 2,
            "photoshare:pythonVersion": "3.12",
            "photoshare:dbSku": "Standard_D2ds_v5",
            "photoshare:dbStorageGb": 64,
            "photoshare:dbBackupRetentionDays": 14,
            "photoshare:dbHighAvailability": True,
            "photoshare:dbVersion": "17",
            "photoshare:owner": None,
        }
    )
    assert deployment.one("azure-native:web:AppServicePlan").plain["sku"] == {"name": "P0v3", "capacity": 2}
    site = deployment.one("azure-native:web:WebApp").plain["siteConfig"]
    assert site["linuxFxVersion"] == "PYTHON|3.12"
    server = deployment.one("azure-native:dbforpostgresql:Server").plain
    assert server["sku"] == {"name": "Standard_D2ds_v5", "tier": "GeneralPurpose"}
    assert server["storage"] == {"storageSizeGB": 64}
    assert server["backup"]["backupRetentionDays"] == 14
    assert server["highAvailability"]["mode"] == "ZoneRedundant"
    assert server["version"] == "17"
    assert server["tags"] == {"project": "photoshare", "stack": "dev"}
