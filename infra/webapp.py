"""App Service: Linux plan + Python web app, hardened, built by App Service from the deployed zip."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import monitor, network, web

from infra.identity import STORAGE_BLOB_DATA_CONTRIBUTOR, assign_role

# The app's own gunicorn settings (gthread workers, 120 s timeout, logs to stdout), run as
# `python -m`, from the virtual environment the build automation made, on the port App Service's
# Python image routes to.
STARTUP_COMMAND = (
    "python -m gunicorn --config python:app.gunicorn_conf --bind=0.0.0.0:8000 'app:create_app()'"
)
# OneDeploy runs App Service's build automation (Oryx): a virtual environment from the package's
# requirements.txt. Without it a zip deploy only unpacks, and the app finds no dependency.
BUILD_SETTINGS = {"SCM_DO_BUILD_DURING_DEPLOYMENT": "true"}
# Liveness, not readiness: App Service replaces instances its health check marks unhealthy, and
# /readyz fails on every instance at once when PostgreSQL or Storage does.
HEALTH_CHECK_PATH = "/healthz"
LOG_CATEGORIES = (
    "AppServiceHTTPLogs",
    "AppServiceConsoleLogs",
    "AppServicePlatformLogs",
)


@dataclass(kw_only=True)
class WebAppArgs:
    """Inputs of WebApp; `app_settings` come from infra/appsettings.py render()."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    plan_name: pulumi.Input[str]
    app_name: pulumi.Input[str]
    tags: pulumi.Input[dict[str, str]]
    subscription_id: str
    sku: str
    capacity: int
    python_version: str
    app_settings: Sequence[web.NameValuePairArgs]
    platform_identity_id: pulumi.Input[str]
    other_identity_ids: Sequence[pulumi.Input[str]] = ()
    # What the site's first start needs in place (roles, their propagation, Key Vault's private
    # endpoint and its DNS record): a component's own depends_on does not order its children's
    # creation, so the site itself waits for these; `pulumi destroy` then deletes the site first.
    start_after: Sequence[pulumi.Resource] = ()
    blob_data_scope: pulumi.Input[str]
    # The VNet integration subnet. The plan holds a service association link on it, so the plan
    # depends on it: `pulumi destroy` then deletes site and plan before Azure is asked to delete
    # the subnet (which it refuses while the link exists). Given, all outbound traffic is routed
    # into the VNet.
    subnet: network.Subnet | None = None
    log_workspace_id: pulumi.Input[str] | None = None


class WebApp(pulumi.ComponentResource):
    """Linux plan, web app (system + platform identity), blob role, logs, no basic auth.

    HTTPS only, TLS 1.2, FTPS disabled, FTP/SCM basic-auth publishing off, always on,
    health check on /healthz, gunicorn serving `app:create_app()`.
    """

    plan: web.AppServicePlan
    app: web.WebApp
    default_host_name: pulumi.Output[str]
    principal_id: pulumi.Output[str]
    outbound_ip_addresses: pulumi.Output[str]

    def __init__(self, name: str, args: WebAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("photoshare:webapp:WebApp", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        in_subnet = pulumi.ResourceOptions(parent=self, depends_on=[args.subnet] if args.subnet else [])
        site_after = pulumi.ResourceOptions.merge(
            in_subnet, pulumi.ResourceOptions(depends_on=list(args.start_after))
        )
        # In the VNet, every outbound call goes through it. Key Vault is reachable there only
        # through its private endpoint, and "Linux applications that connect to private endpoints
        # must be explicitly configured to route all traffic through the virtual network"
        # (MicrosoftDocs/azure-docs articles/app-service/app-service-key-vault-references.md,
        # "Access network-restricted vaults"): `outboundVnetRouting.allTraffic`, which also covers
        # the platform's own configuration traffic such as resolving the references, with the
        # legacy `vnetRouteAllEnabled` kept in agreement (articles/app-service/
        # configure-vnet-integration-routing.md). The internet stays reachable without a NAT
        # gateway: "When all traffic routing is enabled, outbound traffic is still sent from the
        # addresses that are listed in your app properties, unless you provide routes that direct
        # the traffic elsewhere" (articles/app-service/overview-vnet-integration.md, "Application
        # routing"), and the integration subnet has no route table.
        route_all = args.subnet is not None

        self.plan = web.AppServicePlan(
            f"{name}-plan",
            name=args.plan_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="linux",
            reserved=True,  # Linux
            sku=web.SkuDescriptionArgs(name=args.sku, capacity=args.capacity),
            tags=args.tags,
            opts=in_subnet,
        )
        self.app = web.WebApp(
            f"{name}-app",
            name=args.app_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="app,linux",
            server_farm_id=self.plan.id,
            https_only=True,
            client_affinity_enabled=False,  # sessions live in a signed cookie; any instance serves
            identity=web.ManagedServiceIdentityArgs(
                type=web.ManagedServiceIdentityType.SYSTEM_ASSIGNED_USER_ASSIGNED,
                user_assigned_identities=[args.platform_identity_id, *args.other_identity_ids],
            ),
            key_vault_reference_identity=args.platform_identity_id,
            virtual_network_subnet_id=args.subnet.id if args.subnet else None,
            site_config=web.SiteConfigArgs(
                linux_fx_version=f"PYTHON|{args.python_version}",
                app_command_line=STARTUP_COMMAND,
                app_settings=list(args.app_settings),
                always_on=True,
                ftps_state=web.FtpsState.DISABLED,
                min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
                scm_min_tls_version=web.SupportedTlsVersions.SUPPORTED_TLS_VERSIONS_1_2,
                http20_enabled=True,
                health_check_path=HEALTH_CHECK_PATH,
                remote_debugging_enabled=False,
                vnet_route_all_enabled=route_all,
            ),
            outbound_vnet_routing=web.OutboundVnetRoutingArgs(all_traffic=True) if route_all else None,
            tags=args.tags,
            opts=site_after,
        )
        # Deployment goes through `pulumi up` with an Entra token (infra/deploy.py), never FTP or
        # Kudu with publishing passwords.
        self.ftp_basic_auth = web.WebAppFtpAllowed(
            f"{name}-ftp-basic-auth",
            name=self.app.name,
            resource_group_name=args.resource_group_name,
            allow=False,
            opts=child,
        )
        self.scm_basic_auth = web.WebAppScmAllowed(
            f"{name}-scm-basic-auth",
            name=self.app.name,
            resource_group_name=args.resource_group_name,
            allow=False,
            opts=child,
        )

        self.principal_id = self.app.identity.apply(lambda i: i.principal_id if i else "")
        # Contributor includes generateUserDelegationKey, needed for the read-only image links.
        self.blob_data = assign_role(
            f"{name}-blob-data-contributor",
            subscription_id=args.subscription_id,
            role=STORAGE_BLOB_DATA_CONTRIBUTOR,
            principal_id=self.principal_id,
            scope=args.blob_data_scope,
            description="photoshare: the web app reads and writes image blobs",
            parent=self,
        )
        if args.log_workspace_id is not None:
            self.diagnostics = monitor.DiagnosticSetting(
                f"{name}-diagnostics",
                name="photoshare-logs",
                resource_uri=self.app.id,
                workspace_id=args.log_workspace_id,
                logs=[
                    monitor.DiagnosticsLogSettingsArgs(category=category, enabled=True)
                    for category in LOG_CATEGORIES
                ],
                opts=child,
            )

        self.default_host_name = self.app.default_host_name
        self.outbound_ip_addresses = self.app.possible_outbound_ip_addresses
        self.register_outputs(
            {
                "default_host_name": self.default_host_name,
                "principal_id": self.principal_id,
            }
        )
