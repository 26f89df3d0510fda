"""Wires the components into one environment; `__main__.py` calls `build()` and exports.

Order matters only where Azure needs it: everything that can fail from configuration is
checked before the first resource is declared, so a bad stack never gets half created.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

import pulumi
from pulumi_azure_native import authorization, resources

from app.settings import Platform
from infra import appsettings
from infra import config as stack_config
from infra.app_registration import AppRegistration, AppRegistrationArgs
from infra.database import AppFirewall, AppFirewallArgs, Database, DatabaseArgs
from infra.deploy import ZipDeploy, ZipDeployArgs, scm_url
from infra.identity import PlatformIdentity, PlatformIdentityArgs
from infra.monitoring import Monitoring, MonitoringArgs
from infra.naming import Names
from infra.network import PrivateNetwork, PrivateNetworkArgs
from infra.package import BUILD_DIR, BuiltPackage, build_app_package, write_zip
from infra.propagation import Propagation
from infra.storage import ImageStorage, ImageStorageArgs
from infra.vault import AppSecrets, AppSecretsArgs, VaultPrivateEndpoint
from infra.webapp import BUILD_SETTINGS, WebApp, WebAppArgs

Packager = Callable[[stack_config.StackConfig], BuiltPackage]

# The app's routes an app registration names: where sign-in returns, where sign-out returns.
CALLBACK_PATH = "/auth/callback"
POST_LOGOUT_PATH = "/"
# A registration the program creates: its component name, and its client id's output (named
# after the stack key it stands in for).
REGISTRATIONS: dict[Platform, tuple[str, str]] = {
    "b2c": ("b2c", "b2cClientId"),
    "external_id": ("external-id", "externalIdClientId"),
}


class Common(TypedDict):
    """The arguments every component shares: where it lives and how it is tagged."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    tags: pulumi.Input[dict[str, str]]


def default_packager(cfg: stack_config.StackConfig) -> BuiltPackage:
    """Build the real package: `app/` + the locked runtime requirements, zipped."""
    return build_app_package(python_version=cfg.web.python_version)


def build(*, packager: Packager | None = None) -> dict[str, Any]:
    """Declare the whole environment and return the stack outputs.

    `packager` builds the app's zip; tests pass one that needs no pip and no network.
    """
    # --- Checks first: nothing is declared until configuration and contract are sound ---------
    cfg = stack_config.load()
    client = authorization.get_client_config()
    stack_config.check_deploying_tenant(cfg, client.tenant_id)
    sources = appsettings.plan(cfg)
    appsettings.check(sources)
    names = Names.for_stack(project=cfg.project, stack=cfg.stack, subscription_id=client.subscription_id)
    package = (packager or default_packager)(cfg)
    tags = cfg.tags

    # --- Resources -----------------------------------------------------------------------------
    group = resources.ResourceGroup(
        "photoshare", resource_group_name=names.resource_group, location=cfg.location, tags=tags
    )
    common = Common(resource_group_name=group.name, location=group.location, tags=tags)

    monitoring = (
        Monitoring(
            "monitoring",
            MonitoringArgs(
                **common,
                workspace_name=names.log_workspace,
                insights_name=names.app_insights,
                retention_days=cfg.log_retention_days,
            ),
        )
        if cfg.monitoring
        else None
    )
    private_network = (
        PrivateNetwork(
            "network",
            PrivateNetworkArgs(
                **common,
                vnet_name=names.virtual_network,
                postgres_zone_name=names.postgres_private_zone,
                address_space=cfg.vnet_address_space,
            ),
        )
        if cfg.database.network == "vnet"
        else None
    )
    images = ImageStorage(
        "storage",
        ImageStorageArgs(
            **common,
            account_name=names.storage_account("data"),
            allow_shared_key_access=cfg.storage_allow_shared_key,
            soft_delete_days=cfg.blob_soft_delete_days,
        ),
    )
    db = cfg.database
    database = Database(
        "database",
        DatabaseArgs(
            **common,
            server_name=names.postgres_server,
            version=db.version,
            sku_name=db.sku_name,
            sku_tier=db.sku_tier,
            storage_gb=db.storage_gb,
            backup_retention_days=db.backup_retention_days,
            high_availability=db.high_availability,
            delegated_subnet_id=private_network.db_subnet_id if private_network else None,
            private_dns_zone_id=private_network.postgres_zone_id if private_network else None,
            firewall_rules=db.firewall_rules,
            auth=db.auth,
            tenant_id=client.tenant_id,
            owner_identity_name=names.database_owner_identity,
            app_role=names.web_app,
        ),
    )

    identity = cfg.identity
    site_url = f"https://{names.default_host_name}"
    registration = (
        AppRegistration(
            REGISTRATIONS[identity.platform][0],
            AppRegistrationArgs(
                platform=identity.platform,
                tenant_id=identity.tenant_id,
                display_name=names.app_registration_display_name,
                redirect_uri=site_url + CALLBACK_PATH,
                post_logout_redirect_uri=site_url + POST_LOGOUT_PATH,
                secret_end_date=identity.secret_end_date,
                secret_months=identity.secret_months,
            ),
        )
        if identity.create_app
        else None
    )
    client_secret = registration.client_secret if registration else identity.client_secret
    if client_secret is None:  # config.load() already reported it; this keeps the types honest
        raise stack_config.ConfigError(f"the {identity.platform} client secret is required")

    secrets = AppSecrets(
        "secrets",
        AppSecretsArgs(
            **common,
            vault_name=names.key_vault,
            tenant_id=client.tenant_id,
            values={
                appsettings.CLIENT_SECRET_NAMES[identity.platform]: client_secret,
                "database-url": database.database_url,
                **({"database-owner-url": database.owner_url} if database.owner_url is not None else {}),
            },
            generated=["flask-secret-key"],
            purge_protection=cfg.production,
            # In the VNet, the vault has no public endpoint: the site reads it through this one.
            private_endpoint=(
                VaultPrivateEndpoint(
                    name=names.key_vault_private_endpoint,
                    subnet_id=private_network.endpoint_subnet_id,
                    dns_zone_id=private_network.vault_zone_id,
                )
                if private_network
                else None
            ),
        ),
    )
    platform_identity = PlatformIdentity(
        "platform",
        PlatformIdentityArgs(
            **common,
            identity_name=names.identity,
            subscription_id=client.subscription_id,
            vault_id=secrets.vault_id,
        ),
    )

    propagation = Propagation(
        "role-propagation",
        after=[platform_identity.secrets_user.id],
        opts=pulumi.ResourceOptions(depends_on=[platform_identity]),
    )

    resource_values: dict[str, pulumi.Input[str]] = {
        "storage_account_url": images.blob_endpoint,
        "storage_container": images.container_name,
    }
    if monitoring:
        resource_values["appinsights_connection_string"] = monitoring.connection_string
    if registration:
        resource_values[appsettings.CREATED_CLIENT_ID] = registration.client_id
    if database.owner_client_id is not None:
        resource_values[appsettings.DB_OWNER_CLIENT_ID] = database.owner_client_id
    app_settings = appsettings.render(
        sources,
        resources=resource_values,
        secret_uris=secrets.secret_uris,
        platform=BUILD_SETTINGS,
    )
    site = WebApp(
        "web",
        WebAppArgs(
            **common,
            plan_name=names.app_service_plan,
            app_name=names.web_app,
            subscription_id=client.subscription_id,
            sku=cfg.web.sku,
            capacity=cfg.web.capacity,
            python_version=cfg.web.python_version,
            app_settings=app_settings,
            platform_identity_id=platform_identity.identity_id,
            # The schema owner's identity runs the migrations at each start (database.py).
            other_identity_ids=[database.owner_identity_id] if database.owner_identity_id else [],
            # The platform identity's role must exist, and have had time to reach App Service,
            # before the site first starts; so must the owner's place as the server's administrator,
            # and in the VNet the vault's private endpoint with its DNS record.
            start_after=[
                propagation,
                *([database.entra_admin] if database.owner is not None else []),
                *secrets.private_access,
            ],
            blob_data_scope=images.account_id,
            subnet=private_network.app_subnet if private_network else None,
            log_workspace_id=monitoring.workspace_id if monitoring else None,
        ),
    )
    # The code, once the site (with its build settings) exists and basic auth is off; Oryx builds it.
    package_zip = package.zip_path or write_zip(package, BUILD_DIR / f"photoshare-{package.digest}.zip")
    ZipDeploy(
        "web-code",
        ZipDeployArgs(
            scm_url=site.default_host_name.apply(scm_url),
            zip_path=str(package_zip),
            digest=package.digest,
        ),
        opts=pulumi.ResourceOptions(depends_on=[site.app, site.scm_basic_auth, site.ftp_basic_auth]),
    )
    if private_network is None:
        AppFirewall(
            "database-app-access",
            AppFirewallArgs(
                resource_group_name=group.name,
                server_name=database.server_name,
                outbound_ip_addresses=site.outbound_ip_addresses,
                slots=db.app_ip_slots,
            ),
            opts=pulumi.ResourceOptions(depends_on=[database]),
        )

    deployed_url = pulumi.Output.concat("https://", site.default_host_name)
    outputs: dict[str, Any] = {
        "siteUrl": deployed_url,
        # The URIs to register in the identity directory, whichever platform it is.
        "redirectUri": pulumi.Output.concat(deployed_url, CALLBACK_PATH),
        "postLogoutRedirectUri": pulumi.Output.concat(deployed_url, POST_LOGOUT_PATH),
        "resourceGroupName": group.name,
        "storageAccountName": images.account_name,
        "postgresServerName": database.server_name,
        "postgresServerFqdn": database.fqdn,
        "keyVaultName": secrets.vault_name,
        "webAppName": names.web_app,
    }
    if registration:
        outputs[REGISTRATIONS[identity.platform][1]] = registration.client_id
        outputs["appSecretEndDate"] = registration.secret_end_date
    return outputs
