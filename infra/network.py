"""The private network (dbNetwork=vnet): PostgreSQL with no public endpoint, reached by the app.

The web app joins one delegated subnet through regional VNet integration, the server sits in
another, and a private DNS zone linked to the VNet resolves the server's name to its address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import network, privatedns


@dataclass(kw_only=True)
class PrivateNetworkArgs:
    """Inputs of PrivateNetwork; the two /24 subnets are the first two of `address_space`."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    vnet_name: pulumi.Input[str]
    postgres_zone_name: pulumi.Input[str]
    tags: pulumi.Input[dict[str, str]]
    address_space: str = "10.20.0.0/16"


class PrivateNetwork(pulumi.ComponentResource):
    """VNet + app subnet (Microsoft.Web) + database subnet (PostgreSQL) + private DNS zone."""

    app_subnet_id: pulumi.Output[str]
    db_subnet_id: pulumi.Output[str]
    postgres_zone_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: PrivateNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("photoshare:network:PrivateNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        app_prefix, db_prefix = (
            str(s) for s in list(ipaddress.IPv4Network(args.address_space).subnets(new_prefix=24))[:2]
        )

        self.vnet = network.VirtualNetwork(
            f"{name}-vnet",
            virtual_network_name=args.vnet_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            address_space=network.AddressSpaceArgs(address_prefixes=[args.address_space]),
            tags=args.tags,
            opts=child,
        )
        self.app_subnet = network.Subnet(
            f"{name}-app-subnet",
            subnet_name="app",
            resource_group_name=args.resource_group_name,
            virtual_network_name=self.vnet.name,
            address_prefix=app_prefix,
            delegations=[network.DelegationArgs(name="web", service_name="Microsoft.Web/serverFarms")],
            opts=child,
        )
        # Subnets of one VNet cannot be changed concurrently, hence the explicit ordering.
        self.db_subnet = network.Subnet(
            f"{name}-db-subnet",
            subnet_name="postgres",
            resource_group_name=args.resource_group_name,
            virtual_network_name=self.vnet.name,
            address_prefix=db_prefix,
            delegations=[
                network.DelegationArgs(
                    name="postgres", service_name="Microsoft.DBforPostgreSQL/flexibleServers"
                )
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.app_subnet]),
        )
        self.postgres_zone = privatedns.PrivateZone(
            f"{name}-postgres-zone",
            private_zone_name=args.postgres_zone_name,
            resource_group_name=args.resource_group_name,
            location="global",
            tags=args.tags,
            opts=child,
        )
        self.zone_link = privatedns.VirtualNetworkLink(
            f"{name}-postgres-zone-link",
            private_zone_name=self.postgres_zone.name,
            resource_group_name=args.resource_group_name,
            location="global",
            virtual_network=privatedns.SubResourceArgs(id=self.vnet.id),
            registration_enabled=False,
            tags=args.tags,
            opts=child,
        )

        self.app_subnet_id = self.app_subnet.id
        self.db_subnet_id = self.db_subnet.id
        # Through the link, so the server is only created once the zone resolves in the VNet.
        self.postgres_zone_id = pulumi.Output.all(self.postgres_zone.id, self.zone_link.id).apply(
            lambda ids: ids[0]
        )
        self.register_outputs(
            {
                "app_subnet_id": self.app_subnet_id,
                "db_subnet_id": self.db_subnet_id,
                "postgres_zone_id": self.postgres_zone_id,
            }
        )
