"""Mutable state of one fake identity server: users, sign-in codes, one-time passcodes, the
registered redirect URIs, the signing keys, failure knobs and call counters, shared by both
listeners (the main one and the ciamlogin.com one).

The server (cheroot) serves requests on a pool of threads, so every access goes through one lock.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from .tokens import KeyRing

DIRECTORIES = ("b2c", "external")
USER_KINDS = ("local_with_emails_claim", "local", "social")  # the B2C directory's
EXTERNAL_USER_KINDS = ("email_password", "email_otp", "google")  # the external tenant's
KINDS_BY_DIRECTORY = {"b2c": USER_KINDS, "external": EXTERNAL_USER_KINDS}
# Kinds that sign in with a password on the page (B2C's social users too, in this fake).
PASSWORD_KINDS = {"local_with_emails_claim", "local", "social", "email_password"}
LOCAL_ACCOUNT_KINDS = {"local_with_emails_claim", "local", "email_password"}  # Graph creationType
SOCIAL_IDP = "google.com"  # where "social"/"google" users sign in: the idp claim, Graph's issuer
ID_TOKEN_DEFECTS = (
    "wrong_aud",
    "wrong_iss",
    "expired",
    "bad_signature",
    "alg_none",
    "wrong_nonce",
    "wrong_tid",
    "wrong_policy",
)
# A defect that only one platform's tokens can carry waits for that platform's next ID token:
# a B2C ID token has no `tid`, an External ID one no `tfp` (its user flows are not authorities).
PLATFORM_DEFECTS = {"wrong_tid": "external", "wrong_policy": "b2c"}
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
    "external_metadata",
    "external_jwks",
    "external_authorize",
    "external_authorize_submit",
    "external_token",
    "external_logout",
)
DEFAULT_ROLES = ["User.Read.All"]
# A client secret made in the portal defaults to 180 days (Entra admin center → App
# registrations → Certificates & secrets → New client secret, "Recommended: 180 days").
DEFAULT_SECRET_DAYS = 180
AUTH_CODE_LIFETIME = 600
PASSCODE_LIFETIME = 600
PASSCODE_ATTEMPTS = 3


class StateError(ValueError):
    """A control-API request that cannot be honoured (bad knob, duplicate user...)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _google_subject() -> str:
    """An opaque Google account id, the 21-digit number Google's `sub` claim carries."""
    return str(secrets.randbelow(9 * 10**20) + 10**20)


@dataclass
class FakeUser:
    """A user of the B2C directory or of the external tenant, as the sign-in pages and Graph see it."""

    oid: str
    email: str
    name: str
    kind: str
    directory: str = "b2c"
    password: str | None = None
    mail: str | None = None  # explicit Graph `mail`; local and passcode accounts have none
    social_id: str = field(default_factory=_google_subject)
    # The local part of an external user's userPrincipalName: a GUID of its own, not the oid.
    upn_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    @property
    def emails_claim(self) -> bool:
        return self.kind == "local_with_emails_claim"

    @property
    def is_social(self) -> bool:
        return self.kind in ("social", "google")

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
            "directory": self.directory,
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
    tenant_id: str = ""  # the external tenant for External ID codes; B2C codes name a policy
    issued_at: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Passcode:
    """A one-time passcode "sent" to `email` (the page shows it: the fake's inbox).

    `purpose` is what verifying it completes: `signin` (email one-time passcode), `signup`
    (verifying the address of a new account; `data` holds its name and password) or `reset`
    (the in-flow password reset).
    """

    purpose: str
    email: str
    code: str
    data: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    issued_at: float = field(default_factory=time.time)


def _default_knobs(email_claim: bool = False) -> dict[str, Any]:
    return {
        "graph_throttle": None,
        "graph_fail": None,
        "token_endpoint_down": False,
        "secret_expired": False,
        "roles": list(DEFAULT_ROLES),
        "next_id_token": None,
        "email_claim": email_claim,
        "opaque_access_token": False,
        "secret_end_date_time": None,
        # Actions rather than settings: applied when set, then read back as false.
        "rotate_signing_key": False,
        "retire_old_signing_keys": False,
    }


KEY_ACTIONS = ("rotate_signing_key", "retire_old_signing_keys")


def is_http_url(uri: str) -> bool:
    """An absolute http(s) URL, the only kind of redirect URI the fake registers or trusts."""
    parsed = urlsplit(uri)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


class FakeState:
    """Users, one-time codes, redirect URIs, knobs and counters behind a single lock; the
    signing keys (`keys`) keep a lock of their own."""

    def __init__(self, *, email_claim: bool = False, redirect_uris: list[str] | None = None) -> None:
        self._lock = threading.RLock()
        self.keys = KeyRing()
        self._redirect_uris: list[str] = []
        self._opaque_tokens: dict[str, dict[str, Any]] = {}
        self._users: dict[str, FakeUser] = {}
        self._codes: dict[str, AuthCode] = {}
        self._burnt: set[str] = set()
        self._passcodes: dict[str, Passcode] = {}
        self._email_claim_default = email_claim
        self._knobs = _default_knobs(email_claim)
        self._counters: Counter[str] = Counter({name: 0 for name in COUNTER_NAMES})
        # Both registrations' client secrets were created when the server started.
        self._secret_created = datetime.now(UTC).replace(microsecond=0)
        self._secret_expired_at: datetime | None = None
        self.register_redirect_uris(redirect_uris or [])

    # --- app registrations -----------------------------------------------------------------
    def register_redirect_uris(self, uris: list[str]) -> list[str]:
        """Add redirect URIs to both registrations (they are also the External ID sign-out URIs);
        returns all of them. Until one is registered, any http(s) URL is accepted."""
        if not isinstance(uris, list) or not all(isinstance(u, str) and is_http_url(u) for u in uris):
            raise StateError("redirect URIs must be a list of absolute http(s) URLs")
        with self._lock:
            self._redirect_uris.extend(u for u in dict.fromkeys(uris) if u not in self._redirect_uris)
            return list(self._redirect_uris)

    def redirect_uris(self) -> list[str]:
        with self._lock:
            return list(self._redirect_uris)

    def redirect_uri_registered(self, uri: str) -> bool:
        """An http(s) URL that is registered (any such URL while none is)."""
        if not is_http_url(uri):
            return False
        with self._lock:
            return not self._redirect_uris or uri in self._redirect_uris

    def secret_lifetime(self) -> tuple[datetime, datetime]:
        """(startDateTime, endDateTime) of the registrations' client secret: the
        `secret_end_date_time` knob or DEFAULT_SECRET_DAYS after start; with `secret_expired`,
        the moment that knob was set, as the token endpoints then refuse the secret."""
        with self._lock:
            start = self._secret_created
            if self._knobs["secret_expired"] and self._secret_expired_at is not None:
                return start, self._secret_expired_at
            end = self._knobs["secret_end_date_time"]
            return start, _parse_time(end) if end else start + timedelta(days=DEFAULT_SECRET_DAYS)

    # --- opaque access tokens --------------------------------------------------------------
    def issue_opaque_token(self, claims: dict[str, Any]) -> str:
        """A random access token that only this server can resolve back to `claims`."""
        token = secrets.token_urlsafe(64)
        with self._lock:
            self._opaque_tokens[token] = dict(claims)
        return token

    def opaque_token_claims(self, token: str) -> dict[str, Any] | None:
        with self._lock:
            claims = self._opaque_tokens.get(token)
        return dict(claims) if claims is not None else None

    # --- users -----------------------------------------------------------------------------
    def add_user(
        self,
        *,
        email: str,
        name: str | None = None,
        password: str | None = None,
        kind: str | None = None,
        mail: str | None = None,
        oid: str | None = None,
        directory: str = "b2c",
    ) -> FakeUser:
        """Add a user to `directory`; `kind` defaults to the directory's first kind."""
        email = (email or "").strip()
        if "@" not in email:
            raise StateError(f"email must be an email address, got {email!r}")
        if directory not in KINDS_BY_DIRECTORY:
            raise StateError(f"directory must be one of {list(DIRECTORIES)}, got {directory!r}")
        kinds = KINDS_BY_DIRECTORY[directory]
        kind = kind or kinds[0]
        if kind not in kinds:
            raise StateError(f"kind must be one of {list(kinds)} in directory {directory!r}, got {kind!r}")
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
            directory=directory,
            password=password,
            mail=mail,
        )
        with self._lock:
            if self._find_by_email(email, directory) is not None:
                raise StateError(
                    f"a user with email {email!r} already exists in directory {directory!r}", status=409
                )
            if user.oid in self._users:
                raise StateError(f"a user with oid {user.oid!r} already exists", status=409)
            self._users[user.oid] = user
        return user

    def _find_by_email(self, email: str, directory: str) -> FakeUser | None:
        wanted = email.strip().lower()
        return next(
            (u for u in self._users.values() if u.directory == directory and u.email.lower() == wanted),
            None,
        )

    def user_by_email(self, email: str, directory: str = "b2c") -> FakeUser | None:
        with self._lock:
            return self._find_by_email(email, directory)

    def user_by_oid(self, oid: str) -> FakeUser | None:
        with self._lock:
            return self._users.get(oid.lower())

    def users(self, directory: str | None = None) -> list[FakeUser]:
        """All users, or those of one directory, in creation order."""
        with self._lock:
            return [u for u in self._users.values() if directory in (None, u.directory)]

    def set_password(self, oid: str, password: str) -> None:
        with self._lock:
            self._users[oid].password = password

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
            if grant is not None:
                self._burnt.add(code)
        if grant is None or time.time() - grant.issued_at > AUTH_CODE_LIFETIME:
            return None
        return grant

    def was_redeemed(self, code: str) -> bool:
        """Whether `code` was issued and has been redeemed (Entra tells replays apart)."""
        with self._lock:
            return code in self._burnt

    # --- one-time passcodes ----------------------------------------------------------------
    def issue_passcode(self, purpose: str, email: str, data: dict[str, str] | None = None) -> tuple[str, str]:
        """Start a passcode challenge; returns (flow id for the page's form, the 8-digit code)."""
        flow, code = secrets.token_urlsafe(24), f"{secrets.randbelow(10**8):08d}"
        with self._lock:
            self._passcodes[flow] = Passcode(purpose=purpose, email=email, code=code, data=dict(data or {}))
        return flow, code

    def passcode(self, flow: str) -> Passcode | None:
        """The pending challenge `flow`, or None once it is used up, failed or expired."""
        with self._lock:
            pending = self._passcodes.get(flow)
            if pending is not None and time.time() - pending.issued_at > PASSCODE_LIFETIME:
                del self._passcodes[flow]
                pending = None
            return pending

    def check_passcode(self, flow: str, code: str) -> tuple[Passcode | None, bool]:
        """(challenge, whether `code` is right). A right code uses the challenge up; so do
        PASSCODE_ATTEMPTS wrong ones."""
        with self._lock:
            pending = self.passcode(flow)
            if pending is None:
                return None, False
            if hmac.compare_digest(pending.code.encode(), code.strip().encode()):
                del self._passcodes[flow]
                return pending, True
            pending.attempts += 1
            if pending.attempts >= PASSCODE_ATTEMPTS:
                del self._passcodes[flow]
            return pending, False

    # --- knobs -----------------------------------------------------------------------------
    def knobs(self) -> dict[str, Any]:
        with self._lock:
            return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self._knobs.items()}

    def set_knobs(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Validate every change first, then apply them all, so a bad request changes nothing."""
        validated = {key: _validate_knob(key, value) for key, value in changes.items()}
        with self._lock:
            if validated.get("secret_expired") and not self._knobs["secret_expired"]:
                self._secret_expired_at = datetime.now(UTC).replace(microsecond=0)
            self._knobs.update({k: v for k, v in validated.items() if k not in KEY_ACTIONS})
            if validated.get("rotate_signing_key"):
                self.keys.rotate()
            if validated.get("retire_old_signing_keys"):
                self.keys.retire_old()
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

    def take_id_token_defect(self, platform: str = "b2c") -> str | None:
        """Consume the pending defect for the next ID token of `platform` (`b2c`/`external`)."""
        with self._lock:
            defect = self._knobs["next_id_token"]
            if PLATFORM_DEFECTS.get(defect, platform) != platform:
                return None
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
        """Back to default knobs and zero counters, the keys before the current one retired;
        users and redirect URIs stay (they are test fixtures)."""
        with self._lock:
            self.keys.retire_old()
            self._knobs = _default_knobs(self._email_claim_default)
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
    if key in ("secret_expired", "email_claim", "opaque_access_token", *KEY_ACTIONS):
        if not isinstance(value, bool):
            raise StateError(f"{key} must be true or false")
        return value
    if key == "roles":
        if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
            raise StateError("roles must be a list of strings, e.g. ['User.Read.All']")
        return list(value)
    if key == "secret_end_date_time":
        return _future_time(key, value)
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


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _future_time(key: str, value: Any) -> str | None:
    """An RFC 3339 time with a zone, still ahead (a lapsed secret is `secret_expired`, which the
    token endpoints honour), normalized to Graph's `…Z` form; null for the default."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise StateError(f"{key} must be an RFC 3339 time with a zone, e.g. 2030-01-01T00:00:00Z, or null")
    if moment <= datetime.now(UTC):
        raise StateError(f"{key} must lie ahead; for a lapsed secret set secret_expired: true")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _non_negative_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise StateError(f"{name} must be a non-negative integer, got {value!r}")
    return value
