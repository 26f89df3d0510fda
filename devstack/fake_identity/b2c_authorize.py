"""B2C's authorize endpoint: the sign-in / sign-up page a browser sees, and its answer to the app.

It serves what the app's MSAL auth-code flow sends (response_type=code, scopes
`openid profile offline_access`, PKCE S256, the answer in the query string). What real B2C also
offers and the app never asks for (API scopes, plain PKCE, fragment or form_post) is refused with a
message that says so, rather than imitated.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from .b2c import error_page, resolve, unregistered_client
from .context import FakeIdentity, current
from .errors import Rejected, b2c_description
from .state import AuthCode, FakeUser, StateError

bp = Blueprint("fake_b2c_authorize", __name__)

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
# Scopes that ask for an ID token (and a refresh token); any other scope asks for an access token.
OIDC_SCOPES = {"openid", "offline_access", "profile", "email"}
ACCOUNT_KINDS = [
    ("local_with_emails_claim", "Local account, emails claim in ID token"),
    ("local", "Local account, no emails claim (Graph mail is null)"),
    ("social", "Social account (email only in otherMails)"),
]


def _flow(policy: str) -> str:
    name = policy.lower()
    if "reset" in name:
        return "reset"
    if "edit" in name or "profile" in name:
        return "edit"
    return "signin"


def oauth_params() -> dict[str, str]:
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
        raise Rejected(error_page(400, "AADB2C90008", "The request does not contain a client ID parameter."))
    if client_id.lower() != cfg.client_id:
        raise Rejected(error_page(400, *unregistered_client(fake, client_id)))
    redirect_uri = params["redirect_uri"]
    if not fake.redirect_uri_registered(redirect_uri):
        raise Rejected(
            error_page(
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
    api_scopes = [s for s in scopes if s not in OIDC_SCOPES]
    if api_scopes:
        return (
            "invalid_scope",
            "AADB2C90117",
            f"The scope '{api_scopes[0]}' provided in the request is not supported. This fake "
            "issues no access tokens: the app asks only for 'openid profile offline_access'.",
        )
    if "openid" not in scopes:
        return (
            "invalid_request",
            "AADB2C90115",
            "When requesting the 'code' response_type, the scope parameter must include a "
            "resource or client ID for access tokens, and 'openid' for ID tokens. Additionally "
            "include 'offline_access' for refresh tokens.",
        )
    if params["response_mode"] not in ("", "query"):
        return (
            "invalid_request",
            "AADB2C90014",
            f"The requested response mode '{params['response_mode']}' provided in the request "
            "is not supported. This fake answers in the query string only, as MSAL asks by "
            "default and the app's callback reads.",
        )
    method = params["code_challenge_method"]
    if (method or params["code_challenge"]) and method != "S256":  # no method means plain
        return (
            "invalid_request",
            "AADB2C90184",
            "The supplied code_challenge_method is not supported. This fake supports S256 only, "
            "which MSAL sends (B2C also accepts plain).",
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


def respond(params: dict[str, str], fields: dict[str, str]) -> BaseResponse:
    """Send the result to the app's redirect URI, in its query string."""
    if params["state"]:
        fields = {**fields, "state": params["state"]}
    parts = urlsplit(params["redirect_uri"])
    parts = parts._replace(query=urlencode([*parse_qsl(parts.query), *fields.items()]))
    return redirect(urlunsplit(parts), code=302)


def _respond_error(params: dict[str, str], error: str, code: str, message: str) -> BaseResponse:
    return respond(params, {"error": error, "error_description": b2c_description(code, message)})


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
    policy = resolve(fake, tenant, policy, html=True)
    params = oauth_params()
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
    user = fake.state.user_by_email(email, "b2c") if email else None
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
            auth_time=int(time.time()),
        )
    )
    return respond(params, {"code": code})
