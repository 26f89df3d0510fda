"""External ID's authorize endpoint: the external tenant's sign-in page, and its answer to the app.

One page offers what an external tenant's sign-up/sign-in user flow can (Microsoft Entra
External ID, "Authentication methods and identity providers for external tenants",
learn.microsoft.com/entra/external-id/customers/concept-authentication-methods-customers):
email with password (sign-in, and sign-up after verifying the address with a code), email
one-time passcode, Google, and "Forgot password?", which resets the password inside the same
flow and then completes the sign-in (how-to-enable-password-reset-customers). The code that the
real service mails is shown on the page instead: the fake's inbox.

It serves what the app's MSAL auth-code flow sends (response_type=code, scopes
`openid profile offline_access`, PKCE S256, the answer in the query string); what Entra also
offers and the app never asks for is refused with a message that says so.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request
from werkzeug.wrappers import Response as BaseResponse

from .b2c_authorize import oauth_params, respond
from .context import FakeIdentity, current
from .entra import app_not_found_message
from .errors import Rejected, entra_description
from .external_id import error_page, page, resolve
from .state import AuthCode, FakeUser, StateError

bp = Blueprint("fake_external_id_authorize", __name__)

TEMPLATE = "fake_identity/external_id_authorize.html"
SIGN_IN_SCOPES = {"openid", "profile", "offline_access"}
# Entra's answer to a user who backs out of the sign-in page: access_denied with
# UserDeclinedConsent (AADSTS error codes reference, learn.microsoft.com/entra/identity-platform/
# reference-error-codes: "AADSTS65004 | UserDeclinedConsent - User declined to consent to access
# the app"). External tenants run on the same sign-in service and use the same code.
CANCELLED = (65004, "User declined to consent to access the app.")
NOT_FOUND = "We couldn't find an account with this email address."
HEADINGS = {
    "start": "Sign in",
    "code": "Enter code",
    "forgot": "Reset your password",
    "google": "Sign in with Google",
}
GOOGLE_BANNER = "Local fake of Google's sign-in page (reached from Microsoft Entra External ID), not Google."


def _check_client(fake: FakeIdentity, tenant: str, params: dict[str, str]) -> None:
    """Errors Entra cannot send back to the app (no trusted redirect URI): shown as a page."""
    client_id = params["client_id"]
    if not client_id:
        raise Rejected(
            error_page(400, 900144, "The request body must contain the following parameter: 'client_id'.")
        )
    if client_id.lower() != fake.config.external_client_id:
        raise Rejected(error_page(400, 700016, app_not_found_message(client_id, tenant)))
    redirect_uri = params["redirect_uri"]
    if not fake.redirect_uri_registered(redirect_uri):
        raise Rejected(
            error_page(
                400,
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                f"redirect URIs configured for the application '{client_id}'. Make sure the "
                "redirect URI sent in the request matches one added to your application in the "
                "Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more "
                "about how to fix this.",
            )
        )


def _request_error(params: dict[str, str]) -> tuple[str, int, str] | None:
    """Errors Entra reports back to the app's redirect URI: (error, AADSTS code, message)."""
    response_type = params["response_type"]
    if response_type != "code":
        return (
            "unsupported_response_type",
            70005,
            f"The response type '{response_type}' is not supported. This fake serves "
            "response_type=code only, which MSAL's auth-code flow sends.",
        )
    scopes = params["scope"].split()
    if not scopes:
        return ("invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
    others = [s for s in scopes if s not in SIGN_IN_SCOPES]
    if others:
        return (
            "invalid_scope",
            70011,
            f"The provided value for the input parameter 'scope' is not valid. The scope "
            f"'{others[0]}' is not served by this fake: it issues ID tokens for 'openid profile "
            "offline_access' only, what the app asks for; the email claim comes from the app "
            "registration's optional claims (knob email_claim).",
        )
    if "openid" not in scopes:
        return (
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid. This fake issues ID "
            "tokens only: the scope must include 'openid'.",
        )
    if params["response_mode"] not in ("", "query"):
        return (
            "invalid_request",
            70007,
            f"The response mode '{params['response_mode']}' is not served by this fake. It answers "
            "in the query string only, as MSAL asks by default and the app's callback reads.",
        )
    method = params["code_challenge_method"]
    if (method or params["code_challenge"]) and method != "S256":  # no method means plain
        return (
            "invalid_request",
            9002313,
            "Invalid request. This fake supports code_challenge_method=S256 only, which MSAL sends "
            "(Entra also accepts plain).",
        )
    if request.method == "GET" and params["prompt"].lower() == "none":
        # The fake keeps no SSO session, so a silent request can never succeed.
        return (
            "login_required",
            50058,
            "A silent sign-in request was sent but no user is signed in. This fake keeps no "
            "session, so prompt=none never succeeds.",
        )
    return None


def _respond_error(params: dict[str, str], error: str, code: int, message: str) -> BaseResponse:
    return respond(params, {"error": error, "error_description": entra_description(code, message)})


def _page(params: dict[str, str], step: str = "start", **values: Any) -> Response:
    context: dict[str, Any] = {
        "error": None,
        "email": params.get("login_hint", ""),
        "otp_email": params.get("login_hint", ""),
        "name": "",
        "signup_email": "",
        **values,
    }
    if step == "google":
        context["banner"] = GOOGLE_BANNER
    return page(
        TEMPLATE,
        step=step,
        heading=HEADINGS[step],
        oauth_params={k: v for k, v in params.items() if v},
        action_url=request.full_path.rstrip("?"),
        **context,
    )


@bp.route("/<tenant>/oauth2/v2.0/authorize", methods=["GET", "POST"])
def authorize(tenant: str) -> BaseResponse:
    fake = current()
    fake.state.count("external_authorize" if request.method == "GET" else "external_authorize_submit")
    tenant_id = resolve(fake, tenant, html=True)
    params = oauth_params()
    _check_client(fake, tenant, params)
    problem = _request_error(params)
    if problem is not None:
        return _respond_error(params, *problem)
    if request.method == "GET":
        return _page(params)
    handler = ACTIONS.get(request.form.get("action", "signin"))
    if handler is None:
        return _page(params, error="This page does not offer that action.")
    return handler(Flow(fake, tenant_id, params))


class Flow:
    """One submitted step of the sign-in page: the request it continues and the form sent."""

    def __init__(self, fake: FakeIdentity, tenant_id: str, params: dict[str, str]) -> None:
        self.fake, self.tenant_id, self.params = fake, tenant_id, params
        self.form = request.form

    def field(self, name: str) -> str:
        return self.form.get(name, "").strip()

    def page(self, step: str = "start", **values: Any) -> Response:
        return _page(self.params, step, **values)

    def user(self, email: str, kind: str) -> FakeUser | None:
        user = self.fake.state.user_by_email(email, "external") if email else None
        return user if user is not None and user.kind == kind else None

    def code_page(self, purpose: str, email: str, data: dict[str, str] | None = None) -> Response:
        challenge, code = self.fake.state.issue_passcode(purpose, email, data)
        return self.page("code", purpose=purpose, email=email, flow=challenge, code=code)

    def complete(self, user: FakeUser) -> BaseResponse:
        code = self.fake.state.issue_code(
            AuthCode(
                user_oid=user.oid,
                client_id=self.params["client_id"],
                redirect_uri=self.params["redirect_uri"],
                policy="",
                scope=self.params["scope"],
                nonce=self.params["nonce"] or None,
                code_challenge=self.params["code_challenge"] or None,
                auth_time=int(time.time()),
                tenant_id=self.tenant_id,
            )
        )
        return respond(self.params, {"code": code, "session_state": str(uuid.uuid4())})


def _cancel(flow: Flow) -> BaseResponse:
    return _respond_error(flow.params, "access_denied", *CANCELLED)


def _sign_in(flow: Flow) -> BaseResponse:
    email = flow.field("email")
    user = flow.user(email, "email_password")
    if user is None:
        return flow.page(error=NOT_FOUND, email=email)
    if not user.check_password(flow.form.get("password", "")):
        return flow.page(error="Your password is incorrect.", email=email)
    return flow.complete(user)


def _sign_up(flow: Flow) -> BaseResponse:
    name, email, password = flow.field("name"), flow.field("email"), flow.form.get("password", "")
    again = {"name": name, "signup_email": email}
    if not name or not password or "@" not in email:
        return flow.page(error="Email, password and display name are required.", **again)
    if flow.fake.state.user_by_email(email, "external") is not None:
        return flow.page(error="An account with this email address already exists.", **again)
    return flow.code_page("signup", email, {"name": name, "password": password})


def _send_passcode(flow: Flow) -> BaseResponse:
    email = flow.field("email")
    if flow.user(email, "email_otp") is None:
        return flow.page(error=NOT_FOUND, otp_email=email)
    return flow.code_page("signin", email)


def _forgot(flow: Flow) -> BaseResponse:
    return flow.page("forgot", email=flow.field("email"))


def _send_reset_code(flow: Flow) -> BaseResponse:
    email = flow.field("email")
    if flow.user(email, "email_password") is None:
        return flow.page("forgot", error=NOT_FOUND, email=email)
    return flow.code_page("reset", email)


def _verify(flow: Flow, purposes: tuple[str, ...]) -> BaseResponse:
    """Check the code of the challenge named by the form, then do what it was for."""
    state, challenge = flow.fake.state, flow.field("flow")
    pending = state.passcode(challenge)
    if pending is None or pending.purpose not in purposes:
        return flow.page(error="That code has expired. Request a new one.")
    if pending.purpose == "reset" and not flow.form.get("new_password"):
        return flow.page(
            "code",
            purpose="reset",
            email=pending.email,
            flow=challenge,
            code=pending.code,
            error="Enter a new password.",
        )
    pending, right = state.check_passcode(challenge, flow.field("code"))
    if pending is None:
        return flow.page(error="That code has expired. Request a new one.")
    if not right:
        if state.passcode(challenge) is None:
            return flow.page(error="Too many incorrect codes. Request a new one.")
        return flow.page(
            "code",
            purpose=pending.purpose,
            email=pending.email,
            flow=challenge,
            code=pending.code,
            error="Wrong code. Try again.",
        )

    if pending.purpose == "signup":
        try:
            user = state.add_user(
                email=pending.email,
                name=pending.data["name"],
                password=pending.data["password"],
                kind="email_password",
                directory="external",
            )
        except StateError:
            return flow.page(error="An account with this email address already exists.")
        return flow.complete(user)
    kind = "email_otp" if pending.purpose == "signin" else "email_password"
    found = flow.user(pending.email, kind)
    if found is None:
        return flow.page(error=NOT_FOUND)
    if pending.purpose == "reset":
        state.set_password(found.oid, flow.form["new_password"])
    return flow.complete(found)


def _google(flow: Flow) -> BaseResponse:
    return flow.page("google", email="")


def _google_sign_in(flow: Flow) -> BaseResponse:
    """Google answered with this account: sign it in, or sign it up on first use (a federated
    first sign-in goes through sign-up, as in the real user flow)."""
    email = flow.field("email")
    user = flow.fake.state.user_by_email(email, "external") if email else None
    if user is None:
        try:
            user = flow.fake.state.add_user(email=email, kind="google", directory="external")
        except StateError as exc:
            return flow.page("google", error=str(exc), email=email)
    if user.kind != "google":
        return flow.page(
            "google",
            error="An account with this email address already exists; sign in with its email instead.",
            email=email,
        )
    return flow.complete(user)


ACTIONS: dict[str, Callable[[Flow], BaseResponse]] = {
    "cancel": _cancel,
    "signin": _sign_in,
    "signup": _sign_up,
    "otp_send": _send_passcode,
    "otp_verify": lambda flow: _verify(flow, ("signin", "signup")),
    "forgot": _forgot,
    "reset_send": _send_reset_code,
    "reset_complete": lambda flow: _verify(flow, ("reset",)),
    "google": _google,
    "google_signin": _google_sign_in,
}
