"""Optional (photoshare:b2cCreateApp): the app registration itself, created in the B2C tenant.

Registered for B2C user flows, with the site's /auth/callback as redirect URI and the one Graph
*application* permission the email lookup needs (User.Read.All), admin-consented here.
The deploying identity must be able to sign in to the B2C tenant (e.g.
`az login --tenant <b2c>.onmicrosoft.com --allow-no-subscriptions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azuread as azuread

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_USER_READ_ALL_ROLE = "df021288-bdef-4463-88db-98f22de89214"  # application permission
GRAPH_OPENID_SCOPE = "37f7f235-527c-4136-accd-4a02d197296e"
GRAPH_OFFLINE_ACCESS_SCOPE = "7427e0e9-2fba-42fe-b0c0-848c9e6a8182"


@dataclass(kw_only=True)
class B2CAppArgs:
    """Inputs of B2CApp; the redirect URI is known before the web app exists (see naming)."""

    tenant_id: str
    display_name: str
    redirect_uri: pulumi.Input[str]


class B2CApp(pulumi.ComponentResource):
    """App registration + service principal + client secret + consented Graph permissions."""

    client_id: pulumi.Output[str]
    client_secret: pulumi.Output[str]

    def __init__(self, name: str, args: B2CAppArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("photoshare:b2c:B2CApp", name, None, opts)
        # Everything here lives in the B2C directory, never in the deploying identity's tenant.
        self.provider = azuread.Provider(
            f"{name}-b2c-tenant", tenant_id=args.tenant_id, opts=pulumi.ResourceOptions(parent=self)
        )
        in_b2c = pulumi.ResourceOptions(parent=self, provider=self.provider)

        self.application = azuread.Application(
            f"{name}-registration",
            display_name=args.display_name,
            # "Accounts in any identity provider or organizational directory (user flows)".
            sign_in_audience="AzureADandPersonalMicrosoftAccount",
            api=azuread.ApplicationApiArgs(requested_access_token_version=2),
            web=azuread.ApplicationWebArgs(
                redirect_uris=[args.redirect_uri],
                implicit_grant=azuread.ApplicationWebImplicitGrantArgs(
                    access_token_issuance_enabled=False, id_token_issuance_enabled=False
                ),
            ),
            required_resource_accesses=[
                azuread.ApplicationRequiredResourceAccessArgs(
                    resource_app_id=GRAPH_APP_ID,
                    resource_accesses=[
                        azuread.ApplicationRequiredResourceAccessResourceAccessArgs(
                            id=GRAPH_USER_READ_ALL_ROLE, type="Role"
                        ),
                        azuread.ApplicationRequiredResourceAccessResourceAccessArgs(
                            id=GRAPH_OPENID_SCOPE, type="Scope"
                        ),
                        azuread.ApplicationRequiredResourceAccessResourceAccessArgs(
                            id=GRAPH_OFFLINE_ACCESS_SCOPE, type="Scope"
                        ),
                    ],
                )
            ],
            opts=in_b2c,
        )
        self.service_principal = azuread.ServicePrincipal(
            f"{name}-sp", client_id=self.application.client_id, opts=in_b2c
        )
        self.password = azuread.ApplicationPassword(
            f"{name}-secret",
            application_id=self.application.id,
            display_name="photoshare app-only Graph token",
            opts=in_b2c,
        )
        graph = azuread.get_service_principal_output(
            client_id=GRAPH_APP_ID, opts=pulumi.InvokeOutputOptions(provider=self.provider)
        )
        # Admin consent: the application permission, and the sign-in scopes user flows need.
        self.graph_role = azuread.AppRoleAssignment(
            f"{name}-graph-user-read-all",
            app_role_id=GRAPH_USER_READ_ALL_ROLE,
            principal_object_id=self.service_principal.object_id,
            resource_object_id=graph.object_id,
            opts=in_b2c,
        )
        self.graph_scopes = azuread.ServicePrincipalDelegatedPermissionGrant(
            f"{name}-graph-signin-scopes",
            service_principal_object_id=self.service_principal.object_id,
            resource_service_principal_object_id=graph.object_id,
            claim_values=["openid", "offline_access"],
            opts=in_b2c,
        )

        self.client_id = self.application.client_id
        self.client_secret = pulumi.Output.secret(self.password.value)
        self.register_outputs({"client_id": self.client_id})
