"""Microsoft Graph with an app-only token from the **B2C** directory.

The token comes from `https://{AZURE_AUTHORITY_HOST}/{AZURE_AD_B2C_TENANT_ID}`; asking the
company's main tenant instead is the classic mistake, and the errors it produces are turned
into a sentence that says so. MSAL caches the token and reuses it until it nears expiry:
one token request per process per token lifetime, and none at import or start-up.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import quote

import msal
import requests
from msal.exceptions import MsalServiceError
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from app.settings import Settings

log = logging.getLogger(__name__)

USER_SELECT = "mail,otherMails,identities"


class GraphError(Exception):
    """Graph or its token endpoint failed; `code` and `message` are safe to show to users,
    `detail` (ids, AADSTS text, the fix) is for the log and `photoshare doctor`."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int = 502,
        retry_after: int | None = None,
        detail: str | None = None,
    ):
        super().__init__(detail or message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.detail = detail or message


_ADMIN = "An administrator can run `photoshare doctor` to see the fix."


class TokenError(GraphError):
    """The app-only token could not be acquired (usually configuration)."""

    _SHOWN = {
        "wrong_tenant": "Email lookup is misconfigured: the app asks the wrong directory for its "
        f"Microsoft Graph token. {_ADMIN}",
        "unknown_tenant": "Email lookup is misconfigured: the directory the app asks for its "
        f"Microsoft Graph token does not exist. {_ADMIN}",
        "invalid_secret": f"Email lookup is misconfigured: the app's client secret was refused. {_ADMIN}",
        "expired_secret": f"Email lookup is misconfigured: the app's client secret has expired. {_ADMIN}",
        "token_error": "Email lookup is misconfigured: the app could not get a Microsoft Graph "
        f"token. {_ADMIN}",
        "token_endpoint_unavailable": "Email lookup is unavailable: Microsoft's token service does not "
        "answer. Try again shortly.",
    }

    def __init__(self, code: str, detail: str, *, status: int = 502) -> None:
        shown = self._SHOWN.get(code, self._SHOWN["token_error"])
        super().__init__(code, shown, status=status, detail=detail)


class _BoundedRetry(Retry):
    """urllib3's retry honouring Retry-After, but never sleeping longer than `max_sleep`."""

    max_sleep: float = 10.0

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.max_sleep)


def translate_token_error(result: dict[str, Any] | str, *, tenant_id: str, client_id: str) -> TokenError:
    """Turn an AADSTS error into a sentence that names the likely mistake and its fix."""
    if isinstance(result, dict):
        description = str(result.get("error_description") or result.get("error") or "")
        codes = [int(c) for c in result.get("error_codes") or []]
    else:
        description = result
        codes = []
    codes += [int(c) for c in re.findall(r"AADSTS(\d+)", description)]
    if "Unable to get authority configuration" in description:
        codes.append(90002)  # MSAL's wording when tenant discovery answers 400 for the tenant
    if 700016 in codes:
        return TokenError(
            "wrong_tenant",
            f"AADSTS700016: the app {client_id} is not registered in directory {tenant_id}. "
            "AZURE_AD_B2C_TENANT_ID is probably your main directory's tenant id: use the B2C "
            "directory's id (Azure portal → switch to the B2C tenant → Overview → Tenant ID).",
        )
    if 90002 in codes:
        return TokenError(
            "unknown_tenant",
            f"AADSTS90002: tenant {tenant_id} does not exist in this cloud. Set "
            "AZURE_AD_B2C_TENANT_ID to the B2C directory's tenant id (Azure portal → B2C "
            "tenant → Overview) and check AZURE_AUTHORITY_HOST for sovereign clouds.",
        )
    if 7000215 in codes:
        return TokenError(
            "invalid_secret",
            "AADSTS7000215: AZURE_AD_B2C_CLIENT_SECRET is not valid for this app. Use the "
            "secret's Value (not its Secret ID) from App registrations → Certificates & secrets.",
        )
    if 7000222 in codes:
        return TokenError(
            "expired_secret",
            "AADSTS7000222: AZURE_AD_B2C_CLIENT_SECRET has expired. Create a new client secret "
            "in the B2C tenant's app registration and update the setting.",
        )
    first_line = description.splitlines()[0] if description else "no description"
    return TokenError("token_error", f"Could not get a Graph token: {first_line}")


def pick_email(user: dict[str, Any]) -> str | None:
    """`mail`, else the emailAddress identity (B2C local accounts), else `otherMails[0]`."""
    return pick_email_with_source(user)[0]


def pick_email_with_source(user: dict[str, Any]) -> tuple[str | None, str | None]:
    """`pick_email` plus the field it came from (`mail`, `identities`, `otherMails`), for diagnostics."""
    if user.get("mail"):
        return str(user["mail"]), "mail"
    for identity in user.get("identities") or []:
        if identity.get("signInType") == "emailAddress" and identity.get("issuerAssignedId"):
            return str(identity["issuerAssignedId"]), "identities"
    other = user.get("otherMails") or []
    return (str(other[0]), "otherMails") if other else (None, None)


class GraphClient:
    """App-only Graph calls for one B2C directory."""

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        authority_host: str = "https://login.microsoftonline.com",
        graph_endpoint: str = "https://graph.microsoft.com",
        scope: str = "https://graph.microsoft.com/.default",
        timeout: float = 10.0,
        max_retries: int = 3,
        max_retry_after: float = 10.0,
    ) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._client_secret = client_secret
        self.authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self.graph_endpoint = graph_endpoint.rstrip("/")
        self.scope = scope
        self.timeout = timeout
        retry = _BoundedRetry(
            total=max_retries,
            connect=1,
            backoff_factor=0.5,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        retry.max_sleep = max_retry_after
        self.session = requests.Session()
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self._msal: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, timeout: float = 10.0, max_retry_after: float = 10.0
    ) -> GraphClient:
        return cls(
            tenant_id=settings.b2c_tenant_id,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            authority_host=settings.authority_host,
            graph_endpoint=settings.graph_endpoint,
            scope=settings.graph_scope,
            timeout=timeout,
            max_retry_after=max_retry_after,
        )

    def _app(self) -> msal.ConfidentialClientApplication:
        # Built on first use: MSAL fetches the tenant's metadata in its constructor.
        with self._lock:
            if self._msal is None:
                self._msal = msal.ConfidentialClientApplication(
                    self.client_id,
                    client_credential=self._client_secret,
                    authority=self.authority,
                    instance_discovery=False,
                    timeout=self.timeout,
                )
            return self._msal

    def token(self) -> dict[str, Any]:
        """The app-only token result (from MSAL's cache while it is valid)."""
        try:
            result = self._app().acquire_token_for_client(scopes=[self.scope])
        except ValueError as exc:  # MSAL raises on a 4xx from tenant discovery (unknown tenant)
            raise translate_token_error(
                f"{exc} {exc.__context__ or ''}", tenant_id=self.tenant_id, client_id=self.client_id
            ) from None
        except (requests.RequestException, MsalServiceError) as exc:  # unreachable, or 5xx
            raise TokenError(
                "token_endpoint_unavailable",
                f"The token endpoint at {self.authority} is unavailable ({type(exc).__name__}); "
                "try again shortly.",
                status=503,
            ) from None
        if "access_token" not in result:
            raise translate_token_error(result, tenant_id=self.tenant_id, client_id=self.client_id)
        return result

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """GET a Graph resource; 429/5xx are retried within a bounded budget."""
        token = self.token()["access_token"]
        try:
            response = self.session.get(
                f"{self.graph_endpoint}/v1.0/{path}",
                params=params,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise GraphError(
                "graph_unavailable", f"Microsoft Graph did not answer ({type(exc).__name__}).", status=503
            ) from None
        if response.status_code == 200:
            return response.json()
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {}
        code = error.get("code", "") if isinstance(error, dict) else ""
        message = error.get("message", "") if isinstance(error, dict) else ""
        if response.status_code in (429, 503):
            retry_after = response.headers.get("Retry-After")
            raise GraphError(
                "graph_throttled",
                "Microsoft Graph is throttling requests; try again shortly.",
                status=503,
                retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None,
            )
        if response.status_code == 404:
            raise GraphError("user_not_found", "The user does not exist in the B2C directory.", status=404)
        if response.status_code == 403:
            raise GraphError(
                "graph_forbidden",
                "Graph refused: the app registration needs the application permission "
                "User.Read.All on Microsoft Graph, with admin consent, in the B2C tenant.",
            )
        if response.status_code == 401:
            raise GraphError(
                "graph_unauthorized",
                f"Graph rejected the app-only token ({code}): check that the token comes from "
                "the B2C tenant (AZURE_AD_B2C_TENANT_ID).",
            )
        log.warning("graph error %s %s: %s", response.status_code, code, message)
        raise GraphError("graph_error", f"Microsoft Graph answered {response.status_code} {code}.")

    def user(self, oid: str) -> dict[str, Any]:
        return self.get(f"users/{quote(oid, safe='')}", {"$select": USER_SELECT})

    def user_email(self, oid: str) -> str | None:
        return pick_email(self.user(oid))
