"""Sign-in with Azure AD B2C user flows.

MSAL runs the auth-code flow (PKCE, state, nonce). Since MSAL 1.38 no longer validates ID
tokens, this module checks the signature against the user flow's JWKS and the `iss`, `aud`,
`exp` and `nonce` claims with PyJWT. The session is Flask's signed cookie holding only the
user's id, name and (when the token carries it) email, so any instance can serve any user.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import jwt
import msal
import requests
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from app.settings import Settings, get_settings

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__, url_prefix="/auth")

F = TypeVar("F", bound=Callable[..., Any])

FORGOT_PASSWORD = "AADB2C90118"  # noqa: S105  # a B2C error code
CANCELLED = "AADB2C90091"


class SignInError(Exception):
    """The sign-in response was refused; the message is safe to show."""


class B2CClient:
    """User-flow metadata, JWKS and MSAL apps, one per policy, fetched on first use and cached."""

    def __init__(
        self,
        *,
        tenant_name: str,
        client_id: str,
        client_secret: str,
        authority_host: str,
        timeout: float = 10.0,
        leeway: int = 60,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.authority_base = f"{authority_host}/{tenant_name}.onmicrosoft.com"
        self.timeout = timeout
        self.leeway = leeway
        self.http = requests.Session()
        self._apps: dict[str, msal.ConfidentialClientApplication] = {}
        self._metadata: dict[str, dict[str, Any]] = {}
        self._jwks: dict[str, tuple[float, jwt.PyJWKSet]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> B2CClient:
        return cls(
            tenant_name=settings.b2c_tenant_name,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            authority_host=settings.b2c_authority_host,
        )

    def authority(self, policy: str) -> str:
        return f"{self.authority_base}/{policy}"

    def app(self, policy: str) -> msal.ConfidentialClientApplication:
        with self._lock:
            if policy not in self._apps:
                self._apps[policy] = msal.ConfidentialClientApplication(
                    self.client_id,
                    client_credential=self._client_secret,
                    authority=self.authority(policy),
                    instance_discovery=False,  # custom domains and the fake are not Microsoft's
                    timeout=self.timeout,
                )
            return self._apps[policy]

    def metadata(self, policy: str) -> dict[str, Any]:
        key = policy.lower()
        if key not in self._metadata:
            url = f"{self.authority(policy)}/v2.0/.well-known/openid-configuration"
            response = self.http.get(url, timeout=self.timeout)
            response.raise_for_status()
            self._metadata[key] = response.json()
        return self._metadata[key]

    def _signing_key(self, policy: str, kid: str | None) -> jwt.PyJWK:
        """The JWKS key named by `kid`; the set is fetched again (at most once a minute) on a miss."""
        jwks_uri = self.metadata(policy)["jwks_uri"]
        for attempt in range(2):
            fetched_at, keys = self._jwks.get(jwks_uri, (0.0, None))
            if keys is None or (attempt and time.monotonic() - fetched_at > 60):
                response = self.http.get(jwks_uri, timeout=self.timeout)
                response.raise_for_status()
                keys = jwt.PyJWKSet.from_dict(response.json())
                self._jwks[jwks_uri] = (time.monotonic(), keys)
            for key in keys.keys:
                if key.key_id == kid:
                    return key
        raise SignInError("The ID token is signed with an unknown key.")

    def validate_id_token(self, id_token: str, *, policy: str, nonce: str) -> dict[str, Any]:
        """Check signature, issuer, audience, lifetime and nonce; return the claims."""
        try:
            header = jwt.get_unverified_header(id_token)
            if header.get("alg") != "RS256":
                raise SignInError("The ID token is not signed with RS256.")
            key = self._signing_key(policy, header.get("kid"))
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key,
                algorithms=["RS256"],
                audience=self.client_id,
                issuer=self.metadata(policy)["issuer"],
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "nonce"]},
            )
        except jwt.PyJWTError as exc:
            raise SignInError(f"The ID token was refused: {exc}.") from None
        if claims["nonce"] != hashlib.sha256(nonce.encode("ascii")).hexdigest():
            raise SignInError("The ID token's nonce does not match this sign-in.")
        if not claims.get("oid") and not claims.get("sub"):
            raise SignInError("The ID token names no user.")
        return claims

    def init_app(self, app: Flask) -> None:
        app.extensions["b2c"] = self
        app.before_request(load_user)  # before app.csrf's checks, which read g.user
        app.register_blueprint(bp)


def get_b2c() -> B2CClient:
    return current_app.extensions["b2c"]


def safe_next(target: str | None) -> str:
    """Only same-site relative paths: `/x`, never `//host`, `/\\host` or a scheme."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ord(ch) < 0x20 or ch == "\\" for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def load_user() -> None:
    """The signed-in user, once per request, as `g.user` (None when signed out)."""
    user = session.get("user")
    g.user = user if isinstance(user, dict) and user.get("oid") else None


def login_required(view: F) -> F:
    """Refuse signed-out callers with 401: app.errors answers JSON or redirects to sign-in.
    Marked too, so app.csrf can answer a signed-out write with 401 before checking its token."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.user is None:
            abort(401)
        return view(*args, **kwargs)

    wrapped.login_required = True  # type: ignore[attr-defined]
    return wrapped  # type: ignore[return-value]


def requires_sign_in(endpoint: str | None) -> bool:
    """Whether the view behind `endpoint` is `login_required`."""
    view = current_app.view_functions.get(endpoint or "")
    return bool(getattr(view, "login_required", False))


def _start_flow(policy: str, next_url: str) -> Response:
    b2c = get_b2c()
    try:
        flow = b2c.app(policy).initiate_auth_code_flow(
            scopes=[], redirect_uri=url_for("auth.callback", _external=True)
        )
    except (ValueError, requests.RequestException) as exc:
        log.error("cannot start the %s user flow: %s", policy, type(exc).__name__)
        abort(503, description="The sign-in service is unavailable; try again shortly.")
    session["auth_flow"] = {"flow": flow, "policy": policy, "next": next_url}
    return redirect(flow["auth_uri"])


@bp.get("/login")
def login() -> Response:
    return _start_flow(get_settings().signup_signin_policy, safe_next(request.args.get("next")))


@bp.get("/reset-password")
def reset_password() -> Response:
    return _start_flow(get_settings().password_reset_policy, safe_next(request.args.get("next")))


@bp.get("/edit-profile")
def edit_profile() -> Response:
    if g.user is None:
        return redirect(url_for("auth.login", next="/"))
    return _start_flow(get_settings().profile_edit_policy, "/")


@bp.get("/callback")
def callback() -> Response | tuple[str, int]:
    pending = session.pop("auth_flow", None)
    description = request.args.get("error_description", "")
    if FORGOT_PASSWORD in description:
        return _start_flow(get_settings().password_reset_policy, pending["next"] if pending else "/")
    if CANCELLED in description:
        return redirect(url_for("views.index"))
    if not isinstance(pending, dict) or "flow" not in pending:
        return _sign_in_failed("This sign-in has expired or was already used. Please sign in again.")
    if request.args.get("error"):
        log.warning("B2C returned %s", request.args.get("error"))
        return _sign_in_failed("The sign-in service returned an error. Please try again.")
    b2c = get_b2c()
    flow, policy = pending["flow"], pending["policy"]
    try:
        result = b2c.app(policy).acquire_token_by_auth_code_flow(dict(flow), request.args.to_dict())
    except (ValueError, RuntimeError) as exc:  # MSAL raises these on a state or nonce mismatch
        log.warning("auth code flow refused: %s", type(exc).__name__)
        return _sign_in_failed("The sign-in response did not match this sign-in. Please try again.")
    except requests.RequestException:
        abort(503, description="The sign-in service is unavailable; try again shortly.")
    if "id_token" not in result:
        log.warning("token request refused: %s", result.get("error"))
        return _sign_in_failed("The sign-in could not be completed. Please try again.")
    try:
        claims = b2c.validate_id_token(result["id_token"], policy=policy, nonce=flow["nonce"])
    except SignInError as exc:
        log.warning("ID token refused: %s", exc)
        return _sign_in_failed("The sign-in response could not be verified. Please try again.")
    except requests.RequestException:
        abort(503, description="The sign-in service is unavailable; try again shortly.")
    emails = claims.get("emails") or []
    session.clear()
    session.permanent = True
    session["user"] = {
        "oid": claims.get("oid") or claims["sub"],
        "name": claims.get("name") or "",
        "email": emails[0] if emails else None,
    }
    return redirect(pending.get("next") or "/")


def _sign_in_failed(message: str) -> tuple[str, int]:
    return render_template("error.html", title="Sign-in failed", message=message), 400


@bp.get("/logout")
def logout() -> Response:
    session.clear()
    home = url_for("views.index", _external=True)
    try:
        end_session = get_b2c().metadata(get_settings().signup_signin_policy)["end_session_endpoint"]
    except (requests.RequestException, KeyError, ValueError):
        return redirect(home)
    return redirect(f"{end_session}?{urlencode({'post_logout_redirect_uri': home})}")
