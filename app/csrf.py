"""Requests from browsers: every state-changing request comes from the app's own origin and
carries the CSRF token, and every refusal names its real reason.

Checked in this order, each refusal with its own code, in the answer and in the log:
1. signed out: 401 (nothing else matters yet);
2. origin: `Origin`, or `Referer` when a browser sends no `Origin`, must be this site, else 403
   naming the origin; over HTTPS a request with neither header is 400 (browsers always send
   one of them on a POST or DELETE; an API client sends `Origin` itself);
3. token: Flask-WTF's CSRF token (form field `csrf_token` or header `X-CSRFToken`).

Flask-WTF's own HTTPS check wants a same-origin `Referer` on every request, which privacy
settings and API clients strip, so it is off and step 2 replaces it: `Origin` is what the
browser asserts on every cross-site POST (https://developer.mozilla.org/docs/Web/HTTP/Headers/Origin).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, abort, g, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from app.auth import requires_sign_in
from app.errors import error_response

log = logging.getLogger(__name__)

csrf = CSRFProtect()

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# Flask-WTF's reasons (its CSRFError descriptions), each with our code and a sentence for people.
_TOKEN_REFUSALS = {
    "The CSRF token is missing.": (
        "csrf_token_missing",
        "The request carries no security token. Reload the page and try again.",
    ),
    "The CSRF session token is missing.": (
        "csrf_session_missing",
        "Your session has no security token: it ended, or cookies are blocked. "
        "Reload the page and try again.",
    ),
    "The CSRF token has expired.": (
        "csrf_token_expired",
        "The page's security token has expired. Reload the page and try again.",
    ),
    "The CSRF token is invalid.": (
        "csrf_token_invalid",
        "The request's security token is not valid. Reload the page and try again.",
    ),
    "The CSRF tokens do not match.": (
        "csrf_token_invalid",
        "The request's security token belongs to another session. Reload the page and try again.",
    ),
}


class OriginRefused(Exception):
    """A state-changing request from another site, or naming none over HTTPS."""

    def __init__(self, status: int, code: str, message: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.message, self.detail = status, code, message, detail


def _origin_of(url: str) -> str:
    """`scheme://host[:port]`, lower-case, default ports dropped: how origins compare."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.hostname:
        return url.strip().lower()
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    try:
        port = parts.port
    except ValueError:
        return url.strip().lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    suffix = f":{port}" if port and port != default else ""
    return f"{parts.scheme.lower()}://{host}{suffix}"


def check_origin() -> None:
    """Raise OriginRefused unless this unsafe request comes from this site."""
    if request.method in SAFE_METHODS:
        return
    own = _origin_of(request.host_url)
    origin = request.headers.get("Origin")
    header = "Origin"
    if origin is None:
        referer = request.headers.get("Referer")
        if referer:
            origin, header = _origin_of(referer), "Referer"
    if origin is None:
        if request.is_secure:
            raise OriginRefused(
                400,
                "origin_missing",
                "The request names no origin (neither an Origin nor a Referer header); browsers send "
                "one. Reload the page and try again; an API client must send Origin.",
                "no Origin and no Referer header",
            )
        return  # plain HTTP (development): the token alone decides
    shown = origin[:200]
    if _origin_of(origin) != own:
        raise OriginRefused(
            403,
            "cross_origin",
            f"This request came from another site ({shown}), not from this one.",
            f"{header} {shown!r} is not {own}",
        )


def init_app(app: Flask) -> None:
    """Register the checks in their order (before_request functions run as registered)."""
    app.config["WTF_CSRF_SSL_STRICT"] = False  # the origin check replaces its Referer rule

    @app.before_request
    def signed_out_writes_are_401() -> None:
        if request.method not in SAFE_METHODS and g.user is None and requires_sign_in(request.endpoint):
            abort(401)

    app.before_request(check_origin)
    csrf.init_app(app)

    @app.errorhandler(OriginRefused)
    def origin_refused(exc: OriginRefused) -> Any:
        log.warning(
            "refused %s %s from %s: %s (%s)",
            request.method,
            request.path,
            request.remote_addr,
            exc.code,
            exc.detail,
        )
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(CSRFError)
    def token_refused(exc: CSRFError) -> Any:
        reason = exc.description or ""
        code, message = _TOKEN_REFUSALS.get(
            reason, ("csrf_failed", "The request's security check failed. Reload the page and try again.")
        )
        log.warning("refused %s %s: %s (%s)", request.method, request.path, code, reason)
        return error_response(400, code, message)
