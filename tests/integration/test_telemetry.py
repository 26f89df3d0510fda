"""Telemetry as Application Insights receives it: an app instance whose connection string points
at a local ingestion endpoint, driven through sign-in, upload, gallery and email; what arrives
names the request and each dependency, and carries no secret and no query string."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from devstack.fake_identity.server import FakeIdentityServer
from devstack.fake_ingestion import FakeIngestion
from tests.integration.client import make_image

REQUEST = "Microsoft.ApplicationInsights.Request"
DEPENDENCY = "Microsoft.ApplicationInsights.RemoteDependency"
MESSAGE = "Microsoft.ApplicationInsights.Message"


@pytest.fixture(scope="module")
def ingestion(identity: FakeIdentityServer) -> Iterator[FakeIngestion]:
    # The fake identity server's certificate: the app already trusts its CA (REQUESTS_CA_BUNDLE).
    with FakeIngestion(tls=identity.tls) as server:  # type: ignore[arg-type]
        yield server


@pytest.fixture(scope="module")
def site(make_site: Callable[..., Any], ingestion: FakeIngestion) -> Iterator[Any]:
    """Stopped before `ingestion`, which still answers its last flush."""
    with make_site(
        workers=1,
        APPLICATIONINSIGHTS_CONNECTION_STRING=ingestion.connection_string(str(uuid.uuid4())),
        # Batches leave every 200 ms instead of every 5 s (spans) and 5 s (logs).
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
    ) as site:
        yield site


def base(envelope: dict) -> dict:
    return envelope.get("data", {}).get("baseData", {})


def requests_named(envelopes: list[dict], name: str) -> list[dict]:
    return [base(e) for e in envelopes if e.get("name") == REQUEST and base(e).get("name") == name]


def dependencies(envelopes: list[dict]) -> list[dict]:
    return [base(e) for e in envelopes if e.get("name") == DEPENDENCY]


def postgres(deps: list[dict]) -> list[dict]:
    return [d for d in deps if d.get("type") == "postgresql"]


def blob(deps: list[dict], account: str) -> list[dict]:
    """Blob Storage calls: azure-core's spans, or the HTTP call to the account's endpoint."""
    return [d for d in deps if d.get("type") == "Microsoft.Storage" or account in str(d.get("data", ""))]


def http_to(deps: list[dict], host: str, path: str) -> list[dict]:
    return [
        d
        for d in deps
        if d.get("type") == "HTTP" and host in str(d.get("target", "")) and path in str(d.get("data", ""))
    ]


def summary(envelopes: list[dict]) -> str:
    return json.dumps(
        sorted({f"{e.get('name')}: {base(e).get('type', '')} {base(e).get('name', '')}" for e in envelopes}),
        indent=1,
    )


def storage_account_key(connection_string: str) -> str:
    parts = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    return parts["AccountKey"]


def test_requests_and_dependencies_arrive_without_secrets_or_query_strings(
    site, ingestion: FakeIngestion, client_factory, make_user, identity: FakeIdentityServer, app_env
):
    ingestion.clear()
    client = client_factory(site)
    client.sign_in(make_user("local"))  # no emails claim: the app asks Graph
    uploaded = client.upload(("a.jpg", make_image(), "image/jpeg"))
    assert uploaded.status_code == 201, uploaded.text
    [photo] = client.photos()["photos"]
    assert client.get(f"/photos/{photo['id']}").status_code == 302
    email = client.get("/api/me/email")
    assert email.status_code == 200 and email.json()["source"] == "graph", email.text

    account = urlsplit(photo["url"]).path.split("/")[1]  # Azurite: /<account>/<container>/…
    fake_host = urlsplit(identity.base_url).netloc
    tenant = app_env["AZURE_AD_B2C_TENANT_ID"]

    def arrived(envelopes: list[dict]) -> bool:
        deps = dependencies(envelopes)
        return bool(
            requests_named(envelopes, "POST /photos")
            and postgres(deps)
            and blob(deps, account)
            and http_to(deps, fake_host, f"/{tenant}/oauth2/v2.0/token")
            and http_to(deps, fake_host, "/v1.0/users/")
        )

    envelopes = ingestion.wait_for(arrived, timeout=20)
    assert arrived(envelopes), f"received only:\n{summary(envelopes)}"
    [posted] = requests_named(envelopes, "POST /photos")
    assert posted["responseCode"] == "201" and posted["success"] is True
    assert urlsplit(posted["url"]).path == "/photos"
    assert any(
        d.get("data", "").lstrip().upper().startswith("INSERT") for d in postgres(dependencies(envelopes))
    )

    raw = "\n".join(body.decode("utf-8") for body in ingestion.raw_bodies())
    forbidden = {
        "the client secret": app_env["AZURE_AD_B2C_CLIENT_SECRET"],
        "SECRET_KEY": app_env["SECRET_KEY"],
        "the storage account key": storage_account_key(app_env["AZURE_STORAGE_CONNECTION_STRING"]),
    }
    password = urlsplit(app_env["DATABASE_URL"]).password
    if password:
        forbidden["the database password"] = unquote(password)
    for what, value in forbidden.items():
        assert value not in raw, f"{what} was sent to Application Insights"
    for marker in ("sig=", "code=", "client_secret", "id_token"):
        assert marker not in raw, f"{marker!r} was sent to Application Insights"
    assert not re.search(r"eyJ[\w-]{10,}", raw), "a token was sent to Application Insights"
    urls = [base(e).get("url", "") for e in envelopes] + [
        base(e).get("data", "") for e in envelopes if base(e).get("type") in ("HTTP", "Microsoft.Storage")
    ]
    assert [u for u in urls if "?" in u] == []
    assert not re.search(r"https?://[^\s\"]*\?", raw), "a URL with its query string was sent"


def test_log_lines_are_json_with_the_request_id_on_stdout_and_in_application_insights(
    site, ingestion: FakeIngestion, client_factory, make_user
):
    client = client_factory(site)
    client.sign_in(make_user())
    refused = client.request(
        "POST",
        "/photos",
        files=[("file", ("a.png", make_image("PNG"), "image/png"))],
        headers={
            "X-CSRFToken": client.csrf_token(),
            "Origin": "https://evil.example",
            "Accept": "application/json",
        },
    )
    assert refused.status_code == 403, refused.text
    request_id = refused.headers["X-Request-ID"]
    assert re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", request_id)

    def logged(records: list[dict]) -> list[dict]:
        return [r for r in records if r.get("request_id") == request_id]

    def access_lines() -> list[dict]:
        lines = [json.loads(line) for line in site.log().splitlines() if line.startswith("{")]
        return [r for r in logged(lines) if r.get("logger") == "gunicorn.access"]

    # gunicorn writes the access line once the response is sent, after the client has it.
    deadline = time.monotonic() + 5
    while not access_lines() and time.monotonic() < deadline:
        time.sleep(0.05)
    [access] = access_lines()
    assert (access["method"], access["path"], access["status"]) == ("POST", "/photos", 403)
    lines = [json.loads(line) for line in site.log().splitlines() if line.startswith("{")]
    app_lines = [r for r in logged(lines) if r.get("logger", "").startswith("app.")]
    assert app_lines and app_lines[0]["level"] == "WARNING" and "evil.example" in app_lines[0]["message"]
    # Every line the app or gunicorn printed is JSON.
    assert [line for line in site.log().splitlines() if line.strip() and not line.startswith("{")] == []

    def in_insights(envelopes: list[dict]) -> bool:
        messages = [base(e) for e in envelopes if e.get("name") == MESSAGE]
        refusals = [r for r in requests_named(envelopes, "POST /photos") if r.get("responseCode") == "403"]
        return any(m.get("properties", {}).get("request_id") == request_id for m in messages) and any(
            r.get("properties", {}).get("request_id") == request_id for r in refusals
        )

    envelopes = ingestion.wait_for(in_insights, timeout=20)
    assert in_insights(envelopes), f"received only:\n{summary(envelopes)}"


EXCEPTION = "Microsoft.ApplicationInsights.Exception"


def test_an_unexpected_error_arrives_as_an_exception(
    start_app, services, ingestion: FakeIngestion, fresh_database: str, client_factory, make_user
):
    """A real fault, not a patched one: the photos table disappears under a running instance
    (its own database), so listing fails inside psycopg; the user gets a plain 500 and
    Application Insights gets the exception with its type."""
    import psycopg

    site = start_app(
        workers=1,
        **services.app_database(fresh_database),
        APPLICATIONINSIGHTS_CONNECTION_STRING=ingestion.connection_string(str(uuid.uuid4())),
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
    )
    client = client_factory(site)
    client.sign_in(make_user())
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("DROP TABLE photos")
    response = client.get("/api/photos")
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "message": "Something went wrong on our side."}
    request_id = response.headers["X-Request-ID"]

    def exceptions(envelopes: list[dict]) -> list[dict]:
        return [base(e) for e in envelopes if e.get("name") == EXCEPTION]

    def failed(envelopes: list[dict]) -> list[dict]:
        return [
            r
            for r in requests_named(envelopes, "GET /api/photos")
            if r.get("responseCode") == "500" and r.get("properties", {}).get("request_id") == request_id
        ]

    def arrived(envelopes: list[dict]) -> bool:
        return bool(failed(envelopes)) and any(
            d.get("properties", {}).get("request_id") == request_id
            and any("UndefinedTable" in x.get("typeName", "") for x in d.get("exceptions", []))
            for d in exceptions(envelopes)
        )

    envelopes = ingestion.wait_for(arrived, timeout=20)
    assert arrived(envelopes), f"received only:\n{summary(envelopes)}"
    assert failed(envelopes)[0]["success"] is False
