"""`photoshare doctor`'s checks: diagnose a B2C and Graph configuration before it fails.

The source article's mistake (the Graph token asked from the company's main tenant instead of
the B2C directory) only surfaces when a user without an `emails` claim signs in. The doctor
walks the app's own clients in order (`IdentityClient` for the user flows' metadata, `GraphClient`
for the token, the users and the app's own client secret) and says for each step what is wrong
and the fix, from the same catalogue the app logs from (app/identity_errors.py). Rendering:
app/doctor_report.py; command-line arguments: app/cli.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import jwt
import requests
from msal.exceptions import MsalServiceError

from app.auth import IdentityClient, issuer_tenant
from app.graph import GraphClient, GraphError, TokenError, pick_email_with_source
from app.identity_errors import Diagnosis, grant_permission
from app.settings import EXTERNAL_DIRECTORY, SETTINGS, IdentitySettings, SettingsError, is_guid

# What the doctor validates: the identity part of the settings contract, and APP_ENV.
IDENTITY_SETTINGS = tuple(s.name for s in SETTINGS if s.section == "identity" or s.name == "APP_ENV")
READ_USERS_ROLES = ("User.Read.All", "Directory.Read.All", "User.ReadWrite.All", "Directory.ReadWrite.All")
# Reading the app's own application object takes Application.Read.All (least privileged) or a
# broader one (learn.microsoft.com/graph/api/application-get); User.Read.All does not reach it.
READ_APPLICATION_ROLE = "Application.Read.All"
READ_APPLICATION_ROLES = (
    READ_APPLICATION_ROLE,
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)
SECRET_WARNING = timedelta(days=30)  # a secret lapsing sooner than this is a warning
NEVER = datetime.max.replace(tzinfo=UTC)  # the end of a secret without an endDateTime

TITLES = {
    "settings": "settings",
    "user_flows": "sign-in metadata",
    "token": "app-only token",
    "token_claims": "token tenant and roles",
    "graph": "Graph users",
    "secret_expiry": "client secret expiry",
    "user": "user email",
}
# The check each one builds on: when that failed (or was skipped), this one is skipped.
_NEEDS: dict[str, str | None] = {
    "settings": None,
    "user_flows": "settings",
    "token": "settings",
    "token_claims": "token",
    "graph": "token_claims",
    "secret_expiry": "token",
    "user": "graph",
}


@dataclass(frozen=True)
class CheckResult:
    """One line of the report; `ok` is None when the check was skipped; `warning` marks a check
    that passed but will fail unless acted on (its `fix` says how)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""
    warning: bool = False

    @classmethod
    def failed(cls, name: str, diagnosis: Diagnosis) -> CheckResult:
        return cls(name, False, diagnosis.cause, diagnosis.fix)


class Doctor:
    """Runs the checks in order; a check whose prerequisite failed is reported as skipped."""

    def __init__(
        self,
        *,
        environ: Mapping[str, str],
        user: str | None = None,
        timeout: float = 10.0,
        max_retry_after: int = 5,
    ) -> None:
        self._environ = environ
        self.user = user
        self.timeout = timeout
        self.max_retry_after = max_retry_after
        self.settings: IdentitySettings | None = None
        self.identity: IdentityClient | None = None
        self.graph: GraphClient | None = None
        self.claims: dict[str, Any] | None = None  # None: the access token is not a JWT
        self._users_page: dict[str, Any] | GraphError | None = None  # one Graph call, two checks
        self.issuer_tenant: str | None = None  # set when the user flows name another tenant

    def run(self) -> list[CheckResult]:
        checks: dict[str, Callable[[], CheckResult]] = {
            "settings": self.check_settings,
            "user_flows": self.check_user_flows,
            "token": self.check_token,
            "token_claims": self.check_token_claims,
            "graph": self.check_graph,
            "secret_expiry": self.check_secret_expiry,
        }
        if self.user is not None:
            checks["user"] = self.check_user
        results: dict[str, CheckResult] = {}
        for name, check in checks.items():
            blocker = _NEEDS[name]  # walk back to the failure that makes this check pointless
            while blocker is not None and results[blocker].ok is not False:
                blocker = _NEEDS[blocker]
            if blocker is None:
                results[name] = check()
            else:
                results[name] = CheckResult(name, None, f"skipped: check {TITLES[blocker]!r} failed")
        return list(results.values())

    # 1 ----------------------------------------------------------------------------------------
    def check_settings(self) -> CheckResult:
        try:
            s = self.settings = IdentitySettings.from_env(self._environ)
        except SettingsError as exc:
            return CheckResult(
                "settings",
                False,
                "\n".join(exc.problems),
                "correct these in the environment or .env (see .env.sample), or with the matching "
                "flag (photoshare doctor --help)",
            )
        self.identity = IdentityClient.from_settings(s, timeout=self.timeout)
        self.graph = GraphClient.from_settings(s, timeout=self.timeout, max_retry_after=self.max_retry_after)
        kind = "external tenant" if s.external_id else "B2C tenant"
        name = s.external_subdomain if s.external_id else s.b2c_tenant_name
        return CheckResult("settings", True, f"{kind} {name} ({s.tenant_id}), app {s.client_id}, secret set")

    # 2 ----------------------------------------------------------------------------------------
    def check_user_flows(self) -> CheckResult:
        """Each authority's metadata answers and its issuer names the configured tenant."""
        s, identity = self._settings(), self._identity()
        for name, authority in identity.authorities.items():
            url = authority.metadata_url
            what = "the External ID authority" if s.external_id else f"user flow {authority.name}"
            try:
                issuer = str(identity.metadata(name)["issuer"])
            except requests.HTTPError as exc:
                mistake = identity.wrong_tenant(name)  # a wrong tenant id: found by the tenant's name
                if mistake is not None:
                    self.issuer_tenant = mistake.facts["issuer_tenant"]
                    return CheckResult.failed("user_flows", mistake)
                return CheckResult(
                    "user_flows",
                    False,
                    f"{what} of tenant {s.tenant_label} answered {exc.response.status_code} at "
                    f"{url}{_error_description(exc.response)}",
                    _missing_authority_fix(s, name),
                )
            except requests.RequestException as exc:
                return CheckResult(
                    "user_flows",
                    False,
                    f"cannot reach the sign-in metadata at {url} ({_network_reason(exc)})",
                    _reach_fix(exc, _authority_setting(s)),
                )
            except (ValueError, KeyError, TypeError):
                return CheckResult(
                    "user_flows",
                    False,
                    f"{url} did not return OpenID metadata with an issuer",
                    f"check {_authority_setting(s)}: it must serve the tenant's sign-in",
                )
            named = issuer_tenant(issuer)
            if named is None:
                return CheckResult(
                    "user_flows",
                    False,
                    f"{what}'s issuer {issuer} names no tenant id",
                    f"check {_authority_setting(s)}: it must serve the tenant's sign-in",
                )
            if named != s.tenant_id:
                self.issuer_tenant = named  # the right directory's id: later fixes name it
                diagnosis = self._graph().diagnose(
                    "issuer_tenant", source=what, issuer_tenant=named, known_tenant=named
                )
                return CheckResult.failed("user_flows", diagnosis)
        flows = ", ".join(a.name for a in identity.authorities.values())
        where = identity.authorities["sign_in"].url if s.external_id else f"tenant {s.tenant_label}"
        return CheckResult(
            "user_flows",
            True,
            f"{flows} answer{'s' if s.external_id else ''} at {where}; the issuer names tenant {s.tenant_id}",
        )

    # 3 ----------------------------------------------------------------------------------------
    def check_token(self) -> CheckResult:
        s, graph = self._settings(), self._graph()
        try:
            result = graph.token()
        except TokenError as exc:
            return self._token_failure("token", exc)
        self.claims = _jwt_claims(result["access_token"])
        return CheckResult("token", True, f"acquired from {s.graph_authority} for {s.graph_scope}")

    def _token_failure(self, name: str, exc: TokenError) -> CheckResult:
        """The catalogue's diagnosis; for an unreachable endpoint, the network's reason."""
        graph = self._graph()
        cause = exc.__context__  # GraphClient raises `from None`; the cause is still kept here
        if exc.code == "token_endpoint_unavailable" and not isinstance(cause, MsalServiceError):
            reason = _network_reason(cause) if isinstance(cause, Exception) else "no answer"
            return CheckResult(
                name,
                False,
                f"cannot reach the token endpoint at {graph.authority} ({reason})",
                _reach_fix(cause, "AZURE_AUTHORITY_HOST (login.microsoftonline.com, or your cloud's host)"),
            )
        if exc.code == "token_endpoint_unavailable":
            return CheckResult.failed(name, graph.diagnose(exc.code, description=str(cause)))
        diagnosis = exc.diagnosis or graph.diagnose(exc.code, description=exc.detail)
        return CheckResult.failed(name, diagnosis.knowing(self.issuer_tenant))

    # 4 ----------------------------------------------------------------------------------------
    def check_token_claims(self) -> CheckResult:
        """The token's tenant and roles, read from it when it is a JWT; access tokens are opaque
        to clients by contract, so for any other token Graph's answer decides."""
        s, graph = self._settings(), self._graph()
        if self.claims is None:
            return self._opaque_token_claims()
        tid = str(self.claims.get("tid", "")).lower()
        if tid != s.tenant_id:
            known = tid if is_guid(tid) else None
            diagnosis = graph.diagnose("token_tenant", token_tenant=tid or "missing", known_tenant=known)
            return CheckResult.failed("token_claims", diagnosis)
        roles = [str(r) for r in self.claims.get("roles") or []]
        if not set(roles) & set(READ_USERS_ROLES):
            return CheckResult.failed(
                "token_claims", graph.diagnose("missing_role", roles=", ".join(roles) or "none")
            )
        return CheckResult(
            "token_claims", True, f"tid {tid} is the {s.directory.kind}; roles: {', '.join(roles)}"
        )

    def _opaque_token_claims(self) -> CheckResult:
        """An opaque token's permission, judged by whether Graph lets it read users."""
        opaque = "the access token is opaque (not a JWT)"
        page = self._users()
        if isinstance(page, GraphError):
            if page.diagnosis is not None:  # 403 (no permission) or 401 (token refused)
                return CheckResult.failed("token_claims", page.diagnosis)
            return CheckResult("token_claims", True, f"{opaque}; Graph did not answer: see check 5")
        return CheckResult(
            "token_claims",
            True,
            f"{opaque}; Graph accepts it for reading the {self._settings().directory.kind}'s users",
        )

    def _users(self) -> dict[str, Any] | GraphError:
        """The first page of users (one user), or Graph's error; fetched once per run."""
        if self._users_page is None:
            try:
                self._users_page = self._graph().get(
                    "users", {"$top": "1", "$select": "id,mail,otherMails,identities"}
                )
            except GraphError as exc:
                self._users_page = exc
        return self._users_page

    # 5 ----------------------------------------------------------------------------------------
    def check_graph(self) -> CheckResult:
        graph = self._graph()
        page = self._users()
        if isinstance(page, GraphError):
            return self._graph_failure("graph", page)
        users = page.get("value") or []
        where = f"{graph.graph_endpoint}/v1.0/users?$top=1"
        if not users:
            return CheckResult("graph", True, f"{where} answered; the directory has no users yet")
        sample = users[0]
        email, source = pick_email_with_source(sample)
        if email is None:
            return CheckResult(
                "graph",
                True,
                f"{where} answered; sample user {sample.get('id')} has no email by the app's rules "
                "(no mail, emailAddress identity or otherMails)",
            )
        # Another user's address: masked, as the report may end up in a CI log.
        return CheckResult(
            "graph",
            True,
            f"{where} answered; sample user {sample.get('id')} → {mask_email(email)} (from {source})",
        )

    # 6 ----------------------------------------------------------------------------------------
    def check_secret_expiry(self) -> CheckResult:
        """When the configured client secret lapses, from the app's own application object.
        Graph shows each secret's first three characters (`hint`), which tells the configured
        one apart; neither the hint nor the secret is printed."""
        s, graph = self._settings(), self._graph()
        name = "secret_expiry"
        not_granted = CheckResult(
            name,
            None,
            "skipped: reading the secret's expiry needs the Graph application permission "
            f"{READ_APPLICATION_ROLE} (optional; grant it and admin-consent it to have the doctor "
            "watch the expiry)",
            grant_permission(s.directory, s.client_id, READ_APPLICATION_ROLE),
        )
        if self.claims is not None and not set(self.claims.get("roles") or []) & set(READ_APPLICATION_ROLES):
            return not_granted  # read from the token, as check 4 does: Graph would answer 403
        try:
            application = graph.get(
                f"applications(appId='{quote(s.client_id, safe='')}')", {"$select": "passwordCredentials"}
            )
        except GraphError as exc:
            if exc.code == "graph_forbidden":
                return not_granted
            if exc.status == 404:  # the app's object lives in another tenant (a multitenant app)
                return CheckResult(
                    name,
                    None,
                    f"skipped: the {s.directory.kind} holds no application object for the app, so Graph "
                    "cannot show its secrets here",
                )
            return self._graph_failure(name, exc)
        now = datetime.now(UTC)
        credentials = [c for c in application.get("passwordCredentials") or [] if isinstance(c, dict)]
        if not credentials:
            return CheckResult(name, None, "skipped: Graph lists no client secrets for the app")
        matching = [c for c in credentials if c.get("hint") and c["hint"] == s.client_secret[:3]]
        # The token was just issued, so the configured secret has not lapsed: when the hint
        # does not tell, the soonest of the secrets still valid is the one to watch.
        candidates = matching or credentials
        valid = [c for c in candidates if _credential_end(c) > now]
        credential = min(valid or candidates, key=_credential_end)
        which = "the configured secret" if matching else "the soonest-expiring secret (none matched)"
        label = f"{which} {_credential_label(credential)}"
        end = _credential_end(credential)
        if end == NEVER:
            return CheckResult(name, True, f"{label} has no end date")
        when = f"{end:%Y-%m-%d %H:%M} UTC"
        if end <= now:
            expired = graph.diagnose("expired_secret")  # what check 3 says once a token request fails
            return CheckResult(
                name,
                False,
                f"{label} expired on {when}: token requests with it fail with AADSTS7000222",
                expired.fix,
            )
        days = (end - now).days
        if end - now <= SECRET_WARNING:
            return CheckResult(
                name,
                True,
                f"{label} expires on {when}, in {days} day{'' if days == 1 else 's'}",
                "rotate it before then: if the Pulumi program created the app, set "
                "photoshare:appSecretEndDate later and run `pulumi up`; otherwise create a new secret "
                f"in {s.directory.portal} → {s.client_id} → Certificates & secrets, put its Value into "
                f"{s.directory.secret_setting}, then delete the old one",
                warning=True,
            )
        return CheckResult(name, True, f"{label} expires on {when}, in {days} days")

    # 7 ----------------------------------------------------------------------------------------
    def check_user(self) -> CheckResult:
        oid = self.user or ""
        try:
            user = self._graph().user(oid)
        except GraphError as exc:
            if exc.code == "user_not_found":
                return CheckResult(
                    "user",
                    False,
                    f"user {oid} does not exist in the {self._settings().directory.kind}",
                    f"pass the user's Object ID (the {self._settings().directory.kind} → Users → the user "
                    "→ Object ID)",
                )
            return self._graph_failure("user", exc)
        email, source = pick_email_with_source(user)
        if email is None:
            return CheckResult(
                "user",
                False,
                f"user {oid} has no mail, no emailAddress identity and no otherMails: the app shows no email",
                "give the user an email address (Users → the user → Edit properties → Other emails), "
                "or collect one in the sign-up user flow",
            )
        field = {
            "identities": "identities[signInType=emailAddress].issuerAssignedId",
            "identities:mail": "identities[signInType=federated, issuer=mail].issuerAssignedId",
            "otherMails": "otherMails[0]",
        }
        return CheckResult("user", True, f"user {oid} → {email} (from {field.get(source or '', source)})")

    # -----------------------------------------------------------------------------------------
    def _graph_failure(self, name: str, exc: GraphError) -> CheckResult:
        graph = self._graph()
        if isinstance(exc, TokenError):
            return self._token_failure(name, exc)
        if exc.diagnosis is not None:  # forbidden, unauthorized: the catalogue's cause and fix
            return CheckResult.failed(name, exc.diagnosis)
        if exc.code == "graph_throttled":
            wait = f" (Retry-After: {exc.retry_after} s)" if exc.retry_after else ""
            return CheckResult(
                name,
                False,
                f"Microsoft Graph is throttling this app{wait}, still after the bounded retries",
                "retry later: Graph throttles per app and tenant; nothing is misconfigured",
            )
        if exc.code == "graph_unavailable":
            return CheckResult(
                name,
                False,
                f"cannot reach Microsoft Graph at {graph.graph_endpoint} ({exc.message})",
                "check GRAPH_ENDPOINT (https://graph.microsoft.com, or your cloud's) and network access",
            )
        return CheckResult(name, False, exc.message, "retry later; if it persists, check GRAPH_ENDPOINT")

    def _settings(self) -> IdentitySettings:
        assert self.settings is not None, "run() orders the checks"
        return self.settings

    def _identity(self) -> IdentityClient:
        assert self.identity is not None, "run() orders the checks"
        return self.identity

    def _graph(self) -> GraphClient:
        assert self.graph is not None, "run() orders the checks"
        return self.graph


def mask_email(email: str) -> str:
    """`ann@example.com` → `a…@example.com`: the domain and the first letter, enough to see
    which field the address came from without printing it."""
    local, at, domain = email.rpartition("@")
    if not at:
        return "…"
    return f"{local[:1]}…@{domain}"


def _credential_end(credential: Mapping[str, Any]) -> datetime:
    """A passwordCredential's endDateTime (ISO 8601, UTC); NEVER when it has none."""
    end = credential.get("endDateTime")
    try:
        return datetime.fromisoformat(str(end)).astimezone(UTC) if end else NEVER
    except ValueError:
        return NEVER


def _credential_label(credential: Mapping[str, Any]) -> str:
    """`"photoshare" (key 1a2b3c4d)`: the display name and the start of the keyId, which the
    portal's Certificates & secrets lists as Secret ID; never the hint."""
    key = f"key {str(credential.get('keyId') or '?')[:8]}"
    display = credential.get("displayName")
    return f"{display!r} ({key})" if display else f"({key})"


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """The unverified claims of a JWT access token, or None for an opaque one."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


def _authority_setting(s: IdentitySettings) -> str:
    if s.external_id:
        return "EXTERNAL_ID_AUTHORITY (default https://<subdomain>.ciamlogin.com/<tenant id>/v2.0)"
    return "AZURE_AD_B2C_AUTHORITY_HOST (default <tenant>.b2clogin.com, or your custom domain)"


def _missing_authority_fix(s: IdentitySettings, flow: str) -> str:
    if s.external_id:
        return (
            "check EXTERNAL_ID_TENANT_SUBDOMAIN and EXTERNAL_ID_TENANT_ID: both must name the "
            f"external tenant ({EXTERNAL_DIRECTORY.tenant_id_where})"
        )
    variable = {
        "sign_in": "AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY",
        "password_reset": "AZURE_AD_B2C_PASSWORD_RESET_POLICY",
        "profile_edit": "AZURE_AD_B2C_PROFILE_EDIT_POLICY",
    }[flow]
    return (
        f"check AZURE_AD_B2C_TENANT_NAME and {variable}: the user flow must exist "
        "(Azure portal → Azure AD B2C → User flows) with exactly this name"
    )


def _error_description(response: requests.Response) -> str:
    try:
        description = str(response.json().get("error_description", ""))
    except ValueError:
        return ""
    return f" ({description.splitlines()[0]})" if description else ""


def _network_reason(exc: BaseException | None) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS certificate not trusted"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


def _reach_fix(exc: BaseException | None, setting: str) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        return (
            f"check {setting}; if a proxy inspects TLS, point REQUESTS_CA_BUNDLE at a bundle that "
            "includes its CA"
        )
    return f"check {setting} and that this machine can reach it (DNS, proxy, firewall)"
