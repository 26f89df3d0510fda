"""Shared helpers for the fake identity server tests: MSAL apps and a user record."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import msal
import requests

from devstack.fake_identity import FakeIdentityServer

REDIRECT_URI = "http://localhost:5000/auth/callback"
SIGNUP_SIGNIN = "B2C_1_signupsignin"
GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]


@dataclass
class User:
    oid: str
    email: str
    password: str
    name: str
    kind: str


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


def b2c_app(fake: FakeIdentityServer, policy: str = SIGNUP_SIGNIN) -> msal.ConfidentialClientApplication:
    """The real MSAL client, pointed at a B2C user flow of the fake."""
    cfg = fake.config
    return msal.ConfidentialClientApplication(
        cfg.client_id,
        client_credential=cfg.client_secret,
        authority=f"{fake.base_url}/{cfg.b2c_tenant_name}.onmicrosoft.com/{policy}",
        instance_discovery=False,
    )


def entra_app(
    fake: FakeIdentityServer,
    tenant: str,
    *,
    secret: str | None = None,
    client_id: str | None = None,
) -> msal.ConfidentialClientApplication:
    """The real MSAL client for app-only tokens from `https://fake/{tenant}`."""
    cfg = fake.config
    return msal.ConfidentialClientApplication(
        client_id or cfg.client_id,
        client_credential=secret or cfg.client_secret,
        authority=f"{fake.base_url}/{tenant}",
        instance_discovery=False,
    )


def graph_token(fake: FakeIdentityServer) -> str:
    result = entra_app(fake, fake.config.b2c_tenant_id).acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" in result, result
    return result["access_token"]


def jwks_keys(jwks_uri: str) -> jwt.PyJWKSet:
    """Fetch a JWKS with requests (so REQUESTS_CA_BUNDLE applies), as an app would."""
    return jwt.PyJWKSet.from_dict(requests.get(jwks_uri, timeout=10).json())


def verify_jwt(token: str, *, metadata_url: str, audience: str, issuer: str | None = None) -> dict[str, Any]:
    """Validate signature, iss, aud, exp the way the app must (MSAL no longer does)."""
    metadata = requests.get(metadata_url, timeout=10).json()
    kid = jwt.get_unverified_header(token).get("kid")
    key = jwks_keys(metadata["jwks_uri"])[kid] if kid else None
    return jwt.decode(
        token,
        key.key if key else "",
        algorithms=["RS256"],
        audience=audience,
        issuer=issuer or metadata["issuer"],
        options={"require": ["exp", "iat", "iss", "aud"]},
    )
