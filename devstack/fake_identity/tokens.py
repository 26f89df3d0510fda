"""Signing key, JWKS and the JWTs the fake issues (B2C and External ID ID tokens, Entra app-only
tokens).

A key ring is generated per server start: its current RSA key signs everything, like a tenant's
current key; after a rotation the previous keys stay published (and accepted) until retired.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.types import Options

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_AUDIENCES = (GRAPH_RESOURCE, GRAPH_RESOURCE + "/", GRAPH_APP_ID)


def b64url(data: bytes) -> str:
    """Base64url without padding, as JOSE and Microsoft's client_info/profile_info use it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(data: dict[str, Any]) -> str:
    return b64url(json.dumps(data, separators=(",", ":")).encode())


def _b64url_uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class SigningKey:
    """An RS256 key with a stable kid (RFC 7638 thumbprint) published in the JWKS."""

    def __init__(self) -> None:
        self._private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self._private.public_key().public_numbers()
        self._jwk = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
        canonical = json.dumps(self._jwk, separators=(",", ":"), sort_keys=True).encode()
        self.kid = b64url(hashlib.sha256(canonical).digest())

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._private.public_key()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{"kid": self.kid, "use": "sig", "kty": "RSA", **self._jwk}]}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._private, algorithm="RS256", headers={"kid": self.kid})

    def sign_with_wrong_key(self, claims: dict[str, Any]) -> str:
        """Same kid, different key: what a forged or corrupted token looks like to a verifier."""
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, other, algorithm="RS256", headers={"kid": self.kid})

    def verify(self, token: str, *, audience: Any, options: Options) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        if header.get("kid") != self.kid:
            raise jwt.InvalidSignatureError("unknown signing key")
        return jwt.decode(token, self.public_key, algorithms=["RS256"], audience=audience, options=options)


class KeyRing:
    """The published signing keys: the current one signs, every published one verifies.

    `rotate()` publishes a new key (new kid) beside the others and signs with it from then on,
    as Entra does when it rolls its keys; `retire_old()` unpublishes all but the current one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys = [SigningKey()]  # oldest first; the last one signs

    @property
    def current(self) -> SigningKey:
        with self._lock:
            return self._keys[-1]

    @property
    def kid(self) -> str:
        return self.current.kid

    @property
    def kids(self) -> list[str]:
        with self._lock:
            return [key.kid for key in self._keys]

    def rotate(self) -> SigningKey:
        key = SigningKey()
        with self._lock:
            self._keys.append(key)
        return key

    def retire_old(self) -> None:
        with self._lock:
            del self._keys[:-1]

    def jwks(self) -> dict[str, Any]:
        """Every published key, the current one first."""
        with self._lock:
            keys = list(reversed(self._keys))
        return {"keys": [k for key in keys for k in key.jwks()["keys"]]}

    def sign(self, claims: dict[str, Any]) -> str:
        return self.current.sign(claims)

    def sign_with_wrong_key(self, claims: dict[str, Any]) -> str:
        return self.current.sign_with_wrong_key(claims)

    def verify(self, token: str, *, audience: Any, options: Options) -> dict[str, Any]:
        kid = jwt.get_unverified_header(token).get("kid")
        with self._lock:
            key = next((k for k in self._keys if k.kid == kid), None)
        if key is None:
            raise jwt.InvalidSignatureError("unknown signing key")
        return key.verify(token, audience=audience, options=options)


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """An `alg: none` token: the classic attack a verifier must reject."""
    return f"{b64url_json({'alg': 'none', 'typ': 'JWT'})}.{b64url_json(claims)}."


def b2c_id_token_claims(
    *,
    issuer: str,
    client_id: str,
    user_oid: str,
    name: str,
    policy: str,
    lifetime: int,
    auth_time: int,
    nonce: str | None,
    emails: list[str] | None,
    idp: str | None,
) -> dict[str, Any]:
    """Claims in the shape B2C user flows emit (token version 1.0, `tfp` claim)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "ver": "1.0",
        "iss": issuer,
        "sub": user_oid,
        "aud": client_id,
        "exp": now + lifetime,
        "nonce": nonce,
        "iat": now,
        "auth_time": auth_time,
        "oid": user_oid,
        "name": name,
        "idp": idp,
        "emails": emails,
        "tfp": policy,
        "nbf": now,
    }
    return {k: v for k, v in claims.items() if v is not None}


def pairwise_subject(salt: bytes, tenant_id: str, client_id: str, oid: str) -> str:
    """A v2 `sub`: stable per user, app and tenant, and unlike `oid` different per app (ID token
    claims reference, learn.microsoft.com/entra/identity-platform/id-token-claims-reference:
    "The subject is a pairwise identifier and is unique to an application ID")."""
    digest = hashlib.sha256(salt + f"{tenant_id}|{client_id}|{oid}".encode()).digest()
    return b64url(digest)


def external_id_token_claims(
    *,
    issuer: str,
    client_id: str,
    tenant_id: str,
    user_oid: str,
    subject: str,
    name: str,
    preferred_username: str,
    lifetime: int,
    nonce: str | None,
    email: str | None,
    idp: str | None,
) -> dict[str, Any]:
    """A v2.0 ID token as an external tenant issues it, in Entra's claim order.

    `email` is the optional claim: present only when the app registration configures it.
    `idp` is present only when another provider authenticated the user ("identical to the value
    of the issuer claim unless..." in the ID token claims reference), i.e. Google.
    """
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": client_id,
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "aio": b64url(secrets.token_bytes(48)),
        "email": email,
        "idp": idp,
        "name": name,
        "nonce": nonce,
        "oid": user_oid,
        "preferred_username": preferred_username,
        "rh": f"1.{b64url(secrets.token_bytes(40))}.",
        "sid": str(uuid.uuid4()),
        "sub": subject,
        "tid": tenant_id,
        "uti": b64url(secrets.token_bytes(16)),
        "ver": "2.0",
    }
    return {k: v for k, v in claims.items() if v is not None}


def apply_defect(claims: dict[str, Any], defect: str) -> dict[str, Any]:
    """Change the claims so the token is defective in exactly the named way."""
    claims = dict(claims)
    if defect == "wrong_aud":
        claims["aud"] = str(uuid.uuid4())
    elif defect == "wrong_iss":
        # The tenant GUID in the issuer (both of them in a ciamlogin.com issuer) becomes another's.
        claims["iss"] = claims["iss"].replace(claims["iss"].split("/")[3], str(uuid.uuid4()))
    elif defect == "expired":
        lifetime = claims["exp"] - claims["iat"]
        claims["iat"] = claims["nbf"] = claims["iat"] - lifetime - 600
        if "auth_time" in claims:
            claims["auth_time"] = claims["iat"]
        claims["exp"] = claims["iat"] + lifetime
    elif defect == "wrong_nonce":
        claims["nonce"] = secrets.token_urlsafe(16)
    elif defect == "wrong_tid":
        claims["tid"] = str(uuid.uuid4())
    elif defect == "wrong_policy":  # another user flow of the same tenant: same issuer, same audience
        claims["tfp"] = "B2C_1_another_flow"
    return claims


def sign_id_token(key: KeyRing, claims: dict[str, Any], defect: str | None) -> str:
    """Sign `claims` as an ID token, defective in the way `defect` (a knob value) names."""
    if defect is not None:
        claims = apply_defect(claims, defect)
    if defect == "bad_signature":
        return key.sign_with_wrong_key(claims)
    if defect == "alg_none":
        return unsigned_jwt(claims)
    return key.sign(claims)


def app_only_access_token_claims(
    *,
    tenant_id: str,
    client_id: str,
    resource: str,
    roles: list[str],
    lifetime: int,
) -> dict[str, Any]:
    """An app-only (client credentials) v1.0 access token, as Entra issues them for Graph."""
    now = int(time.time())
    service_principal = str(uuid.uuid5(uuid.UUID(tenant_id), client_id))
    claims: dict[str, Any] = {
        "aud": resource,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "app_displayname": "photoshare",
        "appid": client_id,
        "appidacr": "1",
        "azp": client_id,
        "idp": f"https://sts.windows.net/{tenant_id}/",
        "idtyp": "app",
        "oid": service_principal,
        "sub": service_principal,
        "tid": tenant_id,
        "uti": b64url(secrets.token_bytes(16)),
        "ver": "1.0",
    }
    if roles:  # Entra omits the claim entirely when no application permission is granted
        claims["roles"] = list(roles)
    return claims
