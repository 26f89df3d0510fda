"""Email resolution (DESIGN.md), on B2C and on External ID: the ID token's claim first, else
one Graph call with an app-only token from the identity tenant, stored in PostgreSQL and
shared; errors explained."""

from __future__ import annotations

import uuid

import pytest

from app.graph import GraphClient, GraphError
from app.settings import IdentitySettings
from tests.conftest import PLATFORMS
from tests.integration.client import AppClient

# The tests about the identity platform run on both; Graph's own behaviour (throttling, the
# shared token, the route's authorization) is the same whichever tenant the token is from.
both = pytest.mark.parametrize("platform", PLATFORMS, indirect=True)
b2c = pytest.mark.parametrize("platform", ["b2c"], indirect=True)
external_id = pytest.mark.parametrize("platform", ["external_id"], indirect=True)


def graph_calls(fake) -> tuple[int, int]:
    counters = fake.counters()
    return counters["client_credentials_token"], counters["graph"]


@both
def test_email_from_the_id_token_needs_no_graph_call(client: AppClient, make_user, fake):
    user = make_user("local_with_emails_claim")
    client.sign_in(user)
    response = client.get("/api/me/email")
    assert response.json() == {"email": user["email"], "source": "id_token"}
    assert client.get("/api/me").json() == {"id": user["oid"], "name": user["name"], "email": user["email"]}
    assert graph_calls(fake) == (0, 0)


@both
def test_local_account_without_the_claim_is_found_in_identities(client: AppClient, make_user, fake):
    user = make_user("local")
    client.sign_in(user)
    assert client.get("/api/me/email").json() == {"email": user["email"], "source": "graph"}
    tokens, calls = graph_calls(fake)
    assert calls == 1 and tokens <= 1
    # Stored in PostgreSQL: later requests (any instance) make no Graph call.
    assert client.get("/api/me/email").json()["email"] == user["email"]
    assert client.get(f"/get-user-email/{user['oid']}").json() == {"email": user["email"]}
    assert graph_calls(fake)[1] == 1


@both
def test_social_account_email_comes_from_other_mails(client: AppClient, make_user, fake):
    user = make_user("social")
    client.sign_in(user)
    assert client.get("/api/me/email").json() == {"email": user["email"], "source": "graph"}
    assert graph_calls(fake)[1] == 1


@external_id
def test_one_time_passcode_account_email_is_its_mail_identity(client: AppClient, make_user, fake):
    """External ID's email one-time passcode: a `federated` identity whose issuer is `mail`."""
    user = make_user("email_otp")
    client.sign_in(user)
    assert client.get("/api/me/email").json() == {"email": user["email"], "source": "graph"}
    assert graph_calls(fake)[1] == 1


@external_id
def test_the_workforce_tenant_id_instead_of_the_external_one_is_named(start_app, fake, identity):
    """The classic mistake with External ID: the company's workforce tenant id configured as the
    external tenant's. The sign-in page names no tenant, so the app finds the right id by the
    tenant's name, says so in its log, and tells the user only that sign-in is misconfigured."""
    main = identity.config.main_tenant_id
    wrong = start_app(
        EXTERNAL_ID_TENANT_ID=main, EXTERNAL_ID_AUTHORITY=f"{identity.external_id_url}/{main}/v2.0"
    )
    response = AppClient(wrong.url, fake).get("/auth/login")
    assert response.status_code == 503
    assert "Sign-in is misconfigured" in response.text and "photoshare doctor" in response.text
    for private in ("AADSTS", main, identity.config.external_tenant_id, identity.config.external_client_id):
        assert private not in response.text
    log = wrong.log()
    assert f"EXTERNAL_ID_TENANT_ID is {main}: you probably used your workforce tenant's id" in log
    assert f"set EXTERNAL_ID_TENANT_ID={identity.config.external_tenant_id}, the external tenant's id" in log
    assert "Entra admin center" in log and "switch to the external tenant" in log


def test_one_app_token_serves_many_users(client_factory, make_user, fake):
    for _ in range(3):
        c = client_factory()
        c.sign_in(make_user("local"))
        assert c.get("/api/me/email").json()["source"] == "graph"
    tokens, calls = graph_calls(fake)
    assert calls == 3
    assert tokens <= 2  # at most one per gunicorn worker process, never one per call


def test_the_source_articles_route_only_answers_for_yourself(signed_in: AppClient, make_user):
    other = make_user()
    response = signed_in.get(f"/get-user-email/{other['oid']}")
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert other["email"] not in response.text


def test_graph_throttling_is_retried_then_succeeds(client: AppClient, make_user, fake):
    user = make_user("local")
    client.sign_in(user)
    fake.set_knobs(graph_throttle={"count": 2, "retry_after": 1, "status": 429})
    response = client.get("/api/me/email")
    assert response.status_code == 200
    assert response.json() == {"email": user["email"], "source": "graph"}
    assert graph_calls(fake)[1] == 3  # two 429s honoured, then the answer


def test_graph_throttling_past_the_budget_is_a_clear_503(client: AppClient, make_user, fake):
    client.sign_in(make_user("local"))
    fake.set_knobs(graph_throttle={"count": 50, "retry_after": 1, "status": 503})
    response = client.get("/api/me/email")
    assert response.status_code == 503
    assert response.json()["error"] == "graph_throttled"
    assert response.headers.get("Retry-After") == "1"
    assert graph_calls(fake)[1] == 4  # the first try and three retries, no more
    # Uploads do not depend on Graph.
    from tests.integration.client import make_image

    assert client.upload(("a.png", make_image("PNG"), "image/png")).status_code == 201


@b2c
def test_main_tenant_id_instead_of_the_b2c_one_is_named(start_app, client_factory, make_user, identity):
    """The source article's mistake: the app-only token asked from the company's main tenant."""
    wrong = start_app(AZURE_AD_B2C_TENANT_ID=identity.config.main_tenant_id)
    client = client_factory(wrong)
    client.sign_in(make_user("local"))  # sign-in itself does not use the tenant id
    response = client.get("/api/me/email")
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "wrong_tenant"
    assert "wrong directory" in body["message"] and "photoshare doctor" in body["message"]
    # Ids and AADSTS text go to the log (and the doctor), never to the user.
    for private in ("AADSTS", identity.config.main_tenant_id, identity.config.client_id):
        assert private not in response.text
    assert identity.config.client_secret not in response.text
    log = wrong.log()
    assert "AADSTS700016" in log and "main directory's tenant id" in log and "B2C directory's id" in log
    assert identity.config.client_secret not in log


@b2c
def test_unknown_tenant_is_named(start_app, client_factory, make_user):
    wrong = start_app(AZURE_AD_B2C_TENANT_ID="00000000-0000-4000-8000-000000000000")
    client = client_factory(wrong)
    client.sign_in(make_user("local"))
    response = client.get("/api/me/email")
    assert response.status_code == 502
    assert response.json()["error"] == "unknown_tenant"


@both
def test_expired_secret_is_named(make_user, fake, start_app, client_factory):
    fresh = start_app()  # its own process: no token cached yet
    c = client_factory(fresh)
    c.sign_in(make_user("local"))
    fake.set_knobs(secret_expired=True)
    response = c.get("/api/me/email")
    assert response.status_code == 502
    assert response.json()["error"] == "expired_secret"


def test_token_endpoint_down_is_a_clear_503_and_uploads_still_work(
    start_app, client_factory, make_user, fake
):
    fresh = start_app()  # no token cached yet
    c = client_factory(fresh)
    c.sign_in(make_user("local"))
    fake.set_knobs(token_endpoint_down=True)
    response = c.get("/api/me/email")
    assert response.status_code == 503
    assert response.json()["error"] == "token_endpoint_unavailable"
    from tests.integration.client import make_image

    assert c.upload(("a.png", make_image("PNG"), "image/png")).status_code == 201


@both
def test_a_user_of_the_other_directory_is_not_found(platform_envs, platform, fake):
    """Graph answers a token's own tenant only: the other directory's user is a 404 there, as
    Graph answers for any id the tenant does not hold."""
    graph = GraphClient.from_settings(IdentitySettings.from_env(platform_envs[platform.name]))
    other = "b2c" if platform.external_id else "external"
    stranger = fake.add_user(f"stranger-{uuid.uuid4().hex[:10]}@example.com", "pw", directory=other)
    with pytest.raises(GraphError) as raised:
        graph.user_email(stranger["oid"])
    assert raised.value.code == "user_not_found" and raised.value.status == 404
    assert fake.counters()["graph"] == 1
