"""photoshare: sign in with Azure AD B2C, upload images to Blob Storage, metadata in PostgreSQL,
each user's email through Microsoft Graph.

Run with `gunicorn -c python:app.gunicorn_conf 'app:create_app()'` (its master applies the
schema before the workers start); `flask --app app routes` needs no service running.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, g, request
from flask.cli import NoAppException
from werkzeug.middleware.proxy_fix import ProxyFix

from app import csrf, errors, logs, telemetry
from app.auth import IdentityClient
from app.db import Database
from app.graph import GraphClient
from app.sessions import ABSOLUTE_LIFETIME_SECONDS, SessionStore
from app.settings import Settings, SettingsError
from app.storage import BlobStore
from app.wsgi import DrainUnreadBody


class InvalidSettings(SettingsError, NoAppException):
    """A SettingsError that Flask's CLI (`flask --app app routes`) prints as a message, not a
    traceback."""

    def __init__(self, message: str) -> None:
        NoAppException.__init__(self, message)


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    blobs: BlobStore | None = None,
    graph: GraphClient | None = None,
    identity: IdentityClient | None = None,
    sessions: SessionStore | None = None,
) -> Flask:
    """Build the app from validated settings (the environment when none are given) and its
    clients (each built from the settings when not given). Nothing connects here: the database
    and the blob container are reached on first use, Graph and B2C on the first call."""
    if settings is None:
        try:
            settings = Settings.from_env()
        except SettingsError as exc:
            raise InvalidSettings(str(exc)) from exc
    logs.configure_logging()
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SECRET_KEY_FALLBACKS=list(settings.secret_key_fallbacks or ()),
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not settings.development,
        SESSION_COOKIE_NAME="__Host-session" if not settings.development else "session",
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=ABSOLUTE_LIFETIME_SECONDS),
        SESSION_REFRESH_EACH_REQUEST=False,  # the session's end is the database's, not the cookie's
        PREFERRED_URL_SCHEME="http" if settings.development else "https",
        WTF_CSRF_TIME_LIMIT=None,  # bound to the session, which expires on its own
    )
    if not settings.development:
        # App Service's front end terminates TLS and is the one hop trusted: it sets
        # X-Forwarded-Proto and appends the client to X-Forwarded-For; it keeps the Host header.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    # Around ProxyFix and the app: answers sent before the body was read still reach the client
    # (app/wsgi.py).
    app.wsgi_app = DrainUnreadBody(  # type: ignore[method-assign]
        app.wsgi_app, limit=2 * settings.max_upload_bytes
    )
    app.extensions["settings"] = settings
    logs.init_app(app)
    telemetry.init_app(app, settings)

    db = db or Database.from_settings(settings)
    db.init_app(app)
    blobs = blobs or BlobStore.from_settings(settings)
    blobs.init_app(app)
    (graph or GraphClient.from_settings(settings.identity)).init_app(app)
    (identity or IdentityClient.from_settings(settings.identity)).init_app(app)
    (sessions or SessionStore(db)).init_app(app)

    csrf.init_app(app)
    errors.init_app(app)

    from app import views

    app.register_blueprint(views.bp)

    @app.context_processor
    def inject_user() -> dict[str, object]:
        return {"current_user": g.get("user")}

    # Sign-out is a form whose answer redirects to the identity provider's end-session
    # endpoint, on the sign-in authority's host; browsers hold form redirects to form-action.
    sign_out_origin = "{0.scheme}://{0.netloc}".format(urlsplit(settings.identity.authorities["sign_in"].url))

    @app.after_request
    def security_headers(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; "
            f"img-src 'self' data: {blobs.origin}; object-src 'none'; base-uri 'none'; "
            f"form-action 'self' {sign_out_origin}; frame-ancestors 'none'"
        )
        if not settings.development:
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if request.endpoint != "static" and (errors.is_api_request() or g.get("user") is not None):
            response.headers["Cache-Control"] = "no-store"  # someone's photos, links, email
        return response

    return app
