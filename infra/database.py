"""PostgreSQL Flexible Server: TLS required, generated admin password, VNet or narrow firewall."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import pulumi
import pulumi_random as random
from pulumi_azure_native import dbforpostgresql as pg

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


class Database(pulumi.ComponentResource):
    """Flexible Server + `require_secure_transport=on` + the app's database.

    The admin password comes from pulumi_random and only leaves this component inside
    `database_url`, a Pulumi secret that the program stores in Key Vault.
    """

    server: pg.Server
    password: random.RandomPassword
    server_name: pulumi.Output[str]
    fqdn: pulumi.Output[str]
    database_url: pulumi.Output[str]

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("photoshare:database:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vnet = args.delegated_subnet_id is not None

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
        admin_password: pulumi.Output[str] = pulumi.Output.secret(self.password.result)
        self.server = pg.Server(
            f"{name}-server",
            server_name=args.server_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            version=args.version,
            administrator_login=ADMIN_LOGIN,
            administrator_login_password=admin_password,
            auth_config=pg.AuthConfigArgs(
                password_auth=pg.PasswordBasedAuth.ENABLED,
                active_directory_auth=pg.MicrosoftEntraAuth.DISABLED,
            ),
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
        self.database_url = pulumi.Output.secret(
            pulumi.Output.all(self.password.result, self.fqdn, self.database.name).apply(
                lambda parts: (
                    f"postgresql://{ADMIN_LOGIN}:{quote(parts[0], safe='')}@{parts[1]}:5432/"
                    f"{parts[2]}?sslmode=verify-full&sslrootcert=system"
                )
            )
        )
        self.register_outputs(
            {
                "server_name": self.server_name,
                "fqdn": self.fqdn,
                "database_url": self.database_url,
            }
        )


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
