"""Test control API under /_fake/: seed users, flip failure knobs, read call counters.

It lives on the same origins as the fake Microsoft endpoints (both listeners serve it, over the
same state) because this server is never deployed; production code must never call it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from .context import current
from .state import StateError

bp = Blueprint("fake_control", __name__, url_prefix="/_fake")

USER_FIELDS = {"email", "password", "name", "kind", "mail", "oid", "directory"}


@bp.errorhandler(StateError)
def _state_error(exc: StateError) -> tuple[Response, int]:
    return jsonify({"error": str(exc)}), exc.status


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise StateError("send a JSON object with Content-Type: application/json")
    return body


@bp.get("/health")
def health() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/users")
def list_users() -> Response:
    """All users, or one directory's with `?directory=b2c|external`."""
    directory = request.args.get("directory")
    return jsonify([user.public() for user in current().state.users(directory)])


@bp.post("/users")
def add_user() -> tuple[Response, int]:
    body = _json_object()
    unknown = set(body) - USER_FIELDS
    if unknown:
        raise StateError(f"unknown user fields {sorted(unknown)}; known: {sorted(USER_FIELDS)}")
    wrong_type = sorted(k for k, v in body.items() if v is not None and not isinstance(v, str))
    if wrong_type:
        raise StateError(f"user fields must be strings: {wrong_type}")
    user = current().state.add_user(**body)
    return jsonify(user.public()), 201


@bp.get("/redirect_uris")
def get_redirect_uris() -> Response:
    return jsonify(current().state.redirect_uris())


@bp.post("/redirect_uris")
def register_redirect_uris() -> Response:
    """Add `{"uris": [...]}` to the app registrations' redirect URIs (both registrations)."""
    body = _json_object()
    if set(body) != {"uris"}:
        raise StateError('send {"uris": ["https://app.example/auth/callback", ...]}')
    return jsonify(current().state.register_redirect_uris(body["uris"]))


@bp.get("/signing_keys")
def signing_keys() -> Response:
    """The kids of the published signing keys, the current (signing) one first."""
    return jsonify(list(reversed(current().key.kids)))


@bp.get("/knobs")
def get_knobs() -> Response:
    return jsonify(current().state.knobs())


@bp.post("/knobs")
def set_knobs() -> Response:
    return jsonify(current().state.set_knobs(_json_object()))


@bp.post("/reset")
def reset() -> Response:
    state = current().state
    state.reset()
    return jsonify({"knobs": state.knobs(), "counters": state.counters()})


@bp.get("/counters")
def counters() -> Response:
    return jsonify(current().state.counters())
