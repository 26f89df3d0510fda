"""B2C's token endpoint: the app's server redeems the authorization code for an ID token.

Only the authorization_code grant is served, the one grant the app uses. The response carries a
refresh token when `offline_access` was asked for (MSAL always asks), as B2C's does; the fake
never redeems it, since the app discards MSAL's token cache after sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request

from .b2c import issuer, resolve, unregistered_client
from .context import FakeIdentity, current
from .entra import client_credentials_from_request
from .errors import b2c_error, missing_parameter
from .state import SOCIAL_IDP, FakeUser
from .tokens import b2c_id_token_claims, b64url, b64url_json, sign_id_token

bp = Blueprint("fake_b2c_token", __name__)

REFRESH_TOKEN_LIFETIME = 14 * 24 * 3600  # B2C's default, sent as refresh_token_expires_in


def _grant_expired() -> Response:
    now = int(time.time())
    return b2c_error(
        400,
        "invalid_grant",
        "AADB2C90080",
        "The provided grant has expired. Please re-authenticate and try again. "
        f"Current time: {now}, Grant issued time: {now}, "
        f"Grant sliding window expiration time: {now + 600}.",
    )


def _wrong_endpoint(actual: str, expected: str) -> Response:
    return b2c_error(
        400,
        "invalid_grant",
        "AADB2C90088",
        "The provided grant has not been issued for this endpoint. "
        f"Actual Value : {actual} and Expected Value : {expected}",
    )


@bp.post("/<tenant>/<policy>/oauth2/v2.0/token")
def token(tenant: str, policy: str) -> Response:
    fake = current()
    cfg = fake.config
    fake.state.count("b2c_token")
    policy = resolve(fake, tenant, policy)

    client_id, secret = client_credentials_from_request()
    if not client_id:
        return missing_parameter("b2c", "client_id")
    if client_id.lower() != cfg.client_id:
        return b2c_error(400, "invalid_request", *unregistered_client(fake, client_id))
    if not secret:
        return b2c_error(
            400,
            "invalid_request",
            "AADB2C90079",
            "Clients must send a client_secret when redeeming a confidential grant.",
        )
    # B2C's error list has no code of its own for an expired secret: the user flow answers an
    # expired one (the `secret_expired` knob) as it answers a wrong one.
    if not hmac.compare_digest(secret.encode(), cfg.client_secret.encode()) or fake.state.knob(
        "secret_expired"
    ):
        return b2c_error(
            401,
            "invalid_client",
            "AADB2C90081",
            "The specified client_secret does not match the expected value for this client. "
            "Please correct the client_secret and try again.",
        )

    grant_type = request.form.get("grant_type", "")
    if not grant_type:
        return missing_parameter("b2c", "grant_type")
    if grant_type != "authorization_code":
        return b2c_error(
            400,
            "unsupported_grant_type",
            "AADB2C90086",
            f"The supplied grant_type [{grant_type}] is not supported. This fake redeems "
            "authorization codes only: the app keeps no refresh token after sign-in.",
        )
    return _redeem_code(fake, policy, client_id)


def _redeem_code(fake: FakeIdentity, policy: str, client_id: str) -> Response:
    form = request.form
    code = form.get("code", "")
    if not code:
        return missing_parameter("b2c", "code")
    grant = fake.state.redeem_code(code)  # burnt now, whatever happens next
    if grant is None:
        return _grant_expired()
    if grant.policy != policy:
        return _wrong_endpoint(policy, grant.policy)
    if grant.client_id.lower() != client_id.lower():
        return _wrong_endpoint(client_id, grant.client_id)
    if form.get("redirect_uri", "") != grant.redirect_uri:
        return _wrong_endpoint(form.get("redirect_uri", ""), grant.redirect_uri)
    if grant.code_challenge:  # S256: the authorize endpoint accepts no other method
        verifier = form.get("code_verifier", "")
        if not verifier:
            return b2c_error(400, "invalid_request", "AADB2C90183", "The supplied code_verifier is invalid")
        computed = b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
        if not hmac.compare_digest(computed, grant.code_challenge):
            return b2c_error(
                400,
                "invalid_grant",
                "AADB2C90182",
                "The supplied code_verifier does not match associated code_challenge",
            )
    user = fake.state.user_by_oid(grant.user_oid)
    if user is None:
        return b2c_error(
            400,
            "invalid_grant",
            "AADB2C90128",
            "The account associated with this grant no longer exists. Please reauthenticate and try again.",
        )
    return _token_response(fake, user, policy, grant.scope, nonce=grant.nonce, auth_time=grant.auth_time)


def _id_token(fake: FakeIdentity, user: FakeUser, policy: str, nonce: str | None, auth_time: int) -> str:
    claims = b2c_id_token_claims(
        issuer=issuer(fake),
        client_id=fake.config.client_id,
        user_oid=user.oid,
        name=user.name,
        policy=policy,
        lifetime=fake.config.id_token_lifetime,
        auth_time=auth_time,
        nonce=nonce,
        emails=[user.email] if user.emails_claim else None,
        idp=SOCIAL_IDP if user.is_social else None,
    )
    return sign_id_token(fake.key, claims, fake.state.take_id_token_defect("b2c"))


def _token_response(
    fake: FakeIdentity,
    user: FakeUser,
    policy: str,
    scope: str,
    *,
    nonce: str | None,
    auth_time: int,
) -> Response:
    """B2C's answer to OIDC scopes: id_token + profile_info, no access token."""
    cfg = fake.config
    body: dict[str, Any] = {
        "id_token": _id_token(fake, user, policy, nonce, auth_time),
        "token_type": "Bearer",
        "not_before": int(time.time()),
        "id_token_expires_in": cfg.id_token_lifetime,
        "profile_info": b64url_json(
            {
                "ver": "1.0",
                "tid": cfg.b2c_tenant_id,
                "sub": None,
                "name": user.name,
                "preferred_username": None,
                "idp": SOCIAL_IDP if user.is_social else "LocalAccount",
            }
        ),
        "scope": scope,
    }
    if "offline_access" in scope.split():
        body["refresh_token"] = secrets.token_urlsafe(64)
        body["refresh_token_expires_in"] = REFRESH_TOKEN_LIFETIME
    if request.form.get("client_info") == "1":
        # What MSAL keys its account cache on: uid = "{oid}-{policy}", utid = the tenant.
        body["client_info"] = b64url_json({"uid": f"{user.oid}-{policy.lower()}", "utid": cfg.b2c_tenant_id})
    return jsonify(body)
