"""Key Vault holding the app's secrets; the web app reads them through Key Vault references.

With a private network (dbNetwork=vnet) the vault has no public endpoint: the site reaches it
through a private endpoint in the VNet, and Pulumi writes its secrets through Resource Manager.

(Named `vault.py`, not `secrets.py`: Pulumi runs `infra/` with that directory on sys.path,
where a `secrets` module would shadow the standard library's.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_random as random
from pulumi_azure_native import keyvault, network

# Days a deleted vault is kept (and its name taken). Azure allows 7 to 90.
DEVELOPMENT_RETENTION_DAYS = 7
PRODUCTION_RETENTION_DAYS = 90


@dataclass(kw_only=True)
class VaultPrivateEndpoint:
    """Where the vault's private endpoint goes, and the zone that resolves it in the VNet."""

    name: pulumi.Input[str]
    subnet_id: pulumi.Input[str]  # undelegated: not App Service's integration subnet nor PostgreSQL's
    dns_zone_id: pulumi.Input[str]  # privatelink.vaultcore.azure.net, linked to the VNet


@dataclass(kw_only=True)
class AppSecretsArgs:
    """Secret values by Key Vault secret name, plus names whose value is generated here."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    vault_name: pulumi.Input[str]
    tenant_id: pulumi.Input[str]
    tags: pulumi.Input[dict[str, str]]
    values: Mapping[str, pulumi.Input[str]]
    generated: Sequence[str] = field(default_factory=tuple)
    # A production vault cannot be purged while soft-deleted: its secrets survive a mistaken
    # `pulumi destroy` for the retention period. Irreversible once on (Azure refuses `false`).
    purge_protection: bool = False
    # Given: public network access off, the vault reached through this endpoint only.
    private_endpoint: VaultPrivateEndpoint | None = None


class AppSecrets(pulumi.ComponentResource):
    """A Key Vault with RBAC authorization (no access policies) and one secret per entry.

    Generated values (the Flask SECRET_KEY) come from pulumi_random and stay in state as
    Pulumi secrets; every value is wrapped with Output.secret before it reaches Key Vault.
    """

    vault: keyvault.Vault
    # What a reader in the VNet needs in place before its first read: the endpoint and its DNS
    # record (empty when the vault is public).
    private_access: list[pulumi.Resource]
    vault_id: pulumi.Output[str]
    vault_name: pulumi.Output[str]
    vault_uri: pulumi.Output[str]
    secret_uris: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: AppSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("photoshare:vault:AppSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        private = args.private_endpoint is not None

        self.vault = keyvault.Vault(
            f"{name}-vault",
            vault_name=args.vault_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=args.tenant_id,
                sku=keyvault.SkuArgs(family=keyvault.SkuFamily.A, name=keyvault.SkuName.STANDARD),
                enable_rbac_authorization=True,
                # Purge protection needs soft delete, which Azure no longer lets anyone turn off.
                enable_soft_delete=True,
                soft_delete_retention_in_days=(
                    PRODUCTION_RETENTION_DAYS if args.purge_protection else DEVELOPMENT_RETENTION_DAYS
                ),
                enable_purge_protection=True if args.purge_protection else None,
                enabled_for_deployment=False,
                enabled_for_disk_encryption=False,
                enabled_for_template_deployment=False,
                # With a private endpoint, no public access: "Key Vault firewalls and virtual network
                # rules only apply to the data plane … control plane operations (… deployment of
                # secrets or keys through ARM templates) are not affected" (MicrosoftDocs/azure-docs
                # articles/key-vault/general/overview-vnet-service-endpoints.md), and
                # pulumi-azure-native writes secrets through Resource Manager
                # (Microsoft.KeyVault/vaults/secrets), so `pulumi up` keeps writing them. Without
                # one (dbNetwork=public: no VNet), reachable over the internet, with Entra ID and
                # RBAC deciding every read. The AzureServices bypass stays in both: Azure's trusted
                # services still need a token and a role here, and none has one.
                public_network_access="Disabled" if private else "Enabled",
                network_acls=keyvault.NetworkRuleSetArgs(
                    default_action=(
                        keyvault.NetworkRuleAction.DENY if private else keyvault.NetworkRuleAction.ALLOW
                    ),
                    bypass=keyvault.NetworkRuleBypassOptions.AZURE_SERVICES,
                ),
            ),
            tags=args.tags,
            opts=child,
        )

        self.private_access = (
            self._private_endpoint(name, args.resource_group_name, args.location, args.tags, endpoint)
            if (endpoint := args.private_endpoint) is not None
            else []
        )

        values: dict[str, pulumi.Input[str]] = dict(args.values)
        self.generated = {
            secret_name: random.RandomPassword(f"{name}-{secret_name}", length=64, special=False, opts=child)
            for secret_name in args.generated
        }
        values.update({n: p.result for n, p in self.generated.items()})

        self.secrets = {
            secret_name: keyvault.Secret(
                f"{name}-{secret_name}",
                secret_name=secret_name,
                vault_name=self.vault.name,
                resource_group_name=args.resource_group_name,
                properties=keyvault.SecretPropertiesArgs(value=pulumi.Output.secret(value)),
                tags=args.tags,
                opts=child,
            )
            for secret_name, value in values.items()
        }

        self.vault_id = self.vault.id
        self.vault_name = self.vault.name
        self.vault_uri = self.vault.properties.apply(lambda p: p.vault_uri)
        # Versioned URIs: a changed secret (a rotated client secret) changes the app setting, and
        # App Service resolves references again at once on a configuration change, where a
        # versionless reference may keep the old value for up to 24 hours (MicrosoftDocs/azure-docs
        # articles/app-service/app-service-key-vault-references.md, "Rotation").
        self.secret_uris = {secret_name: _secret_uri(secret) for secret_name, secret in self.secrets.items()}
        self.register_outputs(
            {
                "vault_id": self.vault_id,
                "vault_name": self.vault_name,
                "vault_uri": self.vault_uri,
                "secret_uris": self.secret_uris,
            }
        )

    def _private_endpoint(
        self,
        name: str,
        resource_group_name: pulumi.Input[str],
        location: pulumi.Input[str],
        tags: pulumi.Input[dict[str, str]],
        endpoint: VaultPrivateEndpoint,
    ) -> list[pulumi.Resource]:
        """The vault's private endpoint (sub-resource `vault`) and the zone group that writes its
        A record into privatelink.vaultcore.azure.net (MicrosoftDocs/azure-docs
        articles/key-vault/general/private-link-service.md)."""
        child = pulumi.ResourceOptions(parent=self)
        self.endpoint = network.PrivateEndpoint(
            f"{name}-vault-endpoint",
            private_endpoint_name=endpoint.name,
            resource_group_name=resource_group_name,
            location=location,
            subnet=network.SubnetArgs(id=endpoint.subnet_id),
            private_link_service_connections=[
                network.PrivateLinkServiceConnectionArgs(
                    name="vault", private_link_service_id=self.vault.id, group_ids=["vault"]
                )
            ],
            tags=tags,
            opts=child,
        )
        self.endpoint_dns = network.PrivateDnsZoneGroup(
            f"{name}-vault-endpoint-dns",
            private_dns_zone_group_name="vault",
            private_endpoint_name=self.endpoint.name,
            resource_group_name=resource_group_name,
            private_dns_zone_configs=[
                network.PrivateDnsZoneConfigArgs(name="vaultcore", private_dns_zone_id=endpoint.dns_zone_id)
            ],
            opts=child,
        )
        return [self.endpoint, self.endpoint_dns]


def _secret_uri(secret: keyvault.Secret) -> pulumi.Output[str]:
    """`https://<vault>.vault.azure.net/secrets/<name>/<version>`, known once the secret exists.

    The secret's outputs are secret because its value is; the URI holds no part of the value.
    """
    return pulumi.Output.unsecret(secret.properties.apply(lambda p: p.secret_uri_with_version))
