"""Every error as `{"error": code, "message": text}` for the API and for clients that ask for
JSON, a page for browsers: a title saying what happened and a way on, never a code.

Never a stack trace; a dependency that is down is a 503 naming it, not a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from app.graph import GraphError
from app.images import InvalidImage
from app.service_errors import ConfigurationError, ServiceUnavailable

log = logging.getLogger(__name__)

# Always JSON: the API, and what probes and scripts call. Everything else (a photo's link, the
# upload form, sign-in) answers browsers with pages and JSON to clients that rank it first.
API_PREFIXES = ("/api/", "/get-user-email/", "/readyz", "/healthz")

_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "unavailable",
}


# What a page says happened, by status, and what to do next.
_PAGES = {
    400: ("That did not work", "Go back, reload the page and try again."),
    401: ("Please sign in", "Sign in, then try again."),
    403: ("Not allowed", "Go back to your photos and try again from there."),
    404: ("Not found", "Check the link, or go back to your photos."),
    405: ("Not available here", "Go back to your photos."),
    413: ("That upload is too large", "Choose fewer or smaller files and try again."),
    415: ("That file is not an image we accept", "Choose JPEG, PNG, GIF or WebP images."),
    429: ("Too many requests", "Wait a moment, then try again."),
    500: ("Something went wrong", "Try again in a moment; if it keeps happening, tell the site's team."),
    503: ("Temporarily unavailable", "Try again in a moment."),
}


def is_api_request() -> bool:
    """Whether this request gets JSON (answers and errors) rather than pages: decided here only.

    The API's routes do; any other request does when its Accept header ranks JSON first (JSON
    on a tie, so `*/*` from curl or a script gets JSON), so a browser that opens a photo's link
    or posts the upload form gets pages.
    """
    return request.path.startswith(API_PREFIXES) or not _prefers_html()


def _prefers_html() -> bool:
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def error_response(status: int, code: str, message: str, **extra: Any) -> Any:
    if is_api_request():
        response = jsonify({"error": code, "message": message, **extra})
        response.status_code = status
        return response
    title, next_step = _PAGES.get(status, _PAGES[500] if status >= 500 else _PAGES[400])
    page = render_template(
        "error.html", title=title, message=message, next_step=next_step, sign_in=status == 401
    )
    return page, status


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if status == 401 and request.method == "GET" and not is_api_request():
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if status == 401:
            return error_response(401, "unauthenticated", "Sign in first.")
        if status == 413:
            limit = app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)
            return error_response(413, "too_large", f"The upload is larger than {limit} MB.")
        message = exc.description or "Request refused."
        return error_response(status, _CODES.get(status, "http_error"), message)

    @app.errorhandler(InvalidImage)
    def invalid_image(exc: InvalidImage) -> Any:
        return error_response(415 if exc.code == "unsupported_type" else 400, exc.code, exc.message)

    @app.errorhandler(GraphError)
    def graph_error(exc: GraphError) -> Any:
        log.warning("graph: %s: %s", exc.code, exc.detail)
        response = error_response(exc.status, exc.code, exc.message)
        if exc.retry_after and not isinstance(response, tuple):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(ServiceUnavailable)
    def service_down(exc: ServiceUnavailable) -> Any:
        """database_unavailable, storage_unavailable: an outage, worth a retry."""
        log.error("service unavailable: %s", exc)
        return error_response(503, exc.code, exc.message)

    @app.errorhandler(ConfigurationError)
    def misconfigured(exc: ConfigurationError) -> Any:
        """A role, key or grant to fix (storage_forbidden, database_role_missing, …): not an outage."""
        log.error("configuration error: %s", exc)
        return error_response(503, exc.code, exc.message)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side.")
