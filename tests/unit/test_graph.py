import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.graph import GraphClient, GraphError, TokenError, pick_email
from devstack.fake_identity.tls import make_tls

TENANT = "5f6e7d8c-1a2b-4c3d-9e8f-0a1b2c3d4e5f"
CLIENT = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"


def test_mail_wins():
    assert pick_email({"mail": "a@x.com", "otherMails": ["b@x.com"]}) == "a@x.com"


def test_local_account_email_is_in_identities():
    user = {
        "mail": None,
        "otherMails": [],
        "identities": [
            {"signInType": "userPrincipalName", "issuer": "c.onmicrosoft.com", "issuerAssignedId": "u@c"},
            {"signInType": "emailAddress", "issuer": "c.onmicrosoft.com", "issuerAssignedId": "ann@x.com"},
        ],
    }
    assert pick_email(user) == "ann@x.com"


def test_social_account_email_is_in_other_mails():
    user = {
        "mail": None,
        "otherMails": ["bob@gmail.com"],
        "identities": [{"signInType": "federated", "issuer": "google.com", "issuerAssignedId": "1234"}],
    }
    assert pick_email(user) == "bob@gmail.com"


def test_no_email_at_all():
    assert pick_email({"mail": None, "otherMails": [], "identities": []}) is None


def graph() -> GraphClient:
    """A client nothing is sent from: its constructor does no I/O."""
    return GraphClient(
        tenant_id=TENANT,
        client_id=CLIENT,
        client_secret="not-a-real-secret",
        authority=f"https://login.microsoftonline.com/{TENANT}",
    )


@pytest.mark.parametrize(
    ("description", "code", "needle"),
    [
        (
            "AADSTS700016: Application with identifier 'x' was not found in the directory 'y'.",
            "wrong_tenant",
            "main directory's tenant id",
        ),
        ("AADSTS90002: Tenant 'y' not found.", "unknown_tenant", "does not exist"),
        ("AADSTS7000215: Invalid client secret provided.", "invalid_secret", "not its Secret ID"),
        (
            "AADSTS7000222: The provided client secret keys for app 'x' are expired.",
            "expired_secret",
            "has expired",
        ),
        ("AADSTS50049: Unknown or invalid instance.", "token_error", "AADSTS50049"),
    ],
)
def test_token_errors_are_translated(description, code, needle):
    error = graph().token_error({"error": "x", "error_description": description})
    assert isinstance(error, TokenError)
    assert error.code == code
    assert needle in error.detail  # for the log and the doctor
    # What users see names no tenant, no client and no AADSTS text.
    assert TENANT not in error.message and CLIENT not in error.message and "AADSTS" not in error.message
    assert "photoshare doctor" in error.message


def test_translation_reads_discovery_failures_too():
    text = 'OIDC Discovery failed ... {"error":"invalid_tenant","error_description":"AADSTS90002: ..."}'
    assert graph().token_error(text).code == "unknown_tenant"


def test_msal_discovery_failure_means_unknown_tenant():
    text = "Unable to get authority configuration for https://login.microsoftonline.com/x. Authority ..."
    assert graph().token_error(text).code == "unknown_tenant"


class _ThrottlingGraph(BaseHTTPRequestHandler):
    """A tenant's metadata and token endpoint, and a Graph that answers every call 429 with
    `Retry-After: 120`, recording when each Graph call arrived."""

    graph_calls: list[float]

    def log_message(self, format, *args):  # noqa: A002  # BaseHTTPRequestHandler's name
        pass

    def _json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        root = f"https://127.0.0.1:{self.server.server_address[1]}/{TENANT}"
        if self.path.endswith("/.well-known/openid-configuration"):
            self._json(
                200,
                {
                    "issuer": f"{root}/v2.0",
                    "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{root}/oauth2/v2.0/token",
                },
            )
        else:
            self.graph_calls.append(time.monotonic())
            error = {"error": {"code": "TooManyRequests", "message": "Too many requests."}}
            self._json(429, error, {"Retry-After": "120"})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._json(200, {"token_type": "Bearer", "expires_in": 3600, "access_token": "opaque-token"})


@pytest.fixture
def throttling_graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[float]]]:
    tls = make_tls(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.bundle_pem))
    calls: list[float] = []
    handler = type("Handler", (_ThrottlingGraph,), {"graph_calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_pem, tls.key_pem)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", calls
    server.shutdown()
    server.server_close()
    thread.join()


def test_every_retry_waits_at_most_the_retry_after_cap(throttling_graph):
    url, calls = throttling_graph
    retries, cap = 3, 1
    client = GraphClient(
        tenant_id=TENANT,
        client_id=CLIENT,
        client_secret="not-a-real-secret",
        authority=f"{url}/{TENANT}",
        graph_endpoint=url,
        max_retries=retries,
        max_retry_after=cap,
    )
    client.token()  # the token is not what is timed
    outcome: list[BaseException] = []
    bound = retries * cap + 1.0  # the waits, plus the calls themselves on loopback

    def lookup():
        try:
            client.user_email("a-user")
        except GraphError as exc:
            outcome.append(exc)

    started = time.monotonic()
    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(timeout=bound + 5)
    elapsed = time.monotonic() - started
    assert not worker.is_alive(), "the lookup waited for Graph's Retry-After instead of the cap"
    assert len(calls) == retries + 1
    gaps = [later - earlier for earlier, later in zip(calls, calls[1:], strict=False)]
    assert all(cap - 0.1 <= gap <= cap + 0.5 for gap in gaps), gaps
    assert elapsed <= bound
    (error,) = outcome
    assert isinstance(error, GraphError) and error.code == "graph_throttled" and error.retry_after == 120
