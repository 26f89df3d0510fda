"""Sign-in with Azure AD B2C user flows or Microsoft Entra External ID.

MSAL runs the auth-code flow (PKCE, state, nonce). Since MSAL 1.38 no longer validates ID
tokens, this module checks the signature against the user flow's JWKS and the `iss`, `aud`,
`exp` and `nonce` claims with PyJWT. The session cookie holds a session id and the user's id,
name and (when the token carries it) email; the session itself lives in PostgreSQL
(app/sessions.py), so any instance can serve any user and sign-out ends it everywhere.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Mapping
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

from app.identity_errors import ADMIN, Diagnosis, diagnose
from app.sessions import get_sessions
from app.settings import B2C_DIRECTORY, Authority, Directory, IdentitySettings, is_guid

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__, url_prefix="/auth")

F = TypeVar("F", bound=Callable[..., Any])

FORGOT_PASSWORD = "AADB2C90118"  # noqa: S105  # a B2C error code
# The user cancelled: B2C's code, and Entra's "user declined" (External ID's sign-in page).
CANCELLED = ("AADB2C90091", "AADSTS65004")


class SignInError(Exception):
    """The sign-in response was refused; the message is safe to show."""


JWKS_MAX_AGE = 24 * 3600  # seconds: signing keys are fetched again at least daily
UNKNOWN_KID_RETRY = 300  # seconds before an unknown key id may cause another fetch


def _key_named(keys: jwt.PyJWKSet, kid: str | None) -> jwt.PyJWK | None:
    return next((key for key in keys.keys if key.key_id == kid), None)


class NoUserTokens(msal.TokenCache):
    """MSAL's cache for the sign-in apps, keeping nothing: the app uses the ID token once, at the
    callback, and never calls an API for the user, so the ID, access and refresh tokens MSAL
    would otherwise keep for every user who ever signed in are dropped."""

    def add(self, event: dict[str, Any], now: Any = None) -> None:
        return None


class IdentityClient:
    """The sign-in authorities (one per user flow): metadata, JWKS and an MSAL app each,
    fetched on first use and cached."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        authorities: Mapping[str, Authority],
        directory: Directory = B2C_DIRECTORY,
        timeout: float = 10.0,
        leeway: int = 60,
    ) -> None:
        self.client_id = client_id
        self.directory = directory
        self._client_secret = client_secret
        self.authorities = dict(authorities)  # "sign_in", "password_reset", "profile_edit"
        self.timeout = timeout
        self.leeway = leeway
        self.http = requests.Session()
        self._apps: dict[str, msal.ConfidentialClientApplication] = {}
        self._metadata: dict[str, dict[str, Any]] = {}
        self._jwks: dict[str, tuple[float, jwt.PyJWKSet]] = {}
        self._unknown_kids: dict[tuple[str, str | None], float] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: IdentitySettings, *, timeout: float = 10.0) -> IdentityClient:
        return cls(
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            authorities=settings.authorities,
            directory=settings.directory,
            timeout=timeout,
        )

    def app(self, flow: str) -> msal.ConfidentialClientApplication:
        with self._lock:
            if flow not in self._apps:
                authority = self.authorities[flow]
                # External ID: `oidc_authority` makes MSAL read `{authority}/.well-known/
                # openid-configuration` as given, for ciamlogin.com, a custom domain or the fake.
                where = {"oidc_authority" if authority.oidc else "authority": authority.url}
                self._apps[flow] = msal.ConfidentialClientApplication(
                    self.client_id,
                    client_credential=self._client_secret,
                    instance_discovery=False,  # custom domains and the fake are not Microsoft's
                    timeout=self.timeout,
                    token_cache=NoUserTokens(),
                    **where,
                )
            return self._apps[flow]

    def metadata(self, flow: str) -> dict[str, Any]:
        """The flow's OpenID metadata; raises requests' errors (HTTPError for a non-200)."""
        if flow not in self._metadata:
            response = self.http.get(self.authorities[flow].metadata_url, timeout=self.timeout)
            response.raise_for_status()
            self._metadata[flow] = response.json()
        return self._metadata[flow]

    def tenant_by_name(self, flow: str) -> str | None:
        """The tenant id the authority's tenant *name* resolves to, from its metadata's issuer;
        None when it cannot be told (B2C, or the name is unknown too)."""
        url = self.authorities[flow].discovery_url
        if url is None:
            return None
        try:
            response = self.http.get(url, timeout=self.timeout)
            response.raise_for_status()
            return issuer_tenant(str(response.json()["issuer"]))
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return None

    def wrong_tenant(self, flow: str) -> Diagnosis | None:
        """The classic mistake on the sign-in side: the configured tenant id is not the id of
        the tenant named by the authority (MSAL's own error hides the service's answer)."""
        authority = self.authorities[flow]
        named = self.tenant_by_name(flow)
        if named is None or named == authority.tenant_id:
            return None
        return diagnose(
            "issuer_tenant",
            self.directory,
            known_tenant=named,
            source=f"the {authority.name} tenant's metadata",
            issuer_tenant=named,
            tenant_id=authority.tenant_id,
        )

    def _signing_key(self, flow: str, kid: str | None) -> jwt.PyJWK:
        """The JWKS key named by `kid`. The set is fetched again at least daily, and at once for
        a key id not seen yet (a rollover); an unknown id is retried at most every few minutes,
        so a token with a made-up id cannot make the app hammer the endpoint. A key gone from the
        refetched set is refused from then on."""
        jwks_uri = self.metadata(flow)["jwks_uri"]
        now = time.monotonic()
        fetched_at, keys = self._jwks.get(jwks_uri, (0.0, None))
        if keys is None or now - fetched_at > JWKS_MAX_AGE:
            keys, fetched_at = self._fetch_jwks(jwks_uri), now
        key = _key_named(keys, kid)
        if key is None:
            tried = self._unknown_kids.get((jwks_uri, kid))
            if tried is None or now - tried > UNKNOWN_KID_RETRY:
                if len(self._unknown_kids) > 1000:
                    self._unknown_kids.clear()
                self._unknown_kids[(jwks_uri, kid)] = now
                key = _key_named(self._fetch_jwks(jwks_uri), kid)
        if key is None:
            raise SignInError("The ID token is signed with an unknown key.")
        return key

    def _fetch_jwks(self, jwks_uri: str) -> jwt.PyJWKSet:
        response = self.http.get(jwks_uri, timeout=self.timeout)
        response.raise_for_status()
        keys = jwt.PyJWKSet.from_dict(response.json())
        self._jwks[jwks_uri] = (time.monotonic(), keys)
        return keys

    def validate_id_token(self, id_token: str, *, flow: str, nonce: str) -> dict[str, Any]:
        """Check signature, issuer, audience, lifetime, nonce, and the user flow (B2C) or the
        tenant (External ID); return the claims."""
        try:
            header = jwt.get_unverified_header(id_token)
            if header.get("alg") != "RS256":
                raise SignInError("The ID token is not signed with RS256.")
            key = self._signing_key(flow, header.get("kid"))
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key,
                algorithms=["RS256"],
                audience=self.client_id,
                issuer=self.metadata(flow)["issuer"],
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "nonce"]},
            )
        except jwt.PyJWTError as exc:
            raise SignInError(f"The ID token was refused: {exc}.") from None
        if claims["nonce"] != hashlib.sha256(nonce.encode("ascii")).hexdigest():
            raise SignInError("The ID token's nonce does not match this sign-in.")
        authority = self.authorities[flow]
        if authority.policy is not None:
            # B2C names user flows case-insensitively, and has emitted `acr` in lower case.
            named = str(claims.get("tfp") or claims.get("acr") or "")
            if named.lower() != authority.policy.lower():
                raise SignInError(
                    f"The ID token is from user flow {named or '(none)'}, not {authority.policy}, "
                    "which this sign-in started."
                )
        if authority.tenant_id is not None:
            tid = str(claims.get("tid", "")).lower()
            if tid != authority.tenant_id:
                mistake = diagnose(
                    "token_tenant",
                    self.directory,
                    token_tenant=tid or "missing",
                    tenant_id=authority.tenant_id,
                    known_tenant=tid if is_guid(tid) else None,
                )
                raise SignInError(f"The ID token was refused: {mistake.detail}")
            if not claims.get("oid"):  # `sub` is pairwise there: never the user's object id
                raise SignInError("The ID token has no oid claim.")
        if not claims.get("oid") and not claims.get("sub"):
            raise SignInError("The ID token names no user.")
        return claims

    def signed_in_user(self, claims: dict[str, Any], *, flow: str) -> dict[str, Any]:
        """What the session keeps of a validated ID token: object id, name, email if claimed."""
        email = claims.get(self.authorities[flow].email_claim)
        if isinstance(email, list):  # B2C's `emails`
            email = email[0] if email else None
        return {
            "oid": claims.get("oid") or claims["sub"],
            "name": claims.get("name") or "",
            "email": str(email) if email else None,
        }

    def init_app(self, app: Flask) -> None:
        app.extensions["identity"] = self
        app.before_request(load_user)  # before app.csrf's checks, which read g.user
        app.register_blueprint(bp)

        @app.context_processor
        def flows() -> dict[str, object]:
            return {"can_edit_profile": "profile_edit" in self.authorities}


def issuer_tenant(issuer: str) -> str | None:
    """The tenant GUID in an issuer: B2C's `https://host/{tid}/v2.0/` (or `…/tfp/{tid}/{policy}/
    v2.0/`), External ID's `https://{tid}.ciamlogin.com/{tid}/v2.0`."""
    return next((p.lower() for p in urlsplit(issuer).path.split("/") if is_guid(p)), None)


def get_identity() -> IdentityClient:
    return current_app.extensions["identity"]


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


# Answered without the session check: static files, and liveness/readiness during an outage.
_UNCHECKED_ENDPOINTS = frozenset({"static", "views.healthz", "views.readyz"})


def load_user() -> None:
    """The signed-in user, once per request, as `g.user` (None when signed out): the cookie's
    user, when its session id names a live session of that user (app/sessions.py). A revoked,
    ended or unknown session is dropped from the cookie; a database outage raises
    DatabaseUnavailable, which app.errors answers with 503."""
    g.user = None
    user, session_id = session.get("user"), session.get("sid")
    if not isinstance(user, dict) or not user.get("oid"):
        return
    if request.endpoint in _UNCHECKED_ENDPOINTS:
        return
    if not isinstance(session_id, str) or get_sessions().user_oid(session_id) != user["oid"]:
        session.pop("user", None)
        session.pop("sid", None)
        return
    g.user = user


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


def _start_flow(name: str, next_url: str) -> Response:
    identity = get_identity()
    try:
        flow = identity.app(name).initiate_auth_code_flow(
            scopes=[], redirect_uri=url_for("auth.callback", _external=True)
        )
    except (ValueError, requests.RequestException) as exc:
        mistake = identity.wrong_tenant(name)
        if mistake is not None:
            log.error("configuration error: %s", mistake.detail)
            abort(503, description=f"Sign-in is misconfigured. {ADMIN}")
        log.error("cannot start the %s sign-in: %s", identity.authorities[name].name, type(exc).__name__)
        abort(503, description="The sign-in service is unavailable; try again shortly.")
    session["auth_flow"] = {"flow": flow, "authority": name, "next": next_url}
    return redirect(flow["auth_uri"])


@bp.get("/login")
def login() -> Response:
    return _start_flow("sign_in", safe_next(request.args.get("next")))


@bp.get("/reset-password")
def reset_password() -> Response:
    """B2C's reset user flow; External ID resets inside its sign-in page, so that starts."""
    flow = "password_reset" if "password_reset" in get_identity().authorities else "sign_in"
    return _start_flow(flow, safe_next(request.args.get("next")))


@bp.get("/edit-profile")
def edit_profile() -> Response:
    if "profile_edit" not in get_identity().authorities:
        abort(404)  # External ID has no profile-edit user flow
    if g.user is None:
        return redirect(url_for("auth.login", next="/"))
    return _start_flow("profile_edit", "/")


@bp.get("/callback")
def callback() -> Response | tuple[str, int]:
    pending = session.get("auth_flow")
    identity = get_identity()
    if (
        not isinstance(pending, dict)
        or "flow" not in pending
        or pending.get("authority") not in identity.authorities
    ):
        session.pop("auth_flow", None)
        return _sign_in_failed("This sign-in has expired or was already used. Please sign in again.")
    # The state first: nothing in a response this browser's sign-in did not ask for is acted on
    # (a link from another site could otherwise cancel a sign-in or start the reset flow), and
    # the sign-in in progress stays pending, to complete when its own response arrives.
    if not hmac.compare_digest(request.args.get("state", ""), str(pending["flow"].get("state", ""))):
        log.warning("sign-in response refused: its state is not this sign-in's")
        return _sign_in_failed("The sign-in response did not match this sign-in. Please try again.")
    session.pop("auth_flow")  # this response is the sign-in's: it is used once, whatever follows
    if request.args.get("error"):
        description = request.args.get("error_description", "")
        if FORGOT_PASSWORD in description and "password_reset" in identity.authorities:
            return _start_flow("password_reset", pending["next"])
        if any(code in description for code in CANCELLED):
            return redirect(url_for("views.index"))
        log.warning("the sign-in service returned %s", request.args.get("error"))
        return _sign_in_failed("The sign-in service returned an error. Please try again.")
    flow, name = pending["flow"], pending["authority"]
    try:
        result = identity.app(name).acquire_token_by_auth_code_flow(dict(flow), request.args.to_dict())
    except (ValueError, RuntimeError) as exc:  # MSAL raises these on a state or nonce mismatch
        log.warning("auth code flow refused: %s", type(exc).__name__)
        return _sign_in_failed("The sign-in response did not match this sign-in. Please try again.")
    except requests.RequestException:
        abort(503, description="The sign-in service is unavailable; try again shortly.")
    if "id_token" not in result:
        log.warning("token request refused: %s", result.get("error"))
        return _sign_in_failed("The sign-in could not be completed. Please try again.")
    try:
        claims = identity.validate_id_token(result["id_token"], flow=name, nonce=flow["nonce"])
    except SignInError as exc:
        log.warning("ID token refused: %s", exc)
        return _sign_in_failed("The sign-in response could not be verified. Please try again.")
    except requests.RequestException:
        abort(503, description="The sign-in service is unavailable; try again shortly.")
    user = identity.signed_in_user(claims, flow=name)
    session.clear()
    session.permanent = True
    session["sid"] = get_sessions().start(user["oid"])
    session["user"] = user
    return redirect(pending.get("next") or "/")


def _sign_in_failed(message: str) -> tuple[str, int]:
    return render_template("error.html", title="Sign-in failed", message=message), 400


@bp.get("/logout")
def logout_page() -> str:
    """A page with the sign-out button: a GET never signs out, so no other site can."""
    return render_template("logout.html")


@bp.post("/logout")
def logout() -> Response:
    """Revoke the session for every instance (app.csrf has checked origin and token), then end
    the identity provider's session too."""
    session_id = session.get("sid")
    if isinstance(session_id, str):
        get_sessions().revoke(session_id)
    session.clear()
    home = url_for("views.index", _external=True)
    try:
        end_session = get_identity().metadata("sign_in")["end_session_endpoint"]
    except (requests.RequestException, KeyError, ValueError):
        return redirect(home, code=303)
    return redirect(f"{end_session}?{urlencode({'post_logout_redirect_uri': home})}", code=303)
