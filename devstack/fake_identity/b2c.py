"""Azure AD B2C user-flow endpoints: metadata, keys, the sign-in page, token and logout.

Authority: https://HOST:PORT/{tenant}.onmicrosoft.com/{policy} (or the tenant GUID instead of
the domain); tenant and policy match case-insensitively, as they do on b2clogin.com.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from .context import FakeIdentity, base_url, current
from .entra import client_credentials_from_request
from .errors import b2c_description, b2c_error
from .state import REFRESH_TOKEN_LIFETIME, AuthCode, FakeUser, RefreshGrant, StateError
from .tokens import apply_defect, b2c_id_token_claims, unsigned_jwt

bp = Blueprint("fake_b2c", __name__)

# Carried through the sign-in page in hidden fields so the POST completes the same request.
OAUTH_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "login_hint",
)
OIDC_SCOPES = {"openid", "offline_access", "profile", "email"}
ACCOUNT_KINDS = [
    ("local_with_emails_claim", "Local account, emails claim in ID token"),
    ("local", "Local account, no emails claim (Graph mail is null)"),
    ("social", "Social account (email only in otherMails)"),
]
SOCIAL_IDP = "google.com"


class Rejected(Exception):
    """Stop handling a request with a ready-made error response."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


@bp.errorhandler(Rejected)
def _rejected(exc: Rejected) -> Response:
    return exc.response


def _error_page(status: int, code: str, message: str) -> Response:
    response = Response(
        render_template(
            "fake_identity/message.html",
            heading="Sorry, something went wrong",
            error=b2c_description(code, message),
            tenant_name=current().config.b2c_tenant_name,
        ),
        status=status,
        mimetype="text/html",
    )
    return response


def _resolve(fake: FakeIdentity, tenant: str, policy: str, *, html: bool = False) -> str:
    """The configured policy name, or a 404 like B2C's for an unknown tenant or user flow."""
    found = fake.policy(policy)
    if found is not None and fake.b2c_tenant_matches(tenant):
        return found
    code = "AADB2C90022"
    message = f"Unable to return metadata for the policy '{policy}' in tenant '{tenant}'."
    if html:
        raise Rejected(_error_page(404, code, message))
    raise Rejected(b2c_error(404, "invalid_request", code, message))


def _authority(tenant: str, policy: str) -> str:
    return f"{base_url()}/{tenant.lower()}/{policy.lower()}"


@bp.get("/<tenant>/<policy>/v2.0/.well-known/openid-configuration")
def metadata(tenant: str, policy: str) -> Response:
    fake = current()
    fake.state.count("metadata")
    policy = _resolve(fake, tenant, policy)
    authority = _authority(tenant, policy)
    return jsonify(
        {
            "issuer": f"{base_url()}/{fake.config.b2c_tenant_id}/v2.0/",
            "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
            "token_endpoint": f"{authority}/oauth2/v2.0/token",
            "end_session_endpoint": f"{authority}/oauth2/v2.0/logout",
            "jwks_uri": f"{authority}/discovery/v2.0/keys",
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
    _resolve(fake, tenant, policy)
    return jsonify(fake.key.jwks())


# --- authorize: the sign-in / sign-up page ----------------------------------------------------


def _flow(policy: str) -> str:
    name = policy.lower()
    if "reset" in name:
        return "reset"
    if "edit" in name or "profile" in name:
        return "edit"
    return "signin"


def _oauth_params() -> dict[str, str]:
    """Request parameters, the page's hidden fields winning over the query string on POST."""
    params = {name: request.args.get(name, "") for name in OAUTH_PARAMS}
    if request.method == "POST":
        params.update({n: request.form[n] for n in OAUTH_PARAMS if n in request.form})
    return params


def _check_client(fake: FakeIdentity, params: dict[str, str]) -> None:
    """Errors B2C cannot send back to the app (no trusted redirect URI): shown as a page."""
    cfg = fake.config
    client_id = params["client_id"]
    if not client_id:
        raise Rejected(_error_page(400, "AADB2C90008", "The request does not contain a client ID parameter."))
    if client_id.lower() != cfg.client_id:
        raise Rejected(
            _error_page(
                400,
                "AADB2C90018",
                f"The client ID '{client_id}' specified in the request is not registered in "
                f"tenant '{cfg.b2c_domain}'.",
            )
        )
    redirect_uri = params["redirect_uri"]
    parsed = urlsplit(redirect_uri)
    registered = not cfg.redirect_uris or redirect_uri in cfg.redirect_uris
    if parsed.scheme not in ("http", "https") or not parsed.netloc or not registered:
        raise Rejected(
            _error_page(
                400,
                "AADB2C90006",
                f"The redirect URI '{redirect_uri}' provided in the request is not registered "
                f"for the client ID '{client_id}'.",
            )
        )


def _request_error(params: dict[str, str]) -> tuple[str, str, str] | None:
    """Errors B2C reports back to the app's redirect URI: (error, AADB2C code, message)."""
    response_type = params["response_type"]
    if response_type != "code":
        return (
            "unsupported_response_type",
            "AADB2C90013",
            f"The requested response type '{response_type}' provided in the request is not supported.",
        )
    scopes = params["scope"].split()
    if not scopes:
        return ("invalid_request", "AADB2C90010", "The request does not contain a scope parameter.")
    if "openid" not in scopes and all(s in OIDC_SCOPES for s in scopes):
        return (
            "invalid_request",
            "AADB2C90115",
            "When requesting the 'code' response_type, the scope parameter must include a "
            "resource or client ID for access tokens, and 'openid' for ID tokens. Additionally "
            "include 'offline_access' for refresh tokens.",
        )
    if params["response_mode"] not in ("", "query", "fragment", "form_post"):
        return (
            "invalid_request",
            "AADB2C90014",
            f"The requested response mode '{params['response_mode']}' provided in the request "
            "is not supported.",
        )
    if params["code_challenge_method"] not in ("", "S256", "plain"):
        return (
            "invalid_request",
            "AADB2C90184",
            "The supplied code_challenge_method is not supported. Supported values are plain or S256",
        )
    if request.method == "GET" and params["prompt"].lower() == "none":
        # The fake keeps no SSO session, so a silent request can never succeed.
        return (
            "login_required",
            "AADB2C90077",
            "User does not have an existing session and request prompt parameter has a value "
            f"of '{params['prompt']}'.",
        )
    return None


def _respond(params: dict[str, str], fields: dict[str, str]) -> BaseResponse:
    """Send the result to the app in the response mode it asked for (query by default)."""
    if params["state"]:
        fields = {**fields, "state": params["state"]}
    redirect_uri, mode = params["redirect_uri"], params["response_mode"] or "query"
    if mode == "form_post":
        return Response(
            render_template(
                "fake_identity/form_post.html",
                redirect_uri=redirect_uri,
                fields=fields,
                tenant_name=current().config.b2c_tenant_name,
            ),
            mimetype="text/html",
        )
    parts = urlsplit(redirect_uri)
    if mode == "fragment":
        parts = parts._replace(fragment=urlencode(fields))
    else:
        parts = parts._replace(query=urlencode([*parse_qsl(parts.query), *fields.items()]))
    return redirect(urlunsplit(parts), code=302)


def _respond_error(params: dict[str, str], error: str, code: str, message: str) -> BaseResponse:
    return _respond(params, {"error": error, "error_description": b2c_description(code, message)})


def _page(policy: str, params: dict[str, str], **values: Any) -> Response:
    flow = _flow(policy)
    heading, intro, submit = {
        "signin": ("Sign in", "Sign in with your email address", "Sign in"),
        "reset": ("Reset your password", "Confirm your email address and password", "Continue"),
        "edit": ("Edit your profile", "Sign in to edit your profile", "Continue"),
    }[flow]
    context: dict[str, Any] = {
        "error": None,
        "email": params.get("login_hint", ""),
        "name": "",
        "signup_email": "",
        "kind": ACCOUNT_KINDS[0][0],
        **values,
    }
    html = render_template(
        "fake_identity/authorize.html",
        flow=flow,
        heading=heading,
        intro=intro,
        submit_label=submit,
        policy=policy,
        tenant_name=current().config.b2c_tenant_name,
        oauth_params={k: v for k, v in params.items() if v},
        action_url=request.full_path.rstrip("?"),
        kinds=ACCOUNT_KINDS,
        **context,
    )
    return Response(html, mimetype="text/html")


@bp.route("/<tenant>/<policy>/oauth2/v2.0/authorize", methods=["GET", "POST"])
def authorize(tenant: str, policy: str) -> BaseResponse:
    fake = current()
    fake.state.count("authorize" if request.method == "GET" else "authorize_submit")
    policy = _resolve(fake, tenant, policy, html=True)
    params = _oauth_params()
    _check_client(fake, params)
    problem = _request_error(params)
    if problem is not None:
        return _respond_error(params, *problem)
    if request.method == "GET":
        return _page(policy, params)

    action = request.form.get("action", "signin")
    if action == "cancel":
        return _respond_error(
            params,
            "access_denied",
            "AADB2C90091",
            "The user has cancelled entering self-asserted information.",
        )
    if action == "forgot":
        return _respond_error(
            params, "access_denied", "AADB2C90118", "The user has forgotten their password."
        )
    if action == "signup" and _flow(policy) == "signin":
        return _sign_up(fake, policy, params)
    return _sign_in(fake, policy, params)


def _sign_in(fake: FakeIdentity, policy: str, params: dict[str, str]) -> BaseResponse:
    email = request.form.get("email", "").strip()
    user = fake.state.user_by_email(email) if email else None
    if user is None:
        return _page(policy, params, error="We can't seem to find your account.", email=email)
    if not user.check_password(request.form.get("password", "")):
        return _page(policy, params, error="Your password is incorrect.", email=email)
    return _complete(fake, policy, params, user)


def _sign_up(fake: FakeIdentity, policy: str, params: dict[str, str]) -> BaseResponse:
    form = request.form
    name, email = form.get("name", "").strip(), form.get("email", "").strip()
    password, kind = form.get("password", ""), form.get("kind", ACCOUNT_KINDS[0][0])
    again = {"name": name, "signup_email": email, "kind": kind}
    if not name or not password:
        return _page(policy, params, error="Display name and password are required.", **again)
    try:
        user = fake.state.add_user(email=email, name=name, password=password, kind=kind)
    except StateError as exc:
        message = (
            "A user with the specified ID already exists. Please choose a different one."
            if exc.status == 409
            else str(exc)
        )
        return _page(policy, params, error=message, **again)
    return _complete(fake, policy, params, user)


def _complete(fake: FakeIdentity, policy: str, params: dict[str, str], user: FakeUser) -> BaseResponse:
    code = fake.state.issue_code(
        AuthCode(
            user_oid=user.oid,
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            policy=policy,
            scope=params["scope"],
            nonce=params["nonce"] or None,
            code_challenge=params["code_challenge"] or None,
            code_challenge_method=params["code_challenge_method"] or None,
            auth_time=int(time.time()),
        )
    )
    return _respond(params, {"code": code})


# --- token --------------------------------------------------------------------------------------


def _b64url_json(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _pkce_matches(verifier: str, challenge: str, method: str | None) -> bool:
    if method == "plain":
        computed = verifier
    else:
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return hmac.compare_digest(computed, challenge)


def _grant_expired(issued_at: int | None = None) -> Response:
    now = int(time.time())
    issued = issued_at or now
    return b2c_error(
        400,
        "invalid_grant",
        "AADB2C90080",
        "The provided grant has expired. Please re-authenticate and try again. "
        f"Current time: {now}, Grant issued time: {issued}, "
        f"Grant sliding window expiration time: {issued + 600}.",
    )


def _wrong_endpoint(actual: str, expected: str) -> Response:
    return b2c_error(
        400,
        "invalid_grant",
        "AADB2C90088",
        "The provided grant has not been issued for this endpoint. "
        f"Actual Value : {actual} and Expected Value : {expected}",
    )


def _missing(parameter: str) -> Response:
    return b2c_error(
        400, "invalid_request", "AADB2C90083", f"The request is missing required parameter: {parameter}."
    )


@bp.post("/<tenant>/<policy>/oauth2/v2.0/token")
def token(tenant: str, policy: str) -> Response:
    fake = current()
    cfg, state, form = fake.config, fake.state, request.form
    state.count("b2c_token")
    policy = _resolve(fake, tenant, policy)

    client_id, secret = client_credentials_from_request()
    if not client_id:
        return _missing("client_id")
    if client_id.lower() != cfg.client_id:
        return b2c_error(
            400,
            "invalid_request",
            "AADB2C90018",
            f"The client ID '{client_id}' specified in the request is not registered in tenant "
            f"'{cfg.b2c_domain}'.",
        )
    if not secret:
        return b2c_error(
            400,
            "invalid_request",
            "AADB2C90079",
            "Clients must send a client_secret when redeeming a confidential grant.",
        )
    if not hmac.compare_digest(secret.encode(), cfg.client_secret.encode()):
        return b2c_error(
            401,
            "invalid_client",
            "AADB2C90081",
            "The specified client_secret does not match the expected value for this client. "
            "Please correct the client_secret and try again.",
        )

    grant_type = form.get("grant_type", "")
    if grant_type == "authorization_code":
        return _redeem_code(fake, policy, client_id)
    if grant_type == "refresh_token":
        return _redeem_refresh_token(fake, policy, client_id)
    if not grant_type:
        return _missing("grant_type")
    return b2c_error(
        400,
        "unsupported_grant_type",
        "AADB2C90086",
        f"The supplied grant_type [{grant_type}] is not supported.",
    )


def _redeem_code(fake: FakeIdentity, policy: str, client_id: str) -> Response:
    form = request.form
    code = form.get("code", "")
    if not code:
        return _missing("code")
    grant = fake.state.redeem_code(code)  # burnt now, whatever happens next
    if grant is None:
        return _grant_expired()
    if grant.policy != policy:
        return _wrong_endpoint(policy, grant.policy)
    if grant.client_id.lower() != client_id.lower():
        return _wrong_endpoint(client_id, grant.client_id)
    if form.get("redirect_uri", "") != grant.redirect_uri:
        return _wrong_endpoint(form.get("redirect_uri", ""), grant.redirect_uri)
    if grant.code_challenge:
        verifier = form.get("code_verifier", "")
        if not verifier:
            return b2c_error(400, "invalid_request", "AADB2C90183", "The supplied code_verifier is invalid")
        if not _pkce_matches(verifier, grant.code_challenge, grant.code_challenge_method):
            return b2c_error(
                400,
                "invalid_grant",
                "AADB2C90182",
                "The supplied code_verifier does not match associated code_challenge",
            )
    user = fake.state.user_by_oid(grant.user_oid)
    if user is None:
        return _account_gone()
    return _token_response(fake, user, policy, grant.scope, nonce=grant.nonce, auth_time=grant.auth_time)


def _redeem_refresh_token(fake: FakeIdentity, policy: str, client_id: str) -> Response:
    refresh_token = request.form.get("refresh_token", "")
    if not refresh_token:
        return _missing("refresh_token")
    grant = fake.state.refresh_grant(refresh_token)
    if grant is None:
        return _grant_expired()
    if grant.policy != policy:
        return _wrong_endpoint(policy, grant.policy)
    if grant.client_id.lower() != client_id.lower():
        return _wrong_endpoint(client_id, grant.client_id)
    user = fake.state.user_by_oid(grant.user_oid)
    if user is None:
        return _account_gone()
    scope = request.form.get("scope") or grant.scope
    return _token_response(fake, user, policy, scope, nonce=None, auth_time=grant.auth_time)


def _account_gone() -> Response:
    return b2c_error(
        400,
        "invalid_grant",
        "AADB2C90128",
        "The account associated with this grant no longer exists. Please reauthenticate and try again.",
    )


def _id_token(fake: FakeIdentity, user: FakeUser, policy: str, nonce: str | None, auth_time: int) -> str:
    claims = b2c_id_token_claims(
        issuer=f"{base_url()}/{fake.config.b2c_tenant_id}/v2.0/",
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
    defect = fake.state.take_id_token_defect()
    if defect is not None:
        claims = apply_defect(claims, defect)
    if defect == "bad_signature":
        return fake.key.sign_with_wrong_key(claims)
    if defect == "alg_none":
        return unsigned_jwt(claims)
    return fake.key.sign(claims)


def _access_token(fake: FakeIdentity, user: FakeUser, policy: str, resource_scopes: list[str]) -> str:
    """A B2C access token for the app's own API scopes (aud = the client id or API URI)."""
    cfg, now = fake.config, int(time.time())
    first = resource_scopes[0]
    audience = cfg.client_id if first.lower() == cfg.client_id else first.rsplit("/", 1)[0]
    names = [s.rsplit("/", 1)[-1] for s in resource_scopes if s.lower() != cfg.client_id]
    claims: dict[str, Any] = {
        "iss": f"{base_url()}/{cfg.b2c_tenant_id}/v2.0/",
        "exp": now + cfg.access_token_lifetime,
        "nbf": now,
        "aud": audience,
        "oid": user.oid,
        "sub": user.oid,
        "name": user.name,
        "tfp": policy,
        "azp": cfg.client_id,
        "ver": "1.0",
        "iat": now,
    }
    if names:
        claims["scp"] = " ".join(names)
    return fake.key.sign(claims)


def _token_response(
    fake: FakeIdentity,
    user: FakeUser,
    policy: str,
    scope: str,
    *,
    nonce: str | None,
    auth_time: int,
) -> Response:
    """B2C's token response: id_token + profile_info, access_token only for API scopes."""
    cfg, now = fake.config, int(time.time())
    scopes = scope.split()
    resource_scopes = [s for s in scopes if s not in OIDC_SCOPES]
    body: dict[str, Any] = {}
    if "openid" in scopes:
        body["id_token"] = _id_token(fake, user, policy, nonce, auth_time)
    body["token_type"] = "Bearer"
    body["not_before"] = now
    if resource_scopes:
        body["access_token"] = _access_token(fake, user, policy, resource_scopes)
        body["expires_in"] = cfg.access_token_lifetime
        body["expires_on"] = now + cfg.access_token_lifetime
    if "openid" in scopes:
        body["id_token_expires_in"] = cfg.id_token_lifetime
        body["profile_info"] = _b64url_json(
            {
                "ver": "1.0",
                "tid": cfg.b2c_tenant_id,
                "sub": None,
                "name": user.name,
                "preferred_username": None,
                "idp": SOCIAL_IDP if user.is_social else "LocalAccount",
            }
        )
    body["scope"] = scope
    if "offline_access" in scopes:
        body["refresh_token"] = fake.state.issue_refresh_token(
            RefreshGrant(
                user_oid=user.oid,
                client_id=cfg.client_id,
                policy=policy,
                scope=scope,
                auth_time=auth_time,
            )
        )
        body["refresh_token_expires_in"] = REFRESH_TOKEN_LIFETIME
    if request.form.get("client_info") == "1":
        # What MSAL keys its account cache on: uid = "{oid}-{policy}", utid = the tenant.
        body["client_info"] = _b64url_json({"uid": f"{user.oid}-{policy.lower()}", "utid": cfg.b2c_tenant_id})
    return jsonify(body)


# --- logout -------------------------------------------------------------------------------------


@bp.get("/<tenant>/<policy>/oauth2/v2.0/logout")
def logout(tenant: str, policy: str) -> BaseResponse:
    fake = current()
    fake.state.count("logout")
    _resolve(fake, tenant, policy, html=True)
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
        return _error_page(
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
