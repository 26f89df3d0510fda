"""Managed identities and their role assignments.

The app itself runs as its system-assigned identity (blob data, user-delegation SAS). The
platform's own read before the app starts — the Key Vault references — uses a user-assigned
identity whose role exists before the site does, so the very first start resolves them instead
of racing the system identity's role assignments.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, managedidentity

# Built-in role definition ids (the same GUID in every subscription).
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"  # incl. user delegation key
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"


def role_definition_id(subscription_id: str, role: str) -> str:
    """The full id ARM expects for a built-in role in this subscription."""
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"


def assign_role(
    name: str,
    *,
    subscription_id: str,
    role: str,
    principal_id: pulumi.Input[str],
    scope: pulumi.Input[str],
    description: str,
    parent: pulumi.Resource,
) -> authorization.RoleAssignment:
    """A role assignment to a managed identity (principal type given, so a fresh identity works)."""
    return authorization.RoleAssignment(
        name,
        role_definition_id=role_definition_id(subscription_id, role),
        principal_id=principal_id,
        principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
        scope=scope,
        description=description,
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass(kw_only=True)
class PlatformIdentityArgs:
    """Inputs of PlatformIdentity: what the platform must read before the app starts."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    identity_name: pulumi.Input[str]
    subscription_id: str
    vault_id: pulumi.Input[str]
    tags: pulumi.Input[dict[str, str]]


class PlatformIdentity(pulumi.ComponentResource):
    """User-assigned identity with Key Vault Secrets User on the app's vault."""

    identity: managedidentity.UserAssignedIdentity
    identity_id: pulumi.Output[str]
    principal_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: PlatformIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("photoshare:identity:PlatformIdentity", name, None, opts)
        self.identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_name_=args.identity_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.secrets_user = assign_role(
            f"{name}-kv-secrets-user",
            subscription_id=args.subscription_id,
            role=KEY_VAULT_SECRETS_USER,
            principal_id=self.identity.principal_id,
            scope=args.vault_id,
            description="photoshare: resolve the web app's Key Vault references",
            parent=self,
        )
        self.identity_id = self.identity.id
        self.principal_id = self.identity.principal_id
        self.register_outputs({"identity_id": self.identity_id, "principal_id": self.principal_id})
