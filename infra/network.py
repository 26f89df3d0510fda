"""The private network (dbNetwork=vnet): PostgreSQL and Key Vault with no public endpoint.

The web app joins one delegated subnet through regional VNet integration, the server sits in
another, and Key Vault's private endpoint in a third: App Service's integration subnet is its
plan's alone and the server's is delegated to PostgreSQL, so neither can hold an endpoint.
Private DNS zones linked to the VNet resolve the server's and the vault's names to their
private addresses.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import network, privatedns

# The zone Key Vault's private endpoints register in: the vault's own name,
# `<vault>.vault.azure.net`, is a CNAME to `<vault>.privatelink.vaultcore.azure.net`, which this
# zone answers inside the VNet (MicrosoftDocs/azure-docs articles/private-link/
# private-endpoint-dns.md; articles/key-vault/general/private-link-service.md).
KEY_VAULT_PRIVATE_ZONE = "privatelink.vaultcore.azure.net"
SUBNETS = ("app", "postgres", "endpoints")  # the first three /24s of the address space, in order


@dataclass(kw_only=True)
class PrivateNetworkArgs:
    """Inputs of PrivateNetwork; the three /24 subnets are the first three of `address_space`."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    vnet_name: pulumi.Input[str]
    postgres_zone_name: pulumi.Input[str]
    tags: pulumi.Input[dict[str, str]]
    address_space: str = "10.20.0.0/16"


class PrivateNetwork(pulumi.ComponentResource):
    """VNet + app subnet (Microsoft.Web) + database subnet (PostgreSQL) + private endpoint
    subnet, and the private DNS zones of the server and of Key Vault."""

    app_subnet_id: pulumi.Output[str]
    db_subnet_id: pulumi.Output[str]
    endpoint_subnet_id: pulumi.Output[str]
    postgres_zone_id: pulumi.Output[str]
    vault_zone_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: PrivateNetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("photoshare:network:PrivateNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        app_prefix, db_prefix, endpoint_prefix = (
            str(s)
            for s in list(ipaddress.IPv4Network(args.address_space).subnets(new_prefix=24))[: len(SUBNETS)]
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
        # Undelegated, for private endpoints (Key Vault's); no NSG, so endpoint network policies
        # stay off.
        self.endpoint_subnet = network.Subnet(
            f"{name}-endpoint-subnet",
            subnet_name="endpoints",
            resource_group_name=args.resource_group_name,
            virtual_network_name=self.vnet.name,
            address_prefix=endpoint_prefix,
            private_endpoint_network_policies=network.VirtualNetworkPrivateEndpointNetworkPolicies.DISABLED,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.db_subnet]),
        )
        self.postgres_zone, self.zone_link = self._linked_zone(
            f"{name}-postgres-zone", args.postgres_zone_name, args, child
        )
        self.vault_zone, self.vault_zone_link = self._linked_zone(
            f"{name}-vault-zone", KEY_VAULT_PRIVATE_ZONE, args, child
        )

        self.app_subnet_id = self.app_subnet.id
        self.db_subnet_id = self.db_subnet.id
        self.endpoint_subnet_id = self.endpoint_subnet.id
        # Through the links, so what uses a zone is only created once it resolves in the VNet.
        self.postgres_zone_id = _through(self.postgres_zone, self.zone_link)
        self.vault_zone_id = _through(self.vault_zone, self.vault_zone_link)
        self.register_outputs(
            {
                "app_subnet_id": self.app_subnet_id,
                "db_subnet_id": self.db_subnet_id,
                "endpoint_subnet_id": self.endpoint_subnet_id,
                "postgres_zone_id": self.postgres_zone_id,
                "vault_zone_id": self.vault_zone_id,
            }
        )

    def _linked_zone(
        self, name: str, zone_name: pulumi.Input[str], args: PrivateNetworkArgs, opts: pulumi.ResourceOptions
    ) -> tuple[privatedns.PrivateZone, privatedns.VirtualNetworkLink]:
        """A private DNS zone and its link to this VNet (`<name>` and `<name>-link`)."""
        zone = privatedns.PrivateZone(
            name,
            private_zone_name=zone_name,
            resource_group_name=args.resource_group_name,
            location="global",
            tags=args.tags,
            opts=opts,
        )
        link = privatedns.VirtualNetworkLink(
            f"{name}-link",
            private_zone_name=zone.name,
            resource_group_name=args.resource_group_name,
            location="global",
            virtual_network=privatedns.SubResourceArgs(id=self.vnet.id),
            registration_enabled=False,
            tags=args.tags,
            opts=opts,
        )
        return zone, link


def _through(zone: privatedns.PrivateZone, link: privatedns.VirtualNetworkLink) -> pulumi.Output[str]:
    """The zone's id, carrying the link as a dependency of whatever takes it."""
    return pulumi.Output.all(zone.id, link.id).apply(lambda ids: ids[0])
