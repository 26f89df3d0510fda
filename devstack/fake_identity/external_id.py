"""Microsoft Entra External ID (external tenants) on the ciamlogin.com listener: metadata, keys,
logout and what the authorize and token endpoints share.

Authority: https://HOST:PORT2/{tenant}/v2.0, the tenant given as its GUID or as its initial
domain `{subdomain}.onmicrosoft.com` (the two forms MSAL and Microsoft's samples use; on the real
host the subdomain also names the tenant). The real document lives at
`https://{subdomain}.ciamlogin.com/{tenant id}/v2.0/.well-known/openid-configuration` and "returns
an issuer value `https://{tenant id}.ciamlogin.com/{tenant id}/v2.0`" (Microsoft identity
platform, "Security tokens", learn.microsoft.com/entra/identity-platform/security-tokens): a
string on another host that nobody fetches, while the endpoints are this listener's own.

These paths are the same as Entra's on login.microsoftonline.com, which the main listener serves;
that is why External ID gets a listener (a host) of its own. The sign-in page lives in
`external_id_authorize`, code redemption in `external_id_token`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from .context import FakeIdentity, base_url, current
from .entra import openid_configuration, tenant_not_found, tenant_not_found_message
from .errors import Rejected, entra_description

bp = Blueprint("fake_external_id", __name__)

SERVICE = {
    "service": "External ID",
    "banner": "Local fake of Microsoft Entra External ID for development and tests, not Microsoft.",
}


def page(template: str, status: int = 200, **values: Any) -> Response:
    """A page of the external tenant's sign-in experience."""
    html = render_template(template, tenant_name=current().config.external_subdomain, **{**SERVICE, **values})
    return Response(html, status=status, mimetype="text/html")


def error_page(status: int, code: int, message: str) -> Response:
    """Entra's error page, for errors it cannot send back to the app."""
    return page(
        "fake_identity/message.html",
        status=status,
        heading="Sign in",
        error=entra_description(code, message),
    )


def resolve(fake: FakeIdentity, tenant: str, *, html: bool = False) -> str:
    """The external tenant's GUID, or Entra's AADSTS90002 for any other tenant (this host serves
    external tenants only: a workforce or B2C tenant is as unknown here as a made-up one)."""
    if fake.external_tenant_matches(tenant):
        return fake.config.external_tenant_id
    if html:
        raise Rejected(error_page(400, 90002, tenant_not_found_message(tenant)))
    raise Rejected(tenant_not_found(tenant))


def issuer(fake: FakeIdentity) -> str:
    tenant_id = fake.config.external_tenant_id
    return f"https://{tenant_id}.ciamlogin.com/{tenant_id}/v2.0"


@bp.get("/<tenant>/v2.0/.well-known/openid-configuration")
def metadata(tenant: str) -> Response:
    fake = current()
    fake.state.count("external_metadata")
    tenant_id = resolve(fake, tenant)
    return jsonify(openid_configuration(f"{base_url()}/{tenant_id}", issuer=issuer(fake)))


@bp.get("/<tenant>/discovery/v2.0/keys")
def keys(tenant: str) -> Response:
    fake = current()
    fake.state.count("external_jwks")
    resolve(fake, tenant)
    return jsonify(fake.key.jwks())


@bp.route("/<tenant>/oauth2/v2.0/logout", methods=["GET", "POST"])
def logout(tenant: str) -> BaseResponse:
    """End the session; back to `post_logout_redirect_uri` only when it is a registered redirect
    URI of the app, otherwise Entra's "signed out" page (it never redirects to an unknown URL)."""
    fake = current()
    fake.state.count("external_logout")
    resolve(fake, tenant, html=True)
    values = request.form if request.method == "POST" else request.args
    target = values.get("post_logout_redirect_uri", "")
    if not target or not fake.redirect_uri_registered(target):
        return page(
            "fake_identity/message.html",
            heading="You signed out of your account",
            message="It's a good idea to close all browser windows.",
            error=None,
        )
    parts = urlsplit(target)
    state = values.get("state")
    if state:
        parts = parts._replace(query=urlencode([*parse_qsl(parts.query), ("state", state)]))
    return redirect(urlunsplit(parts), code=302)
