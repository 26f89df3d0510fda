"""Azure AD B2C user flows: what the authorize and token endpoints share, plus metadata, keys, logout.

Authority: https://HOST:PORT/{tenant}.onmicrosoft.com/{policy} (or the tenant GUID instead of
the domain); tenant and policy match case-insensitively, as they do on b2clogin.com. The
sign-in page lives in `b2c_authorize`, code redemption in `b2c_token`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from .context import FakeIdentity, base_url, current
from .errors import Rejected, b2c_description, b2c_error

bp = Blueprint("fake_b2c", __name__)


def error_page(status: int, code: str, message: str) -> Response:
    """B2C's error page, for errors it cannot send back to the app."""
    return Response(
        render_template(
            "fake_identity/message.html",
            heading="Sorry, something went wrong",
            error=b2c_description(code, message),
            tenant_name=current().config.b2c_tenant_name,
        ),
        status=status,
        mimetype="text/html",
    )


def resolve(fake: FakeIdentity, tenant: str, policy: str, *, html: bool = False) -> str:
    """The configured policy name, or a 404 like B2C's for an unknown tenant or user flow."""
    found = fake.policy(policy)
    if found is not None and fake.b2c_tenant_matches(tenant):
        return found
    code = "AADB2C90022"
    message = f"Unable to return metadata for the policy '{policy}' in tenant '{tenant}'."
    if html:
        raise Rejected(error_page(404, code, message))
    raise Rejected(b2c_error(404, "invalid_request", code, message))


def unregistered_client(fake: FakeIdentity, client_id: str) -> tuple[str, str]:
    """(code, message) for a client id the tenant does not know: a page or a JSON error."""
    return (
        "AADB2C90018",
        f"The client ID '{client_id}' specified in the request is not registered in tenant "
        f"'{fake.config.b2c_domain}'.",
    )


def issuer(fake: FakeIdentity) -> str:
    return f"{base_url()}/{fake.config.b2c_tenant_id}/v2.0/"


@bp.get("/<tenant>/<policy>/v2.0/.well-known/openid-configuration")
def metadata(tenant: str, policy: str) -> Response:
    fake = current()
    fake.state.count("metadata")
    policy = resolve(fake, tenant, policy)
    authority = f"{base_url()}/{tenant.lower()}/{policy.lower()}"
    return jsonify(
        {
            "issuer": issuer(fake),
            "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
            "token_endpoint": f"{authority}/oauth2/v2.0/token",
            "end_session_endpoint": f"{authority}/oauth2/v2.0/logout",
            "jwks_uri": f"{authority}/discovery/v2.0/keys",
            # B2C's own document, as MSAL reads it; the fake serves the subset the app uses.
            "response_modes_supported": ["query", "fragment", "form_post"],
            "response_types_supported": [
                "code",
                "code id_token",
                "code token",
                "code id_token token",
                "id_token",
                "id_token token",
                "token",
                "token id_token",
            ],
            "scopes_supported": ["openid"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": [
                "name",
                "emails",
                "idp",
                "oid",
                "sub",
                "tfp",
                "iss",
                "iat",
                "exp",
                "aud",
                "acr",
                "nonce",
                "auth_time",
            ],
        }
    )


@bp.get("/<tenant>/<policy>/discovery/v2.0/keys")
def keys(tenant: str, policy: str) -> Response:
    fake = current()
    fake.state.count("jwks")
    resolve(fake, tenant, policy)
    return jsonify(fake.key.jwks())


@bp.get("/<tenant>/<policy>/oauth2/v2.0/logout")
def logout(tenant: str, policy: str) -> BaseResponse:
    fake = current()
    fake.state.count("logout")
    resolve(fake, tenant, policy, html=True)
    target = request.args.get("post_logout_redirect_uri", "")
    if not target:
        return Response(
            render_template(
                "fake_identity/message.html",
                heading="Signed out",
                message="You have been signed out. You can close this window.",
                error=None,
                tenant_name=fake.config.b2c_tenant_name,
            ),
            mimetype="text/html",
        )
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return error_page(
            400,
            "AADB2C90067",
            f"The post logout redirect URI '{target}' has an invalid format. Specify an https "
            "based URL such as 'https://example.com/return' or for native clients use the IETF "
            "native client URI 'urn:ietf:wg:oauth:2.0:oob'.",
        )
    state = request.args.get("state")
    if state:
        parts = parts._replace(query=urlencode([*parse_qsl(parts.query), ("state", state)]))
    return redirect(urlunsplit(parts), code=302)
