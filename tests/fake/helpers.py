"""Shared helpers for the fake identity server tests: MSAL apps (B2C, Entra, External ID) and a
user record."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
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
    directory: str = "b2c"

    def as_dict(self) -> dict[str, str]:
        """The shape FakeIdentityClient.sign_in_as takes (the control API's, plus the password)."""
        return asdict(self)


def hand_made_authorize_query(**change: str) -> dict[str, str]:
    """A minimal authorize request by hand (no PKCE, no nonce), with `change` applied (the
    client_id among them)."""
    return {
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid",
        **change,
    }


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


def external_authority(fake: FakeIdentityServer, tenant: str | None = None) -> str:
    """The External ID authority on the fake's ciamlogin.com listener, as `oidc_authority=`."""
    return f"{fake.external_id_url}/{tenant or fake.config.external_tenant_id}/v2.0"


def external_metadata_url(fake: FakeIdentityServer, tenant: str | None = None) -> str:
    return f"{external_authority(fake, tenant)}/.well-known/openid-configuration"


def external_app(
    fake: FakeIdentityServer,
    tenant: str | None = None,
    *,
    client_id: str | None = None,
    secret: str | None = None,
) -> msal.ConfidentialClientApplication:
    """The real MSAL client for the external tenant, given its authority as `oidc_authority`."""
    cfg = fake.config
    return msal.ConfidentialClientApplication(
        client_id or cfg.external_client_id,
        client_credential=secret or cfg.external_client_secret,
        oidc_authority=external_authority(fake, tenant),
    )


def graph_token(fake: FakeIdentityServer, directory: str = "b2c") -> str:
    """An app-only Graph token from login.microsoftonline.com for the B2C or the external tenant."""
    cfg = fake.config
    if directory == "external":
        app = entra_app(
            fake,
            cfg.external_tenant_id,
            client_id=cfg.external_client_id,
            secret=cfg.external_client_secret,
        )
    else:
        app = entra_app(fake, cfg.b2c_tenant_id)
    result = app.acquire_token_for_client(GRAPH_SCOPE)
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
