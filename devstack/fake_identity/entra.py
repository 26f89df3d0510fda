"""Entra ID v2 endpoints for app-only tokens (client credentials), as MSAL calls them.

This is where the source article's classic mistakes surface: the main directory's tenant id
(AADSTS700016, the app is not registered there), a tenant that does not exist (AADSTS90002),
a wrong or expired secret (AADSTS7000215 / AADSTS7000222). Two registrations exist: the B2C
app in the B2C tenant and the External ID app in the external tenant; asking any tenant for
the other one's app (or the main tenant for either) is AADSTS700016.
"""

from __future__ import annotations

import base64
import hmac
from typing import Any
from urllib.parse import unquote_plus

from flask import Blueprint, Response, jsonify, request

from .context import FakeIdentity, base_url, current
from .errors import entra_error, missing_parameter
from .tokens import app_only_access_token_claims

bp = Blueprint("fake_entra", __name__)

DEFAULT_SUFFIX = "/.default"


def tenant_not_found_message(tenant: str) -> str:
    return (
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may "
        "happen if there are no active subscriptions for the tenant."
    )


def tenant_not_found(tenant: str) -> Response:
    return entra_error(400, "invalid_tenant", 90002, tenant_not_found_message(tenant))


def openid_configuration(root: str, issuer: str) -> dict[str, Any]:
    """Entra's v2 discovery document for a tenant whose endpoints live under `root`.

    The external tenant's document on ciamlogin.com has the same members (same service); only
    its issuer differs, so both listeners build it here.
    """
    return {
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{root}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base_url()}/oidc/userinfo",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "claims_supported": [
            "sub",
            "iss",
            "cloud_instance_name",
            "cloud_instance_host_name",
            "cloud_graph_host_name",
            "msgraph_host",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "acr",
            "nonce",
            "preferred_username",
            "name",
            "tid",
            "ver",
            "at_hash",
            "c_hash",
            "email",
        ],
        "kerberos_endpoint": f"{root}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


@bp.get("/<tenant>/v2.0/.well-known/openid-configuration")
def metadata(tenant: str) -> Response:
    fake = current()
    fake.state.count("metadata")
    tenant_id = fake.entra_tenant_id(tenant)
    if tenant_id is None:
        return tenant_not_found(tenant)
    root = f"{base_url()}/{tenant_id}"
    return jsonify(openid_configuration(root, issuer=f"{root}/v2.0"))


@bp.get("/<tenant>/discovery/v2.0/keys")
def keys(tenant: str) -> Response:
    fake = current()
    fake.state.count("jwks")
    if fake.entra_tenant_id(tenant) is None:
        return tenant_not_found(tenant)
    return jsonify(fake.key.jwks())


def client_credentials_from_request() -> tuple[str, str]:
    """client_id/client_secret from the form, or from HTTP Basic (RFC 6749 §2.3.1)."""
    client_id = request.form.get("client_id", "")
    secret = request.form.get("client_secret", "")
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(auth[6:].strip()).decode("utf-8")
            basic_id, _, basic_secret = decoded.partition(":")
            client_id = client_id or unquote_plus(basic_id)
            secret = secret or unquote_plus(basic_secret)
        except (ValueError, UnicodeDecodeError):
            pass
    return client_id, secret


def endpoint_down(fake: FakeIdentity) -> Response | None:
    """The `token_endpoint_down` knob's 503, if it is set."""
    down = fake.state.knob("token_endpoint_down")
    if not down:
        return None
    response = entra_error(
        503, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again."
    )
    if isinstance(down, dict) and down.get("retry_after"):
        response.headers["Retry-After"] = str(down["retry_after"])
    return response


def app_not_found_message(client_id: str, tenant: str) -> str:
    return (
        f"Application with identifier '{client_id}' was not found in the directory "
        f"'{tenant}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may "
        "have sent your authentication request to the wrong tenant."
    )


def app_not_found(client_id: str, tenant: str) -> Response:
    return entra_error(400, "unauthorized_client", 700016, app_not_found_message(client_id, tenant))


def client_secret_error(fake: FakeIdentity, client_id: str, expected: str, secret: str) -> Response | None:
    """Entra's answer to a missing, wrong or (knob) expired secret of a registered client."""
    if not secret:
        return entra_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    if not hmac.compare_digest(secret.encode(), expected.encode()):
        return entra_error(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the "
            "client secret value, not the client secret ID, for a secret added to app "
            f"'{client_id}'.",
        )
    if fake.state.knob("secret_expired"):
        return entra_error(
            401,
            "invalid_client",
            7000222,
            f"The provided client secret keys for app '{client_id}' are expired. Visit the "
            "Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or "
            "consider using certificate credentials for added security: "
            "https://aka.ms/certCreds.",
        )
    return None


def authenticated_client(fake: FakeIdentity, tenant: str, tenant_id: str) -> tuple[str, str] | Response:
    """The registration (client id, secret) the request authenticates as, in `tenant_id`, or
    Entra's error: a missing client_id, an app not registered there (AADSTS700016), a secret
    that is wrong or expired."""
    client_id, secret = client_credentials_from_request()
    if not client_id:
        return missing_parameter("entra", "client_id")
    registered = fake.registration(tenant_id, client_id)
    if registered is None:
        return app_not_found(client_id, tenant)
    problem = client_secret_error(fake, registered[0], registered[1], secret)
    if problem is not None:
        return problem
    return registered


def client_credentials_token(fake: FakeIdentity, tenant: str, tenant_id: str) -> Response:
    """The client_credentials grant for `tenant_id` (named `tenant` in the URL): an app-only
    token for the app registered there, or Entra's error (AADSTS700016 for any other app)."""
    cfg, state = fake.config, fake.state
    registered = authenticated_client(fake, tenant, tenant_id)
    if isinstance(registered, Response):
        return registered

    scopes = request.form.get("scope", "").split()
    if not scopes:
        return missing_parameter("entra", "scope")
    if len(scopes) > 1 or not scopes[0].endswith(DEFAULT_SUFFIX):
        return entra_error(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {' '.join(scopes)} is not valid. Client credential "
            "flows must have a scope value with /.default suffixed to the resource identifier "
            "(application ID URI).",
        )
    resource = scopes[0][: -len(DEFAULT_SUFFIX)]
    claims = app_only_access_token_claims(
        tenant_id=tenant_id,
        client_id=registered[0],
        resource=resource,
        roles=state.knob("roles"),
        lifetime=cfg.access_token_lifetime,
    )
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "expires_in": cfg.access_token_lifetime,
        "ext_expires_in": cfg.access_token_lifetime,
        "access_token": (
            state.issue_opaque_token(claims) if state.knob("opaque_access_token") else fake.key.sign(claims)
        ),
    }
    return jsonify(body)


@bp.post("/<tenant>/oauth2/v2.0/token")
def token(tenant: str) -> Response:
    fake = current()
    fake.state.count("client_credentials_token")
    down = endpoint_down(fake)
    if down is not None:
        return down

    tenant_id = fake.entra_tenant_id(tenant)
    if tenant_id is None:
        return tenant_not_found(tenant)

    grant_type = request.form.get("grant_type", "")
    if not grant_type:
        return missing_parameter("entra", "grant_type")
    if grant_type != "client_credentials":
        return entra_error(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant_type}'. "
            "This fake serves only client_credentials on the Entra endpoint; "
            "users sign in through the B2C user flow and External ID endpoints.",
        )
    return client_credentials_token(fake, tenant, tenant_id)
