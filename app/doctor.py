"""`photoshare doctor`: diagnose a B2C and Graph configuration before it fails in production.

The source article's mistake (the Graph token asked from the company's main tenant instead of
the B2C directory) only surfaces when a user without an `emails` claim signs in. The doctor
walks the same path as the app, in order, and says for each step what is wrong and the fix.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

import jwt
import requests
from msal.exceptions import MsalServiceError

from app.graph import GraphClient, GraphError, TokenError, pick_email_with_source
from app.settings import Settings, SettingsError, is_guid

# What the doctor validates: the B2C and Graph part of the settings contract, nothing else.
IDENTITY_SETTINGS = (
    "AZURE_AD_B2C_TENANT_NAME",
    "AZURE_AD_B2C_TENANT_ID",
    "AZURE_AD_B2C_CLIENT_ID",
    "AZURE_AD_B2C_CLIENT_SECRET",
    "AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY",
    "AZURE_AD_B2C_PASSWORD_RESET_POLICY",
    "AZURE_AD_B2C_PROFILE_EDIT_POLICY",
    "AZURE_AD_B2C_AUTHORITY_HOST",
    "AZURE_AUTHORITY_HOST",
    "GRAPH_ENDPOINT",
    "APP_ENV",
)
# Stand-ins for the settings the doctor never uses, so `Settings.from_env` judges only the rest.
_UNUSED = {
    "DATABASE_URL": "postgresql://unused-by-doctor/unused",
    "AZURE_STORAGE_CONNECTION_STRING": "unused-by-doctor",
    "SECRET_KEY": "unused-by-doctor",
}
# Flags that override a setting; the secret deliberately has none (shell history, process list).
FLAGS = {
    "tenant_name": "AZURE_AD_B2C_TENANT_NAME",
    "tenant_id": "AZURE_AD_B2C_TENANT_ID",
    "client_id": "AZURE_AD_B2C_CLIENT_ID",
    "b2c_authority_host": "AZURE_AD_B2C_AUTHORITY_HOST",
    "authority_host": "AZURE_AUTHORITY_HOST",
    "graph_endpoint": "GRAPH_ENDPOINT",
}
READ_USERS_ROLES = ("User.Read.All", "Directory.Read.All", "User.ReadWrite.All", "Directory.ReadWrite.All")
TENANT_ID_WHERE = "Azure portal → switch to the B2C tenant → Overview → Tenant ID"
GRANT_PERMISSION = (
    "in the B2C tenant, App registrations → {client_id} → API permissions → Add a permission → "
    "Microsoft Graph → Application permissions → User.Read.All, then 'Grant admin consent' "
    "(an admin of the B2C directory must consent)"
)

TITLES = {
    "settings": "settings",
    "user_flows": "B2C user flows",
    "token": "app-only token",
    "token_claims": "token tenant and roles",
    "graph": "Graph users",
    "user": "user email",
}

# The check each one builds on: when that failed (or was skipped), this one is skipped.
_NEEDS: dict[str, str | None] = {
    "settings": None,
    "user_flows": "settings",
    "token": "settings",
    "token_claims": "token",
    "graph": "token_claims",
    "user": "graph",
}


@dataclass(frozen=True)
class CheckResult:
    """One line of the report; `ok` is None when the check was skipped."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""


class Doctor:
    """Runs the checks in order; a check whose prerequisite failed is reported as skipped."""

    def __init__(
        self,
        *,
        environ: Mapping[str, str],
        user: str | None = None,
        timeout: float = 10.0,
        max_retry_after: float = 5.0,
    ) -> None:
        self._environ = environ
        self.user = user
        self.timeout = timeout
        self.max_retry_after = max_retry_after
        self.settings: Settings | None = None
        self.graph: GraphClient | None = None
        self.claims: dict[str, Any] | None = None
        self.issuer_tenant: str | None = None  # set when the user flows name another tenant

    def run(self) -> list[CheckResult]:
        checks: list[tuple[str, Callable[[], CheckResult]]] = [
            ("settings", self.check_settings),
            ("user_flows", self.check_user_flows),
            ("token", self.check_token),
            ("token_claims", self.check_token_claims),
            ("graph", self.check_graph),
        ]
        if self.user is not None:
            checks.append(("user", self.check_user))
        results: dict[str, CheckResult] = {}
        for name, check in checks:
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
        subset = {k: v for k, v in self._environ.items() if k in IDENTITY_SETTINGS}
        try:
            self.settings = Settings.from_env({**subset, **_UNUSED})
        except SettingsError as exc:
            problems = [line.strip().removeprefix("- ") for line in str(exc).splitlines()[1:]]
            return CheckResult(
                "settings",
                False,
                "\n".join(problems),
                "correct these in the environment or .env (see .env.sample), or with the matching "
                "flag (photoshare doctor --help)",
            )
        s = self.settings
        return CheckResult(
            "settings",
            True,
            f"B2C tenant {s.b2c_tenant_name} ({s.b2c_tenant_id}), app {s.client_id}, secret set",
        )

    # 2 ----------------------------------------------------------------------------------------
    def check_user_flows(self) -> CheckResult:
        s = self._settings()
        policies = {
            "AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY": s.signup_signin_policy,
            "AZURE_AD_B2C_PASSWORD_RESET_POLICY": s.password_reset_policy,
            "AZURE_AD_B2C_PROFILE_EDIT_POLICY": s.profile_edit_policy,
        }
        for variable, policy in policies.items():
            url = f"{s.b2c_authority(policy)}/v2.0/.well-known/openid-configuration"
            try:
                response = requests.get(url, timeout=self.timeout)
            except requests.RequestException as exc:
                return CheckResult(
                    "user_flows",
                    False,
                    f"cannot reach the user flow's metadata at {url} ({_network_reason(exc)})",
                    _reach_fix(
                        exc,
                        "AZURE_AD_B2C_AUTHORITY_HOST (default <tenant>.b2clogin.com, or your custom domain)",
                    ),
                )
            if response.status_code != 200:
                return CheckResult(
                    "user_flows",
                    False,
                    f"user flow {policy} of tenant {s.b2c_tenant_name}.onmicrosoft.com answered "
                    f"{response.status_code} at {url}{_b2c_code(response)}",
                    f"check AZURE_AD_B2C_TENANT_NAME and {variable}: the user flow must exist "
                    "(Azure portal → Azure AD B2C → User flows) with exactly this name",
                )
            try:
                issuer = str(response.json()["issuer"])
            except (ValueError, KeyError, TypeError):
                return CheckResult(
                    "user_flows",
                    False,
                    f"{url} did not return OpenID metadata with an issuer",
                    "check AZURE_AD_B2C_AUTHORITY_HOST: it must serve the B2C user flows "
                    "(<tenant>.b2clogin.com or your B2C custom domain)",
                )
            named = _issuer_tenant(issuer)
            if named is None:
                return CheckResult(
                    "user_flows",
                    False,
                    f"user flow {policy}'s issuer {issuer} names no tenant id",
                    "check AZURE_AD_B2C_AUTHORITY_HOST: it must serve the B2C user flows",
                )
            if named != s.b2c_tenant_id:
                self.issuer_tenant = named  # the B2C directory's real id: check 3's fix can name it
                return CheckResult(
                    "user_flows",
                    False,
                    f"user flow {policy}'s issuer names tenant {named}, but AZURE_AD_B2C_TENANT_ID "
                    f"is {s.b2c_tenant_id}: you probably used your main tenant's id",
                    f"set AZURE_AD_B2C_TENANT_ID={named}, the B2C directory's id ({TENANT_ID_WHERE})",
                )
        return CheckResult(
            "user_flows",
            True,
            f"{', '.join(policies.values())} answer at {s.b2c_authority_base}; "
            f"their issuer names tenant {s.b2c_tenant_id}",
        )

    # 3 ----------------------------------------------------------------------------------------
    def check_token(self) -> CheckResult:
        s = self._settings()
        self.graph = GraphClient.from_settings(s, timeout=self.timeout, max_retry_after=self.max_retry_after)
        try:
            result = self.graph.token()
        except TokenError as exc:
            return CheckResult("token", False, *self._token_diagnosis(exc))
        try:
            self.claims = jwt.decode(result["access_token"], options={"verify_signature": False})
        except jwt.PyJWTError:
            self.claims = {}  # check 4 says what that means
        return CheckResult("token", True, f"acquired from {s.graph_authority} for {s.graph_scope}")

    def _token_diagnosis(self, exc: TokenError) -> tuple[str, str]:
        """What went wrong and the fix, from the app's own classification of the AADSTS error."""
        s = self._settings()
        b2c_id = self.issuer_tenant
        set_tenant = (
            f"set AZURE_AD_B2C_TENANT_ID={b2c_id}, the B2C directory's id ({TENANT_ID_WHERE})"
            if b2c_id
            else f"set AZURE_AD_B2C_TENANT_ID to the B2C directory's id ({TENANT_ID_WHERE})"
        )
        if exc.code == "wrong_tenant":
            return (
                f"AADSTS700016: client id {s.client_id} is registered in another directory, not in "
                f"{s.b2c_tenant_id}: you probably used your main tenant's id",
                set_tenant,
            )
        if exc.code == "unknown_tenant":
            return (
                f"AADSTS90002: tenant {s.b2c_tenant_id} does not exist at {s.authority_host}",
                f"{set_tenant}; for sovereign clouds also set AZURE_AUTHORITY_HOST",
            )
        if exc.code == "invalid_secret":
            return (
                f"AADSTS7000215: AZURE_AD_B2C_CLIENT_SECRET is not a valid secret of app {s.client_id}",
                "put the secret's Value (not its Secret ID) from the B2C tenant's App registrations → "
                "Certificates & secrets into AZURE_AD_B2C_CLIENT_SECRET (environment or .env)",
            )
        if exc.code == "expired_secret":
            return (
                f"AADSTS7000222: AZURE_AD_B2C_CLIENT_SECRET of app {s.client_id} has expired",
                "create a new client secret in the B2C tenant's App registrations → Certificates & "
                "secrets and put its Value into AZURE_AD_B2C_CLIENT_SECRET",
            )
        if exc.code == "token_endpoint_unavailable":
            cause = exc.__context__  # GraphClient raises `from None`; the cause is still kept here
            if isinstance(cause, MsalServiceError):
                return (
                    f"the token endpoint at {s.graph_authority} is unavailable ({cause})",
                    "retry later; if it persists, check the Azure status page",
                )
            reason = _network_reason(cause) if isinstance(cause, Exception) else "no answer"
            return (
                f"cannot reach the token endpoint at {s.graph_authority} ({reason})",
                _reach_fix(cause, "AZURE_AUTHORITY_HOST (login.microsoftonline.com, or your cloud's host)"),
            )
        return (
            exc.detail,
            "look the AADSTS code up at https://login.microsoftonline.com/error and fix the app "
            "registration in the B2C tenant",
        )

    # 4 ----------------------------------------------------------------------------------------
    def check_token_claims(self) -> CheckResult:
        s = self._settings()
        claims = self.claims or {}
        if not claims:
            return CheckResult(
                "token_claims",
                False,
                "the access token is not a JWT: cannot read its tenant and roles",
                f"check AZURE_AUTHORITY_HOST and GRAPH_ENDPOINT (scope {s.graph_scope})",
            )
        tid = str(claims.get("tid", "")).lower()
        if tid != s.b2c_tenant_id:
            return CheckResult(
                "token_claims",
                False,
                f"the token's tenant (tid) is {tid or 'missing'}, "
                f"not AZURE_AD_B2C_TENANT_ID {s.b2c_tenant_id}",
                f"set AZURE_AD_B2C_TENANT_ID to the B2C directory's id ({TENANT_ID_WHERE})",
            )
        roles = [str(r) for r in claims.get("roles") or []]
        if not set(roles) & set(READ_USERS_ROLES):
            shown = ", ".join(roles) if roles else "none"
            return CheckResult(
                "token_claims",
                False,
                f"the token has no Graph permission that can read users (roles: {shown}); "
                "Graph will answer 403",
                "grant User.Read.All (or Directory.Read.All): "
                + GRANT_PERMISSION.format(client_id=s.client_id),
            )
        return CheckResult("token_claims", True, f"tid {tid} is the B2C tenant; roles: {', '.join(roles)}")

    # 5 ----------------------------------------------------------------------------------------
    def check_graph(self) -> CheckResult:
        graph = self._graph()
        try:
            page = graph.get("users", {"$top": "1", "$select": "id,mail,otherMails,identities"})
        except GraphError as exc:
            return CheckResult("graph", False, *self._graph_diagnosis(exc))
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
        return CheckResult(
            "graph", True, f"{where} answered; sample user {sample.get('id')} → {email} (from {source})"
        )

    # 6 ----------------------------------------------------------------------------------------
    def check_user(self) -> CheckResult:
        oid = self.user or ""
        try:
            user = self._graph().user(oid)
        except GraphError as exc:
            if exc.code == "user_not_found":
                return CheckResult(
                    "user",
                    False,
                    f"user {oid} does not exist in the B2C directory",
                    "pass the user's Object ID (Azure portal → B2C tenant → Users → the user → Object ID)",
                )
            return CheckResult("user", False, *self._graph_diagnosis(exc))
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
            "otherMails": "otherMails[0]",
        }
        return CheckResult("user", True, f"user {oid} → {email} (from {field.get(source or '', source)})")

    # -----------------------------------------------------------------------------------------
    def _graph_diagnosis(self, exc: GraphError) -> tuple[str, str]:
        s = self._settings()
        if isinstance(exc, TokenError):
            return self._token_diagnosis(exc)
        if exc.code == "graph_throttled":
            wait = f" (Retry-After: {exc.retry_after} s)" if exc.retry_after else ""
            return (
                f"Microsoft Graph is throttling this app{wait}, still after the bounded retries",
                "retry later: Graph throttles per app and tenant; nothing is misconfigured",
            )
        if exc.code == "graph_forbidden":
            return (
                "Graph refused (403): the app has no permission to read users",
                "grant User.Read.All: " + GRANT_PERMISSION.format(client_id=s.client_id),
            )
        if exc.code == "graph_unauthorized":
            return (
                f"Graph at {s.graph_endpoint} rejected the token (401)",
                "GRAPH_ENDPOINT and AZURE_AUTHORITY_HOST must be in the same cloud, and the token must "
                "come from the B2C tenant (AZURE_AD_B2C_TENANT_ID)",
            )
        if exc.code == "graph_unavailable":
            return (
                f"cannot reach Microsoft Graph at {s.graph_endpoint} ({exc.message})",
                "check GRAPH_ENDPOINT (https://graph.microsoft.com, or your cloud's) and network access",
            )
        return exc.message, "retry later; if it persists, check GRAPH_ENDPOINT"

    def _settings(self) -> Settings:
        assert self.settings is not None, "run() orders the checks"
        return self.settings

    def _graph(self) -> GraphClient:
        assert self.graph is not None, "run() orders the checks"
        return self.graph


def _issuer_tenant(issuer: str) -> str | None:
    """The tenant GUID in a B2C issuer (`https://host/{tid}/v2.0/` or `…/tfp/{tid}/{policy}/v2.0/`)."""
    return next((p.lower() for p in urlsplit(issuer).path.split("/") if is_guid(p)), None)


def _b2c_code(response: requests.Response) -> str:
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


# --- command line --------------------------------------------------------------------------
HELP = "diagnose the B2C and Graph settings (user flows, app-only token, permissions, Graph)"
DESCRIPTION = """\
Check the B2C and Microsoft Graph settings the app uses, in order, one line per check
(✓ passed, ✗ failed with the fix, – skipped because an earlier check failed):
  1. settings present and well-formed   4. the token's tenant (tid) and Graph roles
  2. B2C user-flow metadata and issuer   5. Graph GET /users?$top=1 and a sample email
  3. app-only token from the B2C tenant  6. with --user: that user's email and its source
"""
EPILOG = """\
Settings come from these flags, else the environment, else .env. AZURE_AD_B2C_CLIENT_SECRET
is read only from the environment or .env, never from a flag, so it stays out of shell history
and process lists; it is never printed.

Exit status: 0 every check passed, 1 a check failed, 2 usage error.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `doctor` subcommand's flags (wired into `photoshare` by app/cli.py)."""
    parser.add_argument(
        "--tenant-name", metavar="NAME", help="B2C tenant short name (AZURE_AD_B2C_TENANT_NAME)"
    )
    parser.add_argument(
        "--tenant-id", metavar="GUID", help="B2C directory's tenant id, a GUID (AZURE_AD_B2C_TENANT_ID)"
    )
    parser.add_argument(
        "--client-id", metavar="GUID", help="app registration's client id (AZURE_AD_B2C_CLIENT_ID)"
    )
    parser.add_argument(
        "--b2c-authority-host",
        metavar="HOST",
        help="host serving the user flows (AZURE_AD_B2C_AUTHORITY_HOST)",
    )
    parser.add_argument(
        "--authority-host", metavar="HOST", help="Entra host for the app-only token (AZURE_AUTHORITY_HOST)"
    )
    parser.add_argument("--graph-endpoint", metavar="URL", help="Microsoft Graph base URL (GRAPH_ENDPOINT)")
    parser.add_argument(
        "--user", metavar="OBJECT_ID", help="also resolve this user's email and show which field it came from"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON, for CI")
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_seconds,
        default=10.0,
        help="seconds per network call (default 10)",
    )


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 300:
        raise argparse.ArgumentTypeError(f"must be a number of seconds between 0 and 300, got {value!r}")
    return seconds


def run(args: argparse.Namespace, environ: Mapping[str, str], *, out: TextIO | None = None) -> int:
    """Run the checks with the flags applied over `environ`; print them; return the exit status."""
    out = out or sys.stdout
    env = dict(environ)
    for flag, variable in FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            env[variable] = value
    results = Doctor(environ=env, user=args.user, timeout=args.timeout).run()
    secret = env.get("AZURE_AD_B2C_CLIENT_SECRET", "").strip()
    text = render_json(results) if args.json else render_text(results, out)
    if secret:
        text = text.replace(secret, "***")  # belt and braces: no message should contain it
    out.write(text)
    out.flush()
    return 0 if all(r.ok is not False for r in results) else 1


def render_json(results: list[CheckResult]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False) + "\n"


def render_text(results: list[CheckResult], out: TextIO) -> str:
    """One line per check, ✓/✗/–, then the detail lines and the fix of every failure."""
    marks = {True: "✓", False: "✗", None: "–"}
    try:
        "✓✗–→".encode(getattr(out, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        marks = {True: "ok  ", False: "FAIL", None: "skip"}
    lines = []
    for number, r in enumerate(results, 1):
        first, *rest = r.detail.splitlines() or [""]
        if rest:  # several problems: one per line under the check
            first, rest = f"{len(rest) + 1} problems", [first, *rest]
        lines.append(f"{marks[r.ok]} {number}. {TITLES[r.name]}: {first}")
        lines.extend(f"     - {line}" for line in rest)
        if r.ok is False and r.fix:
            lines.append(f"     fix: {r.fix}")
    failed = sum(r.ok is False for r in results)
    passed = sum(r.ok is True for r in results)
    skipped = sum(r.ok is None for r in results)
    summary = f"{passed} passed, {failed} failed, {skipped} skipped"
    lines.append(f"photoshare doctor: {'all checks passed' if not failed else summary}")
    text = "\n".join(lines) + "\n"
    if marks[True] != "✓":
        text = text.replace("→", "->")
    return text
