"""Email resolution (DESIGN.md): ID-token claim first, else one Graph call with an app-only
token from the B2C tenant, stored in PostgreSQL and shared; errors explained."""

from __future__ import annotations

from tests.integration.client import AppClient


def graph_calls(fake) -> tuple[int, int]:
    counters = fake.counters()
    return counters["client_credentials_token"], counters["graph"]


def test_email_from_the_id_token_needs_no_graph_call(client: AppClient, make_user, fake):
    user = make_user("local_with_emails_claim")
    client.sign_in(user)
    response = client.get("/api/me/email")
    assert response.json() == {"email": user["email"], "source": "id_token"}
    assert client.get("/api/me").json() == {"id": user["oid"], "name": user["name"], "email": user["email"]}
    assert graph_calls(fake) == (0, 0)


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


def test_social_account_email_comes_from_other_mails(client: AppClient, make_user, fake):
    user = make_user("social")
    client.sign_in(user)
    assert client.get("/api/me/email").json() == {"email": user["email"], "source": "graph"}
    assert graph_calls(fake)[1] == 1


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


def test_unknown_tenant_is_named(start_app, client_factory, make_user):
    wrong = start_app(AZURE_AD_B2C_TENANT_ID="00000000-0000-4000-8000-000000000000")
    client = client_factory(wrong)
    client.sign_in(make_user("local"))
    response = client.get("/api/me/email")
    assert response.status_code == 502
    assert response.json()["error"] == "unknown_tenant"


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
