"""Blob Storage for the uploaded images: private, TLS 1.2, reached by managed identity only."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import storage


@dataclass(kw_only=True)
class ImageStorageArgs:
    """Inputs of ImageStorage; shared keys stay off unless a stack opts in."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    account_name: pulumi.Input[str]
    tags: pulumi.Input[dict[str, str]]
    container_name: str = "images"
    allow_shared_key_access: bool = False
    soft_delete_days: int = 7


class ImageStorage(pulumi.ComponentResource):
    """StorageV2 account + private `images` container + blob/container soft delete."""

    account: storage.StorageAccount
    container: storage.BlobContainer
    account_name: pulumi.Output[str]
    account_id: pulumi.Output[str]
    blob_endpoint: pulumi.Output[str]
    container_name: pulumi.Output[str]

    def __init__(self, name: str, args: ImageStorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("photoshare:storage:ImageStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.account = hardened_account(
            f"{name}-account",
            account_name=args.account_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            allow_shared_key_access=args.allow_shared_key_access,
            tags=args.tags,
            opts=child,
        )
        self.blob_service = storage.BlobServiceProperties(
            f"{name}-blob-service",
            account_name=self.account.name,
            resource_group_name=args.resource_group_name,
            blob_services_name="default",
            delete_retention_policy=storage.DeleteRetentionPolicyArgs(
                enabled=True, days=args.soft_delete_days
            ),
            container_delete_retention_policy=storage.DeleteRetentionPolicyArgs(
                enabled=True, days=args.soft_delete_days
            ),
            opts=child,
        )
        self.container = storage.BlobContainer(
            f"{name}-images",
            account_name=self.account.name,
            resource_group_name=args.resource_group_name,
            container_name=args.container_name,
            public_access=storage.PublicAccess.NONE,
            opts=child,
        )

        self.account_name = self.account.name
        self.account_id = self.account.id
        self.blob_endpoint = self.account.primary_endpoints.apply(lambda e: e.blob)
        self.container_name = self.container.name
        self.register_outputs(
            {
                "account_name": self.account_name,
                "account_id": self.account_id,
                "blob_endpoint": self.blob_endpoint,
                "container_name": self.container_name,
            }
        )


def hardened_account(
    resource_name: str,
    *,
    account_name: pulumi.Input[str],
    resource_group_name: pulumi.Input[str],
    location: pulumi.Input[str],
    allow_shared_key_access: bool,
    tags: pulumi.Input[dict[str, str]],
    opts: pulumi.ResourceOptions,
) -> storage.StorageAccount:
    """A StorageV2 account with what every account here shares: HTTPS only, TLS 1.2, no public
    blob access, no cross-tenant replication, and Entra ID by default when keys are off."""
    return storage.StorageAccount(
        resource_name,
        account_name=account_name,
        resource_group_name=resource_group_name,
        location=location,
        kind=storage.Kind.STORAGE_V2,
        sku=storage.SkuArgs(name=storage.SkuName.STANDARD_LRS),
        enable_https_traffic_only=True,
        minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
        allow_blob_public_access=False,
        allow_shared_key_access=allow_shared_key_access,
        # Entra ID is the default in the portal too, so nobody reaches for the keys.
        default_to_o_auth_authentication=not allow_shared_key_access,
        allow_cross_tenant_replication=False,
        public_network_access=storage.PublicNetworkAccess.ENABLED,
        tags=tags,
        opts=opts,
    )
