"""What the deployment guarantees (private, TLS-only storage and database, secrets in Key Vault,
least-privilege identities, a hardened web app, tags), asserted on the inputs the program gives
Azure."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
from urllib.parse import quote

import pytest

from infra.identity import (
    KEY_VAULT_SECRETS_USER,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
)
from tests.infra.conftest import (
    CLIENT_SECRETS,
    CREATED_APP_PASSWORD,
    MAIN_TENANT,
    PLATFORM_CONFIGS,
    PLATFORMS,
    SUBSCRIPTION,
    TENANTS,
    Deployment,
    contains_secret,
    create_app,
    plain,
    run,
)

pytestmark = pytest.mark.infra

EXPECTED_TAGS = {"project": "photoshare", "stack": "dev", "owner": "alice@example.com"}
STORAGE = "azure-native:storage:StorageAccount"
WEB_APP = "azure-native:web:WebApp"


def secret_values(deployment: Deployment) -> list[str]:
    """Every secret the program handles: configured, generated, and the database URL."""
    generated = [
        plain(r.inputs).get("result") or f"generated-{r.name}-Aa1-_"
        for r in deployment.of_type("random:index/randomPassword:RandomPassword")
    ]
    stored = [
        plain(r.inputs)["properties"]["value"] for r in deployment.of_type("azure-native:keyvault:Secret")
    ]
    return [*CLIENT_SECRETS.values(), CREATED_APP_PASSWORD, *generated, *stored]


# --- Storage ------------------------------------------------------------------------------------


def test_image_storage_is_private_https_tls12_and_keyless(default) -> None:
    account = default.named("storage-account").plain
    assert account["kind"] == "StorageV2"
    assert account["enableHttpsTrafficOnly"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowBlobPublicAccess"] is False
    assert account["allowSharedKeyAccess"] is False
    assert account["defaultToOAuthAuthentication"] is True


def test_images_container_is_private(default) -> None:
    container = default.named("storage-images").plain
    assert container["containerName"] == "images"
    assert container["publicAccess"] == "None"


def test_blob_soft_delete_is_on(default) -> None:
    service = default.one("azure-native:storage:BlobServiceProperties").plain
    assert service["deleteRetentionPolicy"] == {"enabled": True, "days": 7}
    assert service["containerDeleteRetentionPolicy"] == {"enabled": True, "days": 7}


def test_the_only_storage_account_is_the_images_one(default) -> None:
    """The code goes to the site itself (OneDeploy): no account holds a copy of it."""
    assert [a.name for a in default.of_type(STORAGE)] == ["storage-account"]


# --- Database -----------------------------------------------------------------------------------


def test_postgres_flexible_server_defaults_are_small_and_current(default) -> None:
    server = default.one("azure-native:dbforpostgresql:Server").plain
    assert server["version"] == "16"
    assert server["sku"] == {"name": "Standard_B1ms", "tier": "Burstable"}
    assert server["storage"] == {"storageSizeGB": 32}
    assert server["backup"]["backupRetentionDays"] == 7
    assert server["backup"]["geoRedundantBackup"] == "Disabled"
    assert server["highAvailability"]["mode"] == "Disabled"


def test_postgres_takes_microsoft_entra_tokens_and_no_password(default) -> None:
    """Password authentication off, no administrator login: the only administrator is the
    schema owner's managed identity (a service principal), in the deploying tenant."""
    server = default.one("azure-native:dbforpostgresql:Server").plain
    assert server["authConfig"] == {
        "passwordAuth": "Disabled",
        "activeDirectoryAuth": "Enabled",
        "tenantId": MAIN_TENANT,
    }
    assert "administratorLogin" not in server and "administratorLoginPassword" not in server
    passwords = default.of_type("random:index/randomPassword:RandomPassword")
    assert [p.name for p in passwords] == ["secrets-flask-secret-key"]  # the session key only
    owner = default.named("database-owner")
    admin = default.one("azure-native:dbforpostgresql:AdministratorsMicrosoftEntra").plain
    assert admin["principalType"] == "servicePrincipal"
    assert admin["principalName"] == owner.plain["resourceName"]
    assert admin["objectId"] == "database-owner-principal"
    assert admin["tenantId"] == MAIN_TENANT
    # One change at a time on a Flexible Server: after the database.
    assert default.depends_on(
        default.one("azure-native:dbforpostgresql:AdministratorsMicrosoftEntra"),
        default.one("azure-native:dbforpostgresql:Database"),
    )


def test_the_app_and_its_migrations_reach_postgresql_without_a_password(default) -> None:
    settings = default.app_settings
    server = default.one("azure-native:dbforpostgresql:Server").plain["serverName"]
    site = default.one(WEB_APP).plain["name"]
    owner = default.named("database-owner").plain["resourceName"]
    host = f"{server}.postgres.database.azure.com:5432/photoshare?sslmode=verify-full&sslrootcert=system"
    urls = {
        s.plain["secretName"]: s.plain["properties"]["value"]
        for s in default.of_type("azure-native:keyvault:Secret")
        if s.plain["secretName"].startswith("database-")
    }
    # The app's role is its system-assigned identity's, named as the site; the owner's is the
    # user-assigned identity's, whose client id picks it.
    assert urls == {
        "database-url": f"postgresql://{site}@{host}",
        "database-owner-url": f"postgresql://{owner}@{host}",
    }
    assert settings["DATABASE_AUTH"] == "entra"
    assert settings["DATABASE_OWNER_URL"].startswith("@Microsoft.KeyVault(SecretUri=https://")
    assert settings["DATABASE_OWNER_CLIENT_ID"] == "database-owner-client"
    identities = default.one(WEB_APP).plain["identity"]["userAssignedIdentities"]
    assert any(i.endswith(owner) for i in identities)


def test_postgres_requires_tls(default) -> None:
    setting = default.one("azure-native:dbforpostgresql:Configuration").plain
    assert setting["configurationName"] == "require_secure_transport"
    assert setting["value"] == "on"


def test_the_apps_database_exists(default) -> None:
    database = default.one("azure-native:dbforpostgresql:Database").plain
    assert database["databaseName"] == "photoshare"
    assert database["charset"] == "UTF8"


@pytest.fixture(scope="module")
def with_password() -> Deployment:
    """The documented fallback: photoshare:dbAuth=password."""
    return run({**PLATFORM_CONFIGS["b2c"], "photoshare:dbAuth": "password"})


def test_with_the_password_fallback_the_admin_password_is_generated_and_secret(with_password) -> None:
    server = with_password.one("azure-native:dbforpostgresql:Server")
    assert server.plain["authConfig"]["passwordAuth"] == "Enabled"
    assert contains_secret(server.inputs["administratorLoginPassword"])
    password = with_password.named("database-admin-password").plain
    assert password["length"] >= 32
    assert "administratorLoginPassword" not in json.dumps(plain(with_password.outputs))
    assert with_password.app_settings["DATABASE_AUTH"] == "password"
    assert "DATABASE_OWNER_URL" not in with_password.app_settings
    assert with_password.of_type("azure-native:dbforpostgresql:AdministratorsMicrosoftEntra") == []


def test_with_the_password_fallback_database_url_has_the_password_and_verifies_the_server(
    with_password,
) -> None:
    """TLS with the server's certificate and name checked against the system's roots
    (Azure's PostgreSQL certificates chain to DigiCert Global Root G2 / Microsoft RSA Root
    CA 2017, both there); the app settings refuse anything weaker outside development."""
    default = with_password
    secret = default.named("secrets-database-url")
    assert contains_secret(secret.inputs["properties"])
    url = secret.plain["properties"]["value"]
    server = default.one("azure-native:dbforpostgresql:Server").plain["serverName"]
    password = quote("generated-database-admin-password-Aa1-_", safe="")
    assert url == (
        f"postgresql://photoshare:{password}@{server}.postgres.database.azure.com:5432/photoshare"
        "?sslmode=verify-full&sslrootcert=system"
    )


def test_vnet_mode_has_no_public_endpoint_and_no_firewall(default) -> None:
    network = default.one("azure-native:dbforpostgresql:Server").plain["network"]
    assert network["publicNetworkAccess"] == "Disabled"
    assert "/mock/Subnet/postgres" in network["delegatedSubnetResourceId"]
    assert network["privateDnsZoneArmResourceId"].endswith(".private.postgres.database.azure.com")
    assert default.of_type("azure-native:dbforpostgresql:FirewallRule") == []


# --- Key Vault ----------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_key_vault_uses_rbac_in_the_deploying_tenant(deployed, platform) -> None:
    properties = deployed(platform).one("azure-native:keyvault:Vault").plain["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert not properties.get("accessPolicies")
    assert properties["enableSoftDelete"] is True
    # The vault belongs to the subscription's directory, never the identity directory.
    assert properties["tenantId"] == MAIN_TENANT != TENANTS[platform]


def test_key_vault_holds_each_secret_as_a_pulumi_secret(default) -> None:
    secrets = {s.plain["secretName"]: s for s in default.of_type("azure-native:keyvault:Secret")}
    assert set(secrets) == {"b2c-client-secret", "database-url", "database-owner-url", "flask-secret-key"}
    for secret in secrets.values():
        assert contains_secret(secret.inputs["properties"]), secret.name
    assert secrets["b2c-client-secret"].plain["properties"]["value"] == CLIENT_SECRETS["b2c"]
    assert len(secrets["flask-secret-key"].plain["properties"]["value"]) > 16


# --- Web app ------------------------------------------------------------------------------------


def test_linux_plan_is_sized_from_config(default) -> None:
    plan = default.one("azure-native:web:AppServicePlan").plain
    assert plan["kind"] == "linux"
    assert plan["reserved"] is True
    assert plan["sku"] == {"name": "B1", "capacity": 1}


def test_web_app_is_hardened(default) -> None:
    app = default.one(WEB_APP).plain
    site = app["siteConfig"]
    assert app["httpsOnly"] is True
    assert site["minTlsVersion"] == "1.2"
    assert site["scmMinTlsVersion"] == "1.2"
    assert site["ftpsState"] == "Disabled"
    assert site["alwaysOn"] is True
    assert site["healthCheckPath"] == "/healthz"
    assert site["linuxFxVersion"] == "PYTHON|3.11"
    command = site["appCommandLine"]
    assert command.startswith("python -m gunicorn ") and command.endswith(" 'app:create_app()'")
    assert "--bind=0.0.0.0:8000" in command
    # The command loads the app's gunicorn settings: they must exist where it says.
    config_module = command.split("--config python:", 1)[1].split()[0]
    assert importlib.util.find_spec(config_module) is not None
    for resource in ("azure-native:web:WebAppFtpAllowed", "azure-native:web:WebAppScmAllowed"):
        assert default.one(resource).plain["allow"] is False


def test_web_app_has_a_system_identity_and_a_platform_identity(default) -> None:
    app = default.one(WEB_APP).plain
    identity_id = default.named("platform-identity")
    assert app["identity"]["type"] == "SystemAssigned, UserAssigned"
    platform_id, _database_owner = app["identity"]["userAssignedIdentities"]
    assert platform_id.endswith(identity_id.plain["resourceName"])
    assert app["keyVaultReferenceIdentity"] == platform_id


def test_role_assignments_grant_exactly_what_each_identity_needs(default) -> None:
    def role(guid: str) -> str:
        return f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{guid}"

    assignments = {
        (a["principalId"], a["roleDefinitionId"], a["scope"].rsplit("/", 1)[-1])
        for a in (r.plain for r in default.of_type("azure-native:authorization:RoleAssignment"))
    }
    images = default.named("storage-account").plain["accountName"]
    vault = default.one("azure-native:keyvault:Vault").plain["vaultName"]
    assert assignments == {
        ("web-system-principal", role(STORAGE_BLOB_DATA_CONTRIBUTOR), images),
        ("platform-principal", role(KEY_VAULT_SECRETS_USER), vault),
    }
    for assignment in default.of_type("azure-native:authorization:RoleAssignment"):
        assert assignment.plain["principalType"] == "ServicePrincipal"


def test_web_app_joins_the_vnet_by_default(default) -> None:
    app = default.one(WEB_APP).plain
    assert "/mock/Subnet/app" in app["virtualNetworkSubnetId"]
    delegations = {
        r.plain["subnetName"]: [d["serviceName"] for d in r.plain.get("delegations", [])]
        for r in default.of_type("azure-native:network:Subnet")
    }
    assert delegations == {
        "app": ["Microsoft.Web/serverFarms"],
        "postgres": ["Microsoft.DBforPostgreSQL/flexibleServers"],
        "endpoints": [],  # Key Vault's private endpoint
    }


# --- Secrets never leak; tags everywhere --------------------------------------------------------


@pytest.fixture(params=[(p, created) for p in PLATFORMS for created in (False, True)], ids=str)
def each_identity(request, deployed, deploy) -> Deployment:
    """Each platform, with its app registration configured or created by the program."""
    platform, created = request.param
    return deploy(create_app(platform), platform=platform) if created else deployed(platform)


def test_no_secret_reaches_the_web_app_or_the_outputs(each_identity) -> None:
    app = each_identity.one(WEB_APP)
    assert not contains_secret(app.inputs), "a Pulumi secret flows into the web app's inputs"
    exposed = json.dumps(app.plain) + json.dumps(each_identity.outputs)
    for value in secret_values(each_identity):
        assert value not in exposed


@pytest.mark.parametrize("platform", PLATFORMS)
def test_outputs_are_the_documented_ones_and_none_is_secret(deployed, platform) -> None:
    deployment = deployed(platform)
    assert {
        "siteUrl",
        "redirectUri",
        "postLogoutRedirectUri",
        "storageAccountName",
        "postgresServerFqdn",
        "resourceGroupName",
    } <= set(deployment.outputs)
    assert deployment.secret_outputs == set()
    host = deployment.one(WEB_APP).plain["name"] + ".azurewebsites.net"
    assert deployment.outputs["siteUrl"] == f"https://{host}"
    # The same URIs to register whichever the identity platform.
    assert deployment.outputs["redirectUri"] == f"https://{host}/auth/callback"
    assert deployment.outputs["postLogoutRedirectUri"] == f"https://{host}/"
    assert deployment.outputs["postgresServerFqdn"].endswith(".postgres.database.azure.com")


def test_secrets_only_appear_where_they_belong(each_identity) -> None:
    allowed = {"azure-native:keyvault:Secret", "azure-native:dbforpostgresql:Server"}
    for resource in each_identity.resources:
        if resource.typ in allowed:
            continue
        assert not contains_secret(resource.inputs), f"{resource.typ} {resource.name} gets a secret"


def _accepts_tags(typ: str) -> bool:
    package, module, name = typ.split(":")
    if package != "azure-native":
        return False
    cls = getattr(importlib.import_module(f"pulumi_azure_native.{module}"), name)
    return "tags" in inspect.signature(cls._internal_init).parameters


def test_every_taggable_resource_carries_project_stack_and_owner_tags(default) -> None:
    taggable = [r for r in default.resources if _accepts_tags(r.typ)]
    assert len(taggable) >= 12
    for resource in taggable:
        assert resource.plain.get("tags") == EXPECTED_TAGS, f"{resource.typ} {resource.name}"
