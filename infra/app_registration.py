"""Optional (`photoshare:b2cCreateApp` / `photoshare:externalIdCreateApp`): the app registration
itself, created in the identity directory (the B2C tenant or the external tenant).

One web app registration per platform, with the site's /auth/callback and / as redirect URIs,
the one Graph *application* permission the email lookup needs (User.Read.All) and the sign-in
scopes, all admin-consented here, and a client secret that lapses a configured number of months
after its creation (12 by default) or on a configured date.
The deploying identity must be able to sign in to that tenant (e.g.
`az login --tenant <tenant id> --allow-no-subscriptions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azuread as azuread

from app.settings import Platform
from infra.secret_lifetime import DEFAULT_MONTHS, SecretEndDate

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_USER_READ_ALL_ROLE = "df021288-bdef-4463-88db-98f22de89214"  # application permission
# Delegated Graph permissions (OpenID Connect scopes) by claim value.
GRAPH_SCOPES = {
    "openid": "37f7f235-527c-4136-accd-4a02d197296e",
    "offline_access": "7427e0e9-2fba-42fe-b0c0-848c9e6a8182",
    "profile": "14dad69e-099b-42c9-810b-d002981feec1",
    "email": "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0",
}


@dataclass(frozen=True)
class RegistrationProfile:
    """What differs between a B2C and an External ID app registration."""

    sign_in_audience: str
    scopes: tuple[str, ...]  # delegated Graph scopes, requested and admin-consented
    id_token_claims: tuple[str, ...]  # optional claims added to the ID token


PROFILES: dict[Platform, RegistrationProfile] = {
    # "Accounts in any identity provider or organizational directory (for authenticating users
    # with user flows)".
    "b2c": RegistrationProfile("AzureADandPersonalMicrosoftAccount", ("openid", "offline_access"), ()),
    # External tenant apps are "Accounts in this organizational directory only" (MicrosoftDocs/
    # entra-docs docs/external-id/customers/how-to-register-ciam-app.md). Customers cannot consent
    # themselves, so the admin consents to every scope MSAL asks for (openid, profile,
    # offline_access) and to `email`, which the `email` optional claim needs to appear in the ID
    # token (docs/identity-platform/optional-claims-reference.md): the app then has the address
    # without a Graph call.
    "external_id": RegistrationProfile(
        "AzureADMyOrg", ("openid", "offline_access", "profile", "email"), ("email",)
    ),
}


@dataclass(kw_only=True)
class AppRegistrationArgs:
    """Inputs of AppRegistration; the site's URIs are known before the web app exists (see naming)."""

    platform: Platform
    tenant_id: str
    display_name: str
    redirect_uri: pulumi.Input[str]
    post_logout_redirect_uri: pulumi.Input[str]
    secret_end_date: str | None = None  # RFC 3339; None: `secret_months` after the secret's creation
    secret_months: int = DEFAULT_MONTHS


class AppRegistration(pulumi.ComponentResource):
    """App registration + service principal + client secret + consented Graph permissions."""

    client_id: pulumi.Output[str]
    client_secret: pulumi.Output[str]
    secret_end_date: pulumi.Output[str]

    def __init__(
        self, name: str, args: AppRegistrationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # B2C registrations declared by the earlier `photoshare:b2c:B2CApp` component (and its
        # provider `<name>-b2c-tenant`) keep their identity through these aliases.
        b2c = args.platform == "b2c"
        aliases = [pulumi.Alias(type_="photoshare:b2c:B2CApp")] if b2c else []
        super().__init__(
            "photoshare:identity:AppRegistration",
            name,
            None,
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=aliases)),
        )
        profile = PROFILES[args.platform]
        # Everything here lives in the identity directory, never in the deploying identity's tenant.
        self.provider = azuread.Provider(
            f"{name}-tenant",
            tenant_id=args.tenant_id,
            opts=pulumi.ResourceOptions(
                parent=self, aliases=[pulumi.Alias(name=f"{name}-b2c-tenant")] if b2c else []
            ),
        )
        in_tenant = pulumi.ResourceOptions(parent=self, provider=self.provider)

        self.application = azuread.Application(
            f"{name}-registration",
            display_name=args.display_name,
            sign_in_audience=profile.sign_in_audience,
            api=azuread.ApplicationApiArgs(requested_access_token_version=2),
            web=azuread.ApplicationWebArgs(
                # Entra has no separate list of post-logout URIs: the end-session endpoint's
                # post_logout_redirect_uri "must match one of the redirect URIs registered for your
                # application" (MicrosoftDocs/entra-docs docs/identity-platform/v2-protocols-oidc.md),
                # and B2C checks it against them when an id_token_hint is sent (MicrosoftDocs/
                # azure-docs articles/active-directory-b2c/openid-connect.md). `logout_url` is the
                # front-channel sign-out URL Entra calls itself; the app signs out on POST only.
                redirect_uris=[args.redirect_uri, args.post_logout_redirect_uri],
                implicit_grant=azuread.ApplicationWebImplicitGrantArgs(
                    access_token_issuance_enabled=False, id_token_issuance_enabled=False
                ),
            ),
            optional_claims=(
                azuread.ApplicationOptionalClaimsArgs(
                    id_tokens=[
                        azuread.ApplicationOptionalClaimsIdTokenArgs(name=claim)
                        for claim in profile.id_token_claims
                    ]
                )
                if profile.id_token_claims
                else None
            ),
            required_resource_accesses=[
                azuread.ApplicationRequiredResourceAccessArgs(
                    resource_app_id=GRAPH_APP_ID,
                    resource_accesses=[
                        azuread.ApplicationRequiredResourceAccessResourceAccessArgs(
                            id=GRAPH_USER_READ_ALL_ROLE, type="Role"
                        ),
                        *(
                            azuread.ApplicationRequiredResourceAccessResourceAccessArgs(
                                id=GRAPH_SCOPES[scope], type="Scope"
                            )
                            for scope in profile.scopes
                        ),
                    ],
                )
            ],
            opts=in_tenant,
        )
        self.service_principal = azuread.ServicePrincipal(
            f"{name}-sp", client_id=self.application.client_id, opts=in_tenant
        )
        # A configured date, or one fixed when first computed (never `end_date_relative`,
        # deprecated, nor "now + N" recomputed on every `pulumi up`, which would replace the
        # password each run). Not in the tenant: a dynamic resource has no azuread provider.
        end_date: pulumi.Input[str]
        if args.secret_end_date is not None:
            end_date = args.secret_end_date
        else:
            self.secret_lifetime = SecretEndDate(
                f"{name}-secret-end-date", months=args.secret_months, opts=pulumi.ResourceOptions(parent=self)
            )
            end_date = self.secret_lifetime.end_date
        # The end date cannot change in place: a new date creates a new password before the old
        # one is deleted.
        self.password = azuread.ApplicationPassword(
            f"{name}-secret",
            application_id=self.application.id,
            display_name="photoshare sign-in and app-only Graph token",
            end_date=end_date,
            opts=in_tenant,
        )
        graph = azuread.get_service_principal_output(
            client_id=GRAPH_APP_ID, opts=pulumi.InvokeOutputOptions(provider=self.provider)
        )
        # Admin consent: the application permission, and the sign-in scopes.
        self.graph_role = azuread.AppRoleAssignment(
            f"{name}-graph-user-read-all",
            app_role_id=GRAPH_USER_READ_ALL_ROLE,
            principal_object_id=self.service_principal.object_id,
            resource_object_id=graph.object_id,
            opts=in_tenant,
        )
        self.graph_scopes = azuread.ServicePrincipalDelegatedPermissionGrant(
            f"{name}-graph-signin-scopes",
            service_principal_object_id=self.service_principal.object_id,
            resource_service_principal_object_id=graph.object_id,
            claim_values=list(profile.scopes),
            opts=in_tenant,
        )

        self.client_id = self.application.client_id
        self.client_secret = pulumi.Output.secret(self.password.value)
        self.secret_end_date = self.password.end_date
        self.register_outputs({"client_id": self.client_id, "secret_end_date": self.secret_end_date})
