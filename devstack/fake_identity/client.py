"""A small HTTP client for a running fake: its control API and its sign-in pages (B2C's and
External ID's).

Tests and `make dev` tooling use this whether the fake runs in-process or as a CLI process,
and it fills the sign-in pages exactly as a browser would (GET the page, POST its forms, read
the one-time passcode from the page that stands in for the inbox).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import requests

from .state import PASSWORD_KINDS


@dataclass
class HtmlForm:
    form_id: str
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: dict[str, str] = field(default_factory=dict)  # value -> name


class _FormParser(HTMLParser):
    """Collect forms (hidden/text inputs, selects, submit buttons), the error banner and the
    passcode the fake inbox shows."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, HtmlForm] = {}
        self.error: str | None = None
        self.inbox_code: str | None = None
        self._form: HtmlForm | None = None
        self._select: str | None = None
        self._in_error = False
        self._in_code = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = HtmlForm(form_id=a.get("id", ""), action=a.get("action", ""))
            self.forms[self._form.form_id] = self._form
        elif tag == "input" and self._form is not None and a.get("name"):
            self._form.fields[a["name"]] = a.get("value", "")
        elif tag == "select" and self._form is not None:
            self._select = a.get("name")
        elif tag == "option" and self._form is not None and self._select:
            if "selected" in a or self._select not in self._form.fields:
                self._form.fields[self._select] = a.get("value", "")
        elif tag == "button" and self._form is not None and a.get("name"):
            self._form.buttons[a.get("value", "")] = a["name"]
        elif tag == "div" and "error" in a.get("class", "").split():
            self._in_error = True
            self.error = ""
        elif a.get("id") == "inbox-code":
            self._in_code = True
            self.inbox_code = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "div":
            self._in_error = False
        self._in_code = False

    def handle_data(self, data: str) -> None:
        if self._in_error:
            self.error = (self.error or "") + data
        if self._in_code:
            self.inbox_code = (self.inbox_code or "") + data.strip()


def parse_page(html: str) -> _FormParser:
    parser = _FormParser()
    parser.feed(html)
    return parser


@dataclass
class AuthorizeResult:
    """What submitting the sign-in page produced.

    `params` holds the response sent to the app in the redirect's query string (code+state, or
    error+error_description+state); `error_message` is the inline message when the page was
    shown again (wrong password, email taken...); `inbox_code` the one-time passcode a code
    page shows; `url` the page's address (the next form's base).
    """

    status_code: int
    location: str | None
    params: dict[str, str]
    error_message: str | None
    html: str
    inbox_code: str | None = None
    url: str = ""


class FakeIdentityClient:
    """Talks to a fake identity server at `base_url` (TLS verified via `verify`/env bundle)."""

    def __init__(
        self,
        base_url: str,
        *,
        verify: str | bool = True,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.session.verify = verify
        self.timeout = timeout

    # --- control API ---------------------------------------------------------------------
    def _call(self, method: str, path: str, json: Any = None) -> Any:
        response = self.session.request(
            method, f"{self.base_url}/_fake/{path}", json=json, timeout=self.timeout
        )
        if response.status_code >= 400:
            raise RuntimeError(
                f"fake identity control API {method} /_fake/{path} failed: "
                f"{response.status_code} {response.text}"
            )
        return response.json()

    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")

    def add_user(
        self,
        email: str,
        password: str | None = None,
        *,
        name: str | None = None,
        kind: str | None = None,
        mail: str | None = None,
        oid: str | None = None,
        directory: str = "b2c",
    ) -> dict[str, Any]:
        """Add a user to `directory` (`b2c` or `external`); `kind` defaults to the directory's
        first (`local_with_emails_claim`, `email_password`)."""
        body = {
            "email": email,
            "password": password,
            "name": name,
            "kind": kind,
            "mail": mail,
            "oid": oid,
            "directory": directory,
        }
        return self._call("POST", "users", {k: v for k, v in body.items() if v is not None})

    def users(self, directory: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", f"users?directory={directory}" if directory else "users")

    def register_redirect_uris(self, uris: list[str]) -> list[str]:
        """Register redirect URIs (and External ID sign-out URIs) on both app registrations;
        returns all registered. From the first one on, any other URI is refused."""
        return self._call("POST", "redirect_uris", {"uris": list(uris)})

    def redirect_uris(self) -> list[str]:
        return self._call("GET", "redirect_uris")

    def rotate_signing_key(self) -> list[str]:
        """Publish a new signing key beside the current ones and sign with it; returns the kids
        published, the new one first."""
        self.set_knobs(rotate_signing_key=True)
        return self.signing_kids()

    def retire_old_signing_keys(self) -> list[str]:
        """Unpublish every signing key but the current one; returns the kids published."""
        self.set_knobs(retire_old_signing_keys=True)
        return self.signing_kids()

    def signing_kids(self) -> list[str]:
        return self._call("GET", "signing_keys")

    def set_knobs(self, **knobs: Any) -> dict[str, Any]:
        return self._call("POST", "knobs", knobs)

    def knobs(self) -> dict[str, Any]:
        return self._call("GET", "knobs")

    def reset(self) -> dict[str, Any]:
        return self._call("POST", "reset", {})

    def counters(self) -> dict[str, int]:
        return self._call("GET", "counters")

    # --- the sign-in pages ---------------------------------------------------------------
    def submit_authorize(self, auth_uri: str, action: str = "signin", **fields: str) -> AuthorizeResult:
        """GET `auth_uri`, fill the form holding the `action` button, POST it (no redirects)."""
        page = self.session.get(auth_uri, timeout=self.timeout, allow_redirects=False)
        if page.status_code != 200:
            raise RuntimeError(f"sign-in page failed: {page.status_code} {page.text[:500]}")
        return self.submit_form(
            AuthorizeResult(200, None, {}, None, page.text, url=auth_uri), action, **fields
        )

    def submit_form(self, shown: AuthorizeResult, action: str, **fields: str) -> AuthorizeResult:
        """On a page a previous step showed, fill the form holding `action` and POST it."""
        form = next((f for f in parse_page(shown.html).forms.values() if action in f.buttons), None)
        if form is None:
            raise RuntimeError(
                f"the page has no {action!r} button"
                + (f" (it says: {shown.error_message})" if shown.error_message else "")
            )
        data = {**form.fields, **fields, form.buttons[action]: action}
        url = urljoin(shown.url, form.action)
        response = self.session.post(url, data=data, timeout=self.timeout, allow_redirects=False)
        return self._result(response, url)

    def sign_in(self, auth_uri: str, email: str, password: str) -> dict[str, str]:
        """Sign in with email and password; return the parameters sent to the app's redirect URI."""
        return self._expect_redirect(
            self.submit_authorize(auth_uri, "signin", email=email, password=password)
        )

    def sign_in_with_passcode(self, auth_uri: str, email: str) -> dict[str, str]:
        """External ID's email one-time passcode: ask for a code, read it from the page, enter it."""
        sent = self.submit_authorize(auth_uri, "otp_send", email=email)
        return self._expect_redirect(self._enter_code(sent, "otp_verify"))

    def sign_in_with_google(self, auth_uri: str, email: str) -> dict[str, str]:
        """External ID's "Sign in with Google": the fake Google page asks only for the address."""
        google = self.submit_authorize(auth_uri, "google")
        return self._expect_redirect(self.submit_form(google, "google_signin", email=email))

    def sign_in_as(self, auth_uri: str, user: dict[str, Any]) -> dict[str, str]:
        """Complete sign-in on either platform's page as `user` (a dict with `email`, `kind` and,
        for password kinds, `password`, as the control API and the test fixtures give them)."""
        kind = user.get("kind") or "local_with_emails_claim"
        if kind == "email_otp":
            return self.sign_in_with_passcode(auth_uri, user["email"])
        if kind == "google":
            return self.sign_in_with_google(auth_uri, user["email"])
        if kind not in PASSWORD_KINDS:
            raise ValueError(f"unknown user kind {kind!r}")
        return self.sign_in(auth_uri, user["email"], user["password"])

    def reset_password_in_flow(self, auth_uri: str, email: str, new_password: str) -> dict[str, str]:
        """External ID's "Forgot password?": get a code, enter it with a new password; the flow
        then continues to the app as a sign-in."""
        forgot = self.submit_authorize(auth_uri, "forgot")
        sent = self.submit_form(forgot, "reset_send", email=email)
        return self._expect_redirect(self._enter_code(sent, "reset_complete", new_password=new_password))

    def sign_up(
        self,
        auth_uri: str,
        *,
        name: str,
        email: str,
        password: str,
        kind: str = "local_with_emails_claim",
    ) -> dict[str, str]:
        """Create an account through the page, as a person would, and return the response.
        (External ID's page takes no `kind`, and verifies the address with a code first.)"""
        result = self.submit_authorize(
            auth_uri, "signup", name=name, email=email, password=password, kind=kind
        )
        if result.inbox_code:
            result = self._enter_code(result, "otp_verify")
        return self._expect_redirect(result)

    def _enter_code(self, shown: AuthorizeResult, action: str, **fields: str) -> AuthorizeResult:
        if not shown.inbox_code:
            raise RuntimeError(f"no code was sent: {shown.error_message or shown.status_code}")
        return self.submit_form(shown, action, code=shown.inbox_code, **fields)

    @staticmethod
    def _expect_redirect(result: AuthorizeResult) -> dict[str, str]:
        if not result.params:
            raise RuntimeError(f"sign-in page said: {result.error_message or result.status_code}")
        return result.params

    @staticmethod
    def _result(response: requests.Response, url: str) -> AuthorizeResult:
        location = response.headers.get("Location") if response.is_redirect else None
        params: dict[str, str] = {}
        error_message = inbox_code = None
        if location:
            params = dict(parse_qsl(urlsplit(location).query))
        elif response.status_code == 200:
            parsed = parse_page(response.text)
            error_message = parsed.error.strip() if parsed.error else None
            inbox_code = parsed.inbox_code or None
        return AuthorizeResult(
            status_code=response.status_code,
            location=location,
            params=params,
            error_message=error_message,
            html=response.text,
            inbox_code=inbox_code,
            url=url,
        )
