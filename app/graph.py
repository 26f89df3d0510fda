"""Microsoft Graph with an app-only token from the **B2C** directory.

The token comes from `https://{AZURE_AUTHORITY_HOST}/{AZURE_AD_B2C_TENANT_ID}`; asking the
company's main tenant instead is the classic mistake, and the errors it produces are turned
into a sentence that says so (app/identity_errors.py). MSAL caches the token and reuses it
until it nears expiry: one token request per process per token lifetime, none at start-up.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Self
from urllib.parse import quote, urlsplit

import msal
import requests
from flask import Flask, current_app
from msal.exceptions import MsalServiceError
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from app.identity_errors import Diagnosis, diagnose, token_error_code
from app.settings import B2C_DIRECTORY, Directory, IdentitySettings

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
        diagnosis: Diagnosis | None = None,
    ):
        super().__init__(detail or message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.detail = detail or message
        self.diagnosis = diagnosis  # the catalogue's cause and fix, when the error is in it

    @classmethod
    def diagnosed(cls, diagnosis: Diagnosis, *, status: int = 502) -> Self:
        return cls(
            diagnosis.code, diagnosis.shown, status=status, detail=diagnosis.detail, diagnosis=diagnosis
        )


class TokenError(GraphError):
    """The app-only token could not be acquired (usually configuration)."""


def pick_email(user: dict[str, Any]) -> str | None:
    """`mail`, else an email sign-in identity, else a one-time-passcode identity, else `otherMails[0]`."""
    return pick_email_with_source(user)[0]


def pick_email_with_source(user: dict[str, Any]) -> tuple[str | None, str | None]:
    """`pick_email` plus the field it came from, for diagnostics: `mail`; `identities` (an
    `emailAddress…` sign-in: B2C allows emailAddress1..3); `identities:mail` (a `federated`
    identity issued by `mail`: External ID's email one-time passcode); `otherMails`."""
    if user.get("mail"):
        return str(user["mail"]), "mail"
    identities = [i for i in user.get("identities") or [] if i.get("issuerAssignedId")]
    for identity in identities:
        if str(identity.get("signInType", "")).startswith("emailAddress"):
            return str(identity["issuerAssignedId"]), "identities"
    for identity in identities:
        if identity.get("signInType") == "federated" and identity.get("issuer") == "mail":
            return str(identity["issuerAssignedId"]), "identities:mail"
    other = user.get("otherMails") or []
    return (str(other[0]), "otherMails") if other else (None, None)


class GraphClient:
    """App-only Graph calls for one identity directory."""

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        authority: str,
        graph_endpoint: str = "https://graph.microsoft.com",
        scope: str = "https://graph.microsoft.com/.default",
        directory: Directory = B2C_DIRECTORY,
        timeout: float = 10.0,
        max_retries: int = 3,
        max_retry_after: int = 10,
    ) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._client_secret = client_secret
        self.authority = authority
        self.authority_host = "{0.scheme}://{0.netloc}".format(urlsplit(authority))
        self.graph_endpoint = graph_endpoint
        self.scope = scope
        self.directory = directory
        self.timeout = timeout
        retry = Retry(
            total=max_retries,
            connect=1,
            backoff_factor=0.5,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            retry_after_max=max_retry_after,
            raise_on_status=False,
        )
        self.session = requests.Session()
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self._msal: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: IdentitySettings, *, timeout: float = 10.0, max_retry_after: int = 10
    ) -> GraphClient:
        return cls(
            tenant_id=settings.tenant_id,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            authority=settings.graph_authority,
            graph_endpoint=settings.graph_endpoint,
            scope=settings.graph_scope,
            directory=settings.directory,
            timeout=timeout,
            max_retry_after=max_retry_after,
        )

    def init_app(self, app: Flask) -> None:
        app.extensions["graph"] = self

    def diagnose(self, code: str, **facts: Any) -> Diagnosis:
        """The catalogue's cause and fix for `code`, with this client's ids filled in."""
        return diagnose(
            code,
            self.directory,
            client_id=self.client_id,
            tenant_id=self.tenant_id,
            authority_host=self.authority_host,
            graph_authority=self.authority,
            graph_endpoint=self.graph_endpoint,
            **facts,
        )

    def token_error(self, result: dict[str, Any] | str) -> TokenError:
        """A token endpoint's (or MSAL's) refusal, explained by the catalogue."""
        code, description = token_error_code(result)
        return TokenError.diagnosed(self.diagnose(code, description=description))

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
            raise self.token_error(f"{exc} {exc.__context__ or ''}") from None
        except (requests.RequestException, MsalServiceError) as exc:  # unreachable, or 5xx
            diagnosis = self.diagnose("token_endpoint_unavailable", description=type(exc).__name__)
            raise TokenError.diagnosed(diagnosis, status=503) from None
        if "access_token" not in result:
            raise self.token_error(result)
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
            raise GraphError(
                "user_not_found", f"The user does not exist in the {self.directory.kind}.", status=404
            )
        if response.status_code == 403:
            raise GraphError.diagnosed(self.diagnose("graph_forbidden"))
        if response.status_code == 401:
            raise GraphError.diagnosed(self.diagnose("graph_unauthorized", description=code))
        log.warning("graph error %s %s: %s", response.status_code, code, message)
        raise GraphError("graph_error", f"Microsoft Graph answered {response.status_code} {code}.")

    def user(self, oid: str) -> dict[str, Any]:
        return self.get(f"users/{quote(oid, safe='')}", {"$select": USER_SELECT})

    def user_email(self, oid: str) -> str | None:
        return pick_email(self.user(oid))


def get_graph() -> GraphClient:
    graph: GraphClient = current_app.extensions["graph"]
    return graph
