"""Mutable state of one fake identity server: users, sign-in codes, failure knobs and call counters.

Werkzeug serves each request on its own thread, so every access goes through one lock.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

USER_KINDS = ("local_with_emails_claim", "local", "social")
SOCIAL_IDP = "google.com"  # where "social" users sign in: the ID token's idp, Graph's identity issuer
ID_TOKEN_DEFECTS = (
    "wrong_aud",
    "wrong_iss",
    "expired",
    "bad_signature",
    "alg_none",
    "wrong_nonce",
)
# Every counter exists from the start so tests can assert "0 calls" without .get().
COUNTER_NAMES = (
    "metadata",
    "jwks",
    "authorize",
    "authorize_submit",
    "b2c_token",
    "logout",
    "client_credentials_token",
    "graph",
)
DEFAULT_ROLES = ["User.Read.All"]
AUTH_CODE_LIFETIME = 600


class StateError(ValueError):
    """A control-API request that cannot be honoured (bad knob, duplicate user...)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class FakeUser:
    """A B2C directory user, as the user flows and Graph see it."""

    oid: str
    email: str
    name: str
    kind: str
    password: str | None = None
    mail: str | None = None  # explicit Graph `mail`; B2C local accounts have none
    social_id: str = field(default_factory=lambda: secrets.token_hex(10))
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    @property
    def emails_claim(self) -> bool:
        return self.kind == "local_with_emails_claim"

    @property
    def is_social(self) -> bool:
        return self.kind == "social"

    def check_password(self, password: str) -> bool:
        if self.password is None:
            return False
        return hmac.compare_digest(self.password.encode(), password.encode())

    def public(self) -> dict[str, Any]:
        """The control API's view: everything except the password."""
        return {
            "oid": self.oid,
            "email": self.email,
            "name": self.name,
            "kind": self.kind,
            "mail": self.mail,
            "created": self.created,
        }


@dataclass
class AuthCode:
    """What an authorization code stands for, checked again when it is redeemed."""

    user_oid: str
    client_id: str
    redirect_uri: str
    policy: str
    scope: str
    nonce: str | None
    code_challenge: str | None  # S256
    auth_time: int
    issued_at: int = field(default_factory=lambda: int(time.time()))


def _default_knobs() -> dict[str, Any]:
    return {
        "graph_throttle": None,
        "graph_fail": None,
        "token_endpoint_down": False,
        "secret_expired": False,
        "roles": list(DEFAULT_ROLES),
        "next_id_token": None,
    }


class FakeState:
    """Users, one-time codes, knobs and counters behind a single lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._users: dict[str, FakeUser] = {}
        self._codes: dict[str, AuthCode] = {}
        self._knobs = _default_knobs()
        self._counters: Counter[str] = Counter({name: 0 for name in COUNTER_NAMES})

    # --- users -----------------------------------------------------------------------------
    def add_user(
        self,
        *,
        email: str,
        name: str | None = None,
        password: str | None = None,
        kind: str = "local_with_emails_claim",
        mail: str | None = None,
        oid: str | None = None,
    ) -> FakeUser:
        email = (email or "").strip()
        if "@" not in email:
            raise StateError(f"email must be an email address, got {email!r}")
        if kind not in USER_KINDS:
            raise StateError(f"kind must be one of {list(USER_KINDS)}, got {kind!r}")
        if oid is not None:
            try:
                oid = str(uuid.UUID(oid))
            except ValueError as exc:
                raise StateError(f"oid must be a GUID, got {oid!r}") from exc
        user = FakeUser(
            oid=oid or str(uuid.uuid4()),
            email=email,
            name=(name or email.split("@")[0]).strip(),
            kind=kind,
            password=password,
            mail=mail,
        )
        with self._lock:
            if self._find_by_email(email) is not None:
                raise StateError(f"a user with email {email!r} already exists", status=409)
            if user.oid in self._users:
                raise StateError(f"a user with oid {user.oid!r} already exists", status=409)
            self._users[user.oid] = user
        return user

    def _find_by_email(self, email: str) -> FakeUser | None:
        wanted = email.strip().lower()
        return next((u for u in self._users.values() if u.email.lower() == wanted), None)

    def user_by_email(self, email: str) -> FakeUser | None:
        with self._lock:
            return self._find_by_email(email)

    def user_by_oid(self, oid: str) -> FakeUser | None:
        with self._lock:
            return self._users.get(oid.lower())

    def users(self) -> list[FakeUser]:
        with self._lock:
            return list(self._users.values())

    # --- codes -----------------------------------------------------------------------------
    def issue_code(self, grant: AuthCode) -> str:
        code = secrets.token_urlsafe(48)
        with self._lock:
            self._codes[code] = grant
        return code

    def redeem_code(self, code: str) -> AuthCode | None:
        """Consume a code: the first redemption attempt burns it, as with the real service."""
        with self._lock:
            grant = self._codes.pop(code, None)
        if grant is None or time.time() - grant.issued_at > AUTH_CODE_LIFETIME:
            return None
        return grant

    # --- knobs -----------------------------------------------------------------------------
    def knobs(self) -> dict[str, Any]:
        with self._lock:
            return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self._knobs.items()}

    def set_knobs(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Validate every change first, then apply them all, so a bad request changes nothing."""
        validated = {key: _validate_knob(key, value) for key, value in changes.items()}
        with self._lock:
            self._knobs.update(validated)
        return self.knobs()

    def knob(self, name: str) -> Any:
        with self._lock:
            return self._knobs[name]

    def take_graph_failure(self) -> dict[str, Any] | None:
        """Consume one scheduled Graph failure (throttling first), if any is pending."""
        with self._lock:
            for name in ("graph_throttle", "graph_fail"):
                plan = self._knobs[name]
                if plan and plan["count"] > 0:
                    plan["count"] -= 1
                    taken = dict(plan, kind=name)
                    if plan["count"] == 0:
                        self._knobs[name] = None
                    return taken
        return None

    def take_id_token_defect(self) -> str | None:
        with self._lock:
            defect = self._knobs["next_id_token"]
            self._knobs["next_id_token"] = None
            return defect

    # --- counters --------------------------------------------------------------------------
    def count(self, name: str) -> None:
        with self._lock:
            self._counters[name] += 1

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def reset(self) -> None:
        """Back to default knobs and zero counters; users stay (they are test fixtures)."""
        with self._lock:
            self._knobs = _default_knobs()
            self._counters = Counter({name: 0 for name in COUNTER_NAMES})


def _validate_knob(key: str, value: Any) -> Any:
    if key == "graph_throttle":
        return _failure_plan(key, value, default_status=429, allowed=(429, 503), retry=True)
    if key == "graph_fail":
        return _failure_plan(key, value, default_status=500, allowed=None, retry=False)
    if key == "token_endpoint_down":
        if isinstance(value, bool):
            return value
        if isinstance(value, dict) and set(value) <= {"retry_after"}:
            return {"retry_after": _non_negative_int(key, value.get("retry_after", 0))}
        raise StateError(f"{key} must be true/false or {{'retry_after': seconds}}")
    if key == "secret_expired":
        if not isinstance(value, bool):
            raise StateError(f"{key} must be true or false")
        return value
    if key == "roles":
        if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
            raise StateError("roles must be a list of strings, e.g. ['User.Read.All']")
        return list(value)
    if key == "next_id_token":
        if value is not None and value not in ID_TOKEN_DEFECTS:
            raise StateError(f"next_id_token must be one of {list(ID_TOKEN_DEFECTS)} or null")
        return value
    raise StateError(f"unknown knob {key!r}; known: {sorted(_default_knobs())}")


def _failure_plan(
    key: str, value: Any, *, default_status: int, allowed: tuple[int, ...] | None, retry: bool
) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise StateError(f"{key} must be an object like {{'count': 2, 'status': {default_status}}}")
    extra = set(value) - {"count", "status", "retry_after"}
    if extra:
        raise StateError(f"{key} has unknown fields {sorted(extra)}")
    status = value.get("status", default_status)
    if not isinstance(status, int) or status < 400 or (allowed and status not in allowed):
        expected = f"one of {list(allowed)}" if allowed else "an HTTP error status"
        raise StateError(f"{key}.status must be {expected}, got {status!r}")
    plan: dict[str, Any] = {"count": _non_negative_int(f"{key}.count", value.get("count", 1))}
    plan["status"] = status
    if retry or "retry_after" in value:
        plan["retry_after"] = _non_negative_int(f"{key}.retry_after", value.get("retry_after", 1))
    return plan if plan["count"] > 0 else None


def _non_negative_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise StateError(f"{name} must be a non-negative integer, got {value!r}")
    return value
