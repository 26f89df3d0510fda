"""PostgreSQL Flexible Server: TLS required, VNet or narrow firewall, and no password between
the app and its data (Microsoft Entra authentication) unless `photoshare:dbAuth=password`.

With Entra authentication the server has no password login at all. A user-assigned identity,
the schema's owner, is the server's Microsoft Entra administrator; the app's migrations run as
it (DATABASE_OWNER_URL, DATABASE_OWNER_CLIENT_ID) and create the app's own role for the web
app's system-assigned identity (`pgaadauth_create_principal`, by the identity's name, which is
the web app's), then grant it the data and nothing else (app/db.py). Nothing has to reach the
server from the deploying machine, which in VNet mode it cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

import pulumi
import pulumi_random as random
from pulumi_azure_native import dbforpostgresql as pg
from pulumi_azure_native import managedidentity

from infra.config import FirewallRange

ADMIN_LOGIN = "photoshare"
DATABASE_NAME = "photoshare"


@dataclass(kw_only=True)
class DatabaseArgs:
    """Inputs of Database; network is VNet-integrated when `delegated_subnet_id` is given."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    server_name: pulumi.Input[str]
    tags: pulumi.Input[dict[str, str]]
    version: str = "16"
    sku_name: str = "Standard_B1ms"
    sku_tier: str = "Burstable"
    storage_gb: int = 32
    backup_retention_days: int = 7
    high_availability: bool = False
    delegated_subnet_id: pulumi.Input[str] | None = None
    private_dns_zone_id: pulumi.Input[str] | None = None
    firewall_rules: Sequence[FirewallRange] = field(default_factory=tuple)
    database_name: str = DATABASE_NAME
    auth: Literal["entra", "password"] = "entra"
    # With Entra: the tenant of the identities (the deploying one), the owner identity's name,
    # and the app's role: the web app's name, its system-assigned identity's display name.
    tenant_id: pulumi.Input[str] | None = None
    owner_identity_name: pulumi.Input[str] | None = None
    app_role: pulumi.Input[str] | None = None


TLS = "sslmode=verify-full&sslrootcert=system"  # the server's certificate and name, system roots


class Database(pulumi.ComponentResource):
    """Flexible Server + `require_secure_transport=on` + the app's database.

    Entra (the default): the owner identity as the server's Entra administrator, `database_url`
    and `owner_url` without a password. Password (`photoshare:dbAuth=password`, the fallback):
    a pulumi_random admin password, which only leaves this component inside `database_url`, a
    Pulumi secret that the program stores in Key Vault; the app then uses that one role.
    """

    server: pg.Server
    password: random.RandomPassword | None
    owner: managedidentity.UserAssignedIdentity | None
    server_name: pulumi.Output[str]
    fqdn: pulumi.Output[str]
    database_url: pulumi.Output[str]
    owner_url: pulumi.Output[str] | None

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("photoshare:database:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vnet = args.delegated_subnet_id is not None
        entra = args.auth == "entra"
        self.password = None
        self.owner = None
        login: dict[str, pulumi.Input[str]] = {}
        app_role = args.app_role
        if entra:
            if args.tenant_id is None or args.owner_identity_name is None or app_role is None:
                raise ValueError("Entra authentication needs tenant_id, owner_identity_name and app_role")
            self.owner = managedidentity.UserAssignedIdentity(
                f"{name}-owner",
                resource_name_=args.owner_identity_name,
                resource_group_name=args.resource_group_name,
                location=args.location,
                tags=args.tags,
                opts=child,
            )
            auth = pg.AuthConfigArgs(
                password_auth=pg.PasswordBasedAuth.DISABLED,
                active_directory_auth=pg.MicrosoftEntraAuth.ENABLED,
                tenant_id=args.tenant_id,
            )
        else:
            # URL-safe specials only: the password is embedded in DATABASE_URL.
            self.password = random.RandomPassword(
                f"{name}-admin-password",
                length=32,
                special=True,
                override_special="-_.~",
                min_lower=2,
                min_upper=2,
                min_numeric=2,
                min_special=2,
                opts=child,
            )
            login = {
                "administrator_login": ADMIN_LOGIN,
                "administrator_login_password": pulumi.Output.secret(self.password.result),
            }
            auth = pg.AuthConfigArgs(
                password_auth=pg.PasswordBasedAuth.ENABLED,
                active_directory_auth=pg.MicrosoftEntraAuth.DISABLED,
            )
        self.server = pg.Server(
            f"{name}-server",
            server_name=args.server_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            version=args.version,
            **login,
            auth_config=auth,
            sku=pg.SkuArgs(name=args.sku_name, tier=args.sku_tier),
            storage=pg.StorageArgs(storage_size_gb=args.storage_gb),
            backup=pg.BackupArgs(
                backup_retention_days=args.backup_retention_days,
                geo_redundant_backup=pg.GeographicallyRedundantBackup.DISABLED,
            ),
            high_availability=pg.HighAvailabilityArgs(
                mode=(
                    pg.PostgreSqlFlexibleServerHighAvailabilityMode.ZONE_REDUNDANT
                    if args.high_availability
                    else pg.PostgreSqlFlexibleServerHighAvailabilityMode.DISABLED
                ),
            ),
            network=(
                pg.NetworkArgs(
                    delegated_subnet_resource_id=args.delegated_subnet_id,
                    private_dns_zone_arm_resource_id=args.private_dns_zone_id,
                    public_network_access=pg.ServerPublicNetworkAccessState.DISABLED,
                )
                if vnet
                else pg.NetworkArgs(public_network_access=pg.ServerPublicNetworkAccessState.ENABLED)
            ),
            tags=args.tags,
            opts=child,
        )
        self.require_tls = pg.Configuration(
            f"{name}-require-secure-transport",
            resource_group_name=args.resource_group_name,
            server_name=self.server.name,
            configuration_name="require_secure_transport",
            value="on",
            source="user-override",
            opts=child,
        )
        self.database = pg.Database(
            f"{name}-db",
            resource_group_name=args.resource_group_name,
            server_name=self.server.name,
            database_name=args.database_name,
            charset="UTF8",
            collation="en_US.utf8",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.require_tls]),
        )
        # A Flexible Server applies one change at a time (concurrent ones fail as ServerBusy),
        # so the database and each firewall rule wait for the previous change.
        previous: pulumi.Resource = self.database
        self.firewall_rules: list[pg.FirewallRule] = []
        for rule in [] if vnet else args.firewall_rules:
            previous = pg.FirewallRule(
                f"{name}-fw-{rule.name}",
                resource_group_name=args.resource_group_name,
                server_name=self.server.name,
                firewall_rule_name=rule.name,
                start_ip_address=rule.start,
                end_ip_address=rule.end,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[previous]),
            )
            self.firewall_rules.append(previous)

        self.server_name = self.server.name
        self.fqdn = self.server.fully_qualified_domain_name
        self.owner_url = None
        if self.owner is not None:
            # "Manage Microsoft Entra roles" (Azure Database for PostgreSQL): an administrator
            # set through ARM may create the other Entra roles; a managed identity is a
            # service principal, named by its display name.
            self.entra_admin = pg.AdministratorsMicrosoftEntra(
                f"{name}-entra-admin",
                resource_group_name=args.resource_group_name,
                server_name=self.server.name,
                object_id=self.owner.principal_id,
                principal_name=self.owner.name,
                principal_type=pg.PrincipalType.SERVICE_PRINCIPAL,
                tenant_id=args.tenant_id,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[previous]),
            )
            assert app_role is not None  # checked above
            self.database_url = self._url(app_role)
            self.owner_url = self._url(self.owner.name)
            self.owner_client_id: pulumi.Output[str] | None = self.owner.client_id
            self.owner_identity_id: pulumi.Output[str] | None = self.owner.id
        else:
            assert self.password is not None
            self.database_url = self._url(ADMIN_LOGIN, self.password.result)
            self.owner_client_id = self.owner_identity_id = None
        self.register_outputs(
            {
                "server_name": self.server_name,
                "fqdn": self.fqdn,
                "database_url": self.database_url,
            }
        )

    def _url(self, user: pulumi.Input[str], password: pulumi.Input[str] | None = None) -> pulumi.Output[str]:
        """The app's database as `user` (with `password`, URL-quoted), verifying the server."""

        def url(parts: list[str]) -> str:
            login = parts[0] + (f":{quote(parts[3], safe='')}" if len(parts) > 3 else "")
            return f"postgresql://{login}@{parts[1]}:5432/{parts[2]}?{TLS}"

        given = [user, self.fqdn, self.database.name, *([password] if password is not None else [])]
        return pulumi.Output.secret(pulumi.Output.all(*given).apply(url))


@dataclass(kw_only=True)
class AppFirewallArgs:
    """Inputs of AppFirewall: the web app's comma-separated outbound addresses."""

    resource_group_name: pulumi.Input[str]
    server_name: pulumi.Input[str]
    outbound_ip_addresses: pulumi.Input[str]
    slots: int


class AppFirewall(pulumi.ComponentResource):
    """Public mode only: one firewall rule per web-app outbound address, in fixed slots.

    The address list is only known after the app exists and resources must not be created
    inside apply(), so `slots` rules are declared up front and slot i takes address
    i mod n (spare slots repeat an address). More addresses than slots fails the update
    with a message saying which setting to raise.
    """

    def __init__(self, name: str, args: AppFirewallArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("photoshare:database:AppFirewall", name, None, opts)
        addresses = pulumi.Output.from_input(args.outbound_ip_addresses).apply(
            lambda raw: _addresses(raw, args.slots)
        )
        self.rules: list[pg.FirewallRule] = []
        for index in range(args.slots):  # one at a time, like every change to the server
            self.rules.append(
                pg.FirewallRule(
                    f"{name}-{index}",
                    resource_group_name=args.resource_group_name,
                    server_name=args.server_name,
                    firewall_rule_name=f"app-outbound-{index}",
                    start_ip_address=_slot(addresses, index),
                    end_ip_address=_slot(addresses, index),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=self.rules[-1:]),
                )
            )
        self.register_outputs({"addresses": addresses})


def _slot(addresses: pulumi.Output[list[str]], index: int) -> pulumi.Output[str]:
    """Slot `index` of the fixed rule set; spare slots repeat an address."""
    return addresses.apply(lambda ips: ips[index % len(ips)])


def _addresses(raw: str, slots: int) -> list[str]:
    addresses = sorted({a.strip() for a in raw.split(",") if a.strip()})
    if not addresses:
        raise pulumi.RunError("the web app reported no outbound IP addresses")
    if len(addresses) > slots:
        raise pulumi.RunError(
            f"the web app has {len(addresses)} possible outbound addresses but "
            f"photoshare:dbAppIpSlots is {slots}; raise it to {len(addresses)} "
            "or use photoshare:dbNetwork=vnet"
        )
    return addresses
