"""Stack settings switch optional resources on and off."""

from __future__ import annotations

import pulumi
import pytest

from infra.app_registration import GRAPH_APP_ID, GRAPH_SCOPES, GRAPH_USER_READ_ALL_ROLE, PROFILES
from infra.appsettings import CLIENT_SECRET_NAMES
from infra.database import _addresses
from tests.infra.conftest import (
    CREATED_APP_PASSWORD,
    CREATED_CLIENT_ID,
    MAIN_TENANT,
    OUTBOUND_IPS,
    PLATFORMS,
    SETTING_PREFIXES,
    TENANTS,
    create_app,
    secret_end_date,
)

pytestmark = pytest.mark.infra

FIREWALL = "azure-native:dbforpostgresql:FirewallRule"
SUBNET = "azure-native:network:Subnet"


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
    subnets = {s.plain["subnetName"]: s.plain["addressPrefix"] for s in default.of_type(SUBNET)}
    assert subnets == {"app": "10.20.0.0/24", "postgres": "10.20.1.0/24", "endpoints": "10.20.2.0/24"}
    server = default.one("azure-native:dbforpostgresql:Server").plain["serverName"]
    zones = {
        z.name: z.plain["privateZoneName"] for z in default.of_type("azure-native:privatedns:PrivateZone")
    }
    assert zones == {
        "network-postgres-zone": f"{server}.private.postgres.database.azure.com",
        "network-vault-zone": "privatelink.vaultcore.azure.net",
    }
    links = default.of_type("azure-native:privatedns:VirtualNetworkLink")
    assert len(links) == 2
    assert all(link.plain["registrationEnabled"] is False for link in links)


def test_outbound_address_slots_repeat_spares_and_refuse_too_many() -> None:
    assert _addresses("20.1.1.2, 20.1.1.1,20.1.1.2", 4) == ["20.1.1.1", "20.1.1.2"]
    with pytest.raises(pulumi.RunError, match="raise it to 3 or use photoshare:dbNetwork=vnet"):
        _addresses(OUTBOUND_IPS, 2)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_app_registration_is_off_by_default(deployed, platform) -> None:
    assert not [r for r in deployed(platform).resources if r.typ.startswith("azuread:")]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_app_registration_is_created_in_the_identity_tenant_when_asked(deploy, platform) -> None:
    deployment = deploy(create_app(platform), platform=platform)
    provider = deployment.one("pulumi:providers:azuread").plain
    assert provider["tenantId"] == TENANTS[platform] != MAIN_TENANT
    for resource in deployment.resources:
        if resource.typ.startswith("azuread:"):
            assert resource.name.startswith("b2c-" if platform == "b2c" else "external-id-")
    registration = deployment.one("azuread:index/application:Application").plain
    site = "https://" + deployment.one("azure-native:web:WebApp").plain["name"] + ".azurewebsites.net"
    # The sign-in callback, and the post-logout redirect URI the end-session endpoint checks.
    assert registration["web"]["redirectUris"] == [f"{site}/auth/callback", f"{site}/"]
    assert registration["web"]["implicitGrant"] == {
        "accessTokenIssuanceEnabled": False,
        "idTokenIssuanceEnabled": False,
    }
    assert "logoutUrl" not in registration["web"]
    assert deployment.outputs["redirectUri"] == f"{site}/auth/callback"
    assert deployment.outputs["postLogoutRedirectUri"] == f"{site}/"

    profile = PROFILES[platform]
    assert registration["signInAudience"] == profile.sign_in_audience
    [graph] = registration["requiredResourceAccesses"]
    assert graph["resourceAppId"] == GRAPH_APP_ID
    assert {"id": GRAPH_USER_READ_ALL_ROLE, "type": "Role"} in graph["resourceAccesses"]
    assert {a["id"] for a in graph["resourceAccesses"] if a["type"] == "Scope"} == {
        GRAPH_SCOPES[s] for s in profile.scopes
    }
    consent = deployment.one("azuread:index/appRoleAssignment:AppRoleAssignment").plain
    assert consent == {
        "appRoleId": GRAPH_USER_READ_ALL_ROLE,
        "principalObjectId": "app-sp-object",
        "resourceObjectId": "graph-sp-object",
    }
    grant = deployment.one(
        "azuread:index/servicePrincipalDelegatedPermissionGrant:ServicePrincipalDelegatedPermissionGrant"
    )
    assert set(grant.plain["claimValues"]) >= {"openid", "offline_access"}
    assert set(grant.plain["claimValues"]) == set(profile.scopes)

    secret_name = CLIENT_SECRET_NAMES[platform]
    settings = deployment.app_settings
    prefix = SETTING_PREFIXES[platform]
    assert settings[f"{prefix}CLIENT_ID"] == CREATED_CLIENT_ID
    assert settings[f"{prefix}CLIENT_SECRET"].startswith("@Microsoft.KeyVault(")
    assert f"/secrets/{secret_name}/" in settings[f"{prefix}CLIENT_SECRET"]
    assert deployment.named(f"secrets-{secret_name}").plain["properties"]["value"] == CREATED_APP_PASSWORD
    output = "b2cClientId" if platform == "b2c" else "externalIdClientId"
    assert deployment.outputs[output] == CREATED_CLIENT_ID
    assert deployment.secret_outputs == set()


def test_the_external_id_registration_puts_the_email_in_the_id_token(deploy) -> None:
    """So the app has the address from the ID token, without a Graph call."""
    deployment = deploy(create_app("external_id"), platform="external_id")
    registration = deployment.one("azuread:index/application:Application").plain
    assert registration["signInAudience"] == "AzureADMyOrg"
    assert registration["optionalClaims"] == {"idTokens": [{"name": "email"}]}
    grant = deployment.one(
        "azuread:index/servicePrincipalDelegatedPermissionGrant:ServicePrincipalDelegatedPermissionGrant"
    )
    assert "email" in grant.plain["claimValues"]


def test_the_b2c_registration_keeps_the_user_flow_audience_and_no_optional_claims(deploy) -> None:
    registration = deploy(create_app("b2c")).one("azuread:index/application:Application").plain
    assert registration["signInAudience"] == "AzureADandPersonalMicrosoftAccount"
    assert "optionalClaims" not in registration


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_created_client_secret_lapses_on_the_configured_date(deploy, platform) -> None:
    end = secret_end_date(300)
    deployment = deploy({**create_app(platform), "photoshare:appSecretEndDate": end}, platform=platform)
    password = deployment.one("azuread:index/applicationPassword:ApplicationPassword").plain
    assert password["endDate"] == f"{end}T00:00:00Z"
    assert deployment.outputs["appSecretEndDate"] == f"{end}T00:00:00Z"


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
