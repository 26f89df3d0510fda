"""External ID's token endpoint on ciamlogin.com: the app's server redeems the authorization code
for a v2.0 ID token, and daemons get app-only tokens (client credentials).

The real ciamlogin.com token endpoint serves client credentials too: Microsoft's daemon samples
for external tenants use `https://{subdomain}.ciamlogin.com/` as their authority (Microsoft Entra
External ID, "Call an API in a sample .NET daemon application",
learn.microsoft.com/entra/external-id/customers/sample-daemon-dotnet-call-api). Both grants check
the client as Entra does (AADSTS700016 for an app that is not the external tenant's).

Code redemption answers with an ID token (plus a refresh token for `offline_access`, never
redeemed: the app discards MSAL's cache after sign-in) and no access token, since the app asks
for no API scope.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .context import FakeIdentity, current
from .entra import (
    authenticated_client,
    client_credentials_token,
    endpoint_down,
)
from .errors import entra_error, missing_parameter
from .external_id import issuer, resolve
from .state import SOCIAL_IDP, AuthCode, FakeUser
from .tokens import b64url, b64url_json, external_id_token_claims, pairwise_subject, sign_id_token

bp = Blueprint("fake_external_id_token", __name__)


def _invalid_grant(code: int, message: str) -> Response:
    return entra_error(400, "invalid_grant", code, message)


@bp.post("/<tenant>/oauth2/v2.0/token")
def token(tenant: str) -> Response:
    fake = current()
    fake.state.count("external_token")
    tenant_id = resolve(fake, tenant)

    grant_type = request.form.get("grant_type", "")
    if not grant_type:
        return missing_parameter("entra", "grant_type")
    if grant_type == "client_credentials":
        down = endpoint_down(fake)
        return down if down is not None else client_credentials_token(fake, tenant, tenant_id)
    if grant_type != "authorization_code":
        return entra_error(
            400,
            "unsupported_grant_type",
            70003,
            f"The app requested an unsupported grant type '{grant_type}'. This fake redeems "
            "authorization codes and serves client credentials only: the app keeps no refresh "
            "token after sign-in.",
        )

    registered = authenticated_client(fake, tenant, tenant_id)
    if isinstance(registered, Response):
        return registered
    return _redeem_code(fake, tenant_id, registered[0])


def _redeem_code(fake: FakeIdentity, tenant_id: str, client_id: str) -> Response:
    form = request.form
    code = form.get("code", "")
    if not code:
        return missing_parameter("entra", "code")
    replayed = fake.state.was_redeemed(code)
    grant = fake.state.redeem_code(code)  # burnt now, whatever happens next
    if replayed:
        return _invalid_grant(
            54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code."
        )
    if grant is None:
        return _invalid_grant(
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send "
            "a new interactive authorization request for this user and resource.",
        )
    if grant.tenant_id != tenant_id:
        return _invalid_grant(
            700005,
            "Provided Authorization Code is intended to use against other tenant, thus rejected.",
        )
    if grant.client_id.lower() != client_id:
        return _invalid_grant(
            70000,
            "The provided value for the 'code' parameter is not valid: it was issued to another client.",
        )
    redirect_uri = form.get("redirect_uri", "")
    if redirect_uri != grant.redirect_uri:
        return _invalid_grant(
            500112,
            f"The reply address '{redirect_uri}' does not match the reply address "
            f"'{grant.redirect_uri}' provided when requesting Authorization code.",
        )
    if grant.code_challenge:  # S256: the authorize endpoint accepts no other method
        verifier = form.get("code_verifier", "")
        computed = b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
        if not verifier or not hmac.compare_digest(computed, grant.code_challenge):
            return _invalid_grant(
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            )
    user = fake.state.user_by_oid(grant.user_oid)
    if user is None:
        return _invalid_grant(50034, "The user account does not exist in the directory.")
    return _token_response(fake, user, grant)


def _id_token(fake: FakeIdentity, user: FakeUser, grant: AuthCode) -> str:
    cfg, state = fake.config, fake.state
    claims = external_id_token_claims(
        issuer=issuer(fake),
        client_id=cfg.external_client_id,
        tenant_id=grant.tenant_id,
        user_oid=user.oid,
        subject=pairwise_subject(fake.pairwise_salt, grant.tenant_id, cfg.external_client_id, user.oid),
        name=user.name,
        preferred_username=user.email,
        lifetime=cfg.id_token_lifetime,
        nonce=grant.nonce,
        email=user.email if state.knob("email_claim") else None,
        idp=SOCIAL_IDP if user.is_social else None,
    )
    return sign_id_token(fake.key, claims, state.take_id_token_defect("external"))


def _token_response(fake: FakeIdentity, user: FakeUser, grant: AuthCode) -> Response:
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": grant.scope,
        "id_token": _id_token(fake, user, grant),
    }
    if "offline_access" in grant.scope.split():
        body["refresh_token"] = secrets.token_urlsafe(64)
    if request.form.get("client_info") == "1":
        # What MSAL keys its account cache on: uid = the user's oid, utid = the tenant.
        body["client_info"] = b64url_json({"uid": user.oid, "utid": grant.tenant_id})
    return jsonify(body)
