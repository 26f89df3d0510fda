"""Graph v1.0 users with an app-only token: B2C shapes ($select, null mail, identities,
otherMails), Graph's error bodies, and the throttling/failure knobs; the app's own application
object and its client secret's dates."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests

from devstack.fake_identity import FakeIdentityClient, FakeIdentityServer
from devstack.fake_identity.tokens import app_only_access_token_claims
from tests.fake.helpers import GRAPH_SCOPE, User, entra_app, graph_token

SELECT = "mail,otherMails,identities"


def get_user(
    fake: FakeIdentityServer, token: str, user_id: str, select: str | None = SELECT
) -> requests.Response:
    params = {"$select": select} if select else None
    return requests.get(
        f"{fake.base_url}/v1.0/users/{user_id}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.fixture
def token(fake: FakeIdentityServer) -> str:
    return graph_token(fake)


def test_select_is_honoured(fake: FakeIdentityServer, token: str, user: User) -> None:
    body = get_user(fake, token, user.oid).json()
    assert list(body) == ["@odata.context", "mail", "otherMails", "identities"]
    assert body["@odata.context"] == f"{fake.base_url}/v1.0/$metadata#users({SELECT})/$entity"


def test_local_account_has_null_mail_and_email_in_identities(
    fake: FakeIdentityServer, token: str, make_user: Callable[..., User]
) -> None:
    user = make_user("local")
    domain = fake.config.b2c_domain
    body = get_user(fake, token, user.oid).json()
    assert body["mail"] is None
    assert body["otherMails"] == []
    assert body["identities"] == [
        {"signInType": "emailAddress", "issuer": domain, "issuerAssignedId": user.email},
        {"signInType": "userPrincipalName", "issuer": domain, "issuerAssignedId": f"{user.oid}@{domain}"},
    ]


def test_social_account_has_email_in_other_mails(
    fake: FakeIdentityServer, token: str, make_user: Callable[..., User]
) -> None:
    user = make_user("social")
    body = get_user(fake, token, user.oid).json()
    assert body["mail"] is None
    assert body["otherMails"] == [user.email]
    federated = body["identities"][0]
    assert federated["signInType"] == "federated" and federated["issuer"] == "google.com"
    assert federated["issuerAssignedId"] != user.email
    assert all(i["signInType"] != "emailAddress" for i in body["identities"])


def test_explicit_mail(fake: FakeIdentityServer, token: str, make_user: Callable[..., User]) -> None:
    user = make_user("local", mail="work@example.org")
    assert get_user(fake, token, user.oid).json()["mail"] == "work@example.org"


def test_default_projection_and_lookup_by_upn(fake: FakeIdentityServer, token: str, user: User) -> None:
    upn = f"{user.oid}@{fake.config.b2c_domain}"
    body = get_user(fake, token, upn, select=None).json()
    assert body["id"] == user.oid and body["userPrincipalName"] == upn
    assert body["displayName"] == user.name and body["mail"] is None
    assert "identities" not in body and "otherMails" not in body
    assert body["@odata.context"].endswith("#users/$entity")


def test_unknown_user_is_404(fake: FakeIdentityServer, token: str) -> None:
    missing = str(uuid.uuid4())
    response = get_user(fake, token, missing)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "Request_ResourceNotFound"
    assert error["message"] == (
        f"Resource '{missing}' does not exist or one of its queried reference-property objects "
        "are not present."
    )
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}


def test_unknown_select_property_is_400(fake: FakeIdentityServer, token: str, user: User) -> None:
    response = get_user(fake, token, user.oid, select="mail,nope")
    assert response.status_code == 400
    assert "'nope'" in response.json()["error"]["message"]


def test_list_users_with_top(fake: FakeIdentityServer, token: str, make_user: Callable[..., User]) -> None:
    make_user(), make_user()
    response = requests.get(
        f"{fake.base_url}/v1.0/users", params={"$top": "1"}, headers={"Authorization": f"Bearer {token}"}
    )
    body = response.json()
    assert len(body["value"]) == 1 and "@odata.nextLink" in body
    next_page = requests.get(body["@odata.nextLink"], headers={"Authorization": f"Bearer {token}"}).json()
    assert next_page["value"][0]["id"] != body["value"][0]["id"]


# --- authentication and authorization ------------------------------------------------------------


def _forged(fake: FakeIdentityServer, **changes: object) -> str:
    cfg = fake.config
    claims = app_only_access_token_claims(
        tenant_id=cfg.b2c_tenant_id,
        client_id=cfg.client_id,
        resource="https://graph.microsoft.com",
        roles=["User.Read.All"],
        lifetime=3600,
    )
    return fake.fake.key.sign({**claims, **changes})


@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (lambda fake: "", "Access token is empty."),
        (lambda fake: "not-a-jwt", "Access token validation failure."),
        (
            lambda fake: _forged(fake, exp=int(time.time()) - 600),
            "Lifetime validation failed, the token is expired.",
        ),
        (
            lambda fake: _forged(fake, aud="api://something-else"),
            "Access token validation failure. Invalid audience.",
        ),
        (
            lambda fake: _forged(fake, tid=fake.config.main_tenant_id),
            "Access token validation failure. Invalid issuer.",
        ),
        (
            lambda fake: fake.fake.key.sign_with_wrong_key({"aud": "https://graph.microsoft.com"}),
            "Access token validation failure.",
        ),
    ],
    ids=["missing", "garbage", "expired", "audience", "tenant", "signature"],
)
def test_bad_tokens_are_401(
    fake: FakeIdentityServer, user: User, make_token: Callable[[FakeIdentityServer], str], message: str
) -> None:
    response = get_user(fake, make_token(fake), user.oid)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert response.json()["error"]["message"] == message


@pytest.mark.parametrize(
    "resource", ["https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000", "{base}"]
)
def test_graph_accepts_its_resource_ids_and_its_own_origin(
    fake: FakeIdentityServer, user: User, resource: str
) -> None:
    """Apps may derive the scope from GRAPH_ENDPOINT (`{endpoint}/.default`), here the fake."""
    token = _forged(fake, aud=resource.format(base=fake.base_url))
    assert get_user(fake, token, user.oid).status_code == 200


@pytest.mark.parametrize(
    ("roles", "status"), [([], 403), (["Mail.Send"], 403), (["Directory.Read.All"], 200)]
)
def test_roles_are_required(
    fake: FakeIdentityServer, control: FakeIdentityClient, user: User, roles: list[str], status: int
) -> None:
    control.set_knobs(roles=roles)
    response = get_user(fake, graph_token(fake), user.oid)
    assert response.status_code == status
    if status == 403:
        error = response.json()["error"]
        assert error["code"] == "Authorization_RequestDenied"
        assert error["message"] == "Insufficient privileges to complete the operation."


# --- knobs and counters --------------------------------------------------------------------------


def test_throttle_gives_429_with_retry_after_then_success(
    fake: FakeIdentityServer, control: FakeIdentityClient, token: str, user: User
) -> None:
    control.set_knobs(graph_throttle={"count": 2, "retry_after": 3})
    for _ in range(2):
        response = get_user(fake, token, user.oid)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"
        assert response.json()["error"]["code"] == "TooManyRequests"
    assert get_user(fake, token, user.oid).status_code == 200
    assert control.counters()["graph"] == 3
    assert control.knobs()["graph_throttle"] is None


def test_throttle_can_be_503(
    fake: FakeIdentityServer, control: FakeIdentityClient, token: str, user: User
) -> None:
    control.set_knobs(graph_throttle={"count": 1, "retry_after": 1, "status": 503})
    response = get_user(fake, token, user.oid)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "ServiceUnavailable"


def test_graph_fail_gives_500(
    fake: FakeIdentityServer, control: FakeIdentityClient, token: str, user: User
) -> None:
    control.set_knobs(graph_fail={"count": 1, "status": 500})
    response = get_user(fake, token, user.oid)
    assert response.status_code == 500 and "Retry-After" not in response.headers
    assert "code" in response.json()["error"]
    assert get_user(fake, token, user.oid).status_code == 200


def test_graph_counter_counts_every_request(
    fake: FakeIdentityServer, control: FakeIdentityClient, token: str, user: User
) -> None:
    get_user(fake, token, user.oid)
    get_user(fake, "", user.oid)
    get_user(fake, token, str(uuid.uuid4()))
    counters = control.counters()
    assert counters["graph"] == 3
    assert counters["client_credentials_token"] == 1


# --- the external tenant: its own users, their shapes -----------------------------------------------


@pytest.fixture
def external_token(fake: FakeIdentityServer) -> str:
    return graph_token(fake, "external")


def test_external_email_password_user_shape(
    fake: FakeIdentityServer, external_token: str, make_external_user: Callable[..., User]
) -> None:
    user = make_external_user("email_password")
    domain = fake.config.external_domain
    body = get_user(fake, external_token, user.oid, select=f"{SELECT},userPrincipalName,creationType").json()
    upn = body["userPrincipalName"]
    assert upn.endswith(f"@{domain}") and str(uuid.UUID(upn.split("@")[0])) != user.oid
    assert body["mail"] is None and body["otherMails"] == []
    assert body["creationType"] == "LocalAccount"
    assert body["identities"] == [
        {"signInType": "emailAddress", "issuer": domain, "issuerAssignedId": user.email},
        {"signInType": "userPrincipalName", "issuer": domain, "issuerAssignedId": upn},
    ]


def test_external_email_otp_user_shape(
    fake: FakeIdentityServer, external_token: str, make_external_user: Callable[..., User]
) -> None:
    user = make_external_user("email_otp")
    body = get_user(fake, external_token, user.oid, select=f"{SELECT},userPrincipalName").json()
    assert body["mail"] is None and body["otherMails"] == []
    assert body["identities"] == [
        {"signInType": "federated", "issuer": "mail", "issuerAssignedId": user.email},
        {
            "signInType": "userPrincipalName",
            "issuer": fake.config.external_domain,
            "issuerAssignedId": body["userPrincipalName"],
        },
    ]


def test_external_google_user_shape(
    fake: FakeIdentityServer, external_token: str, make_external_user: Callable[..., User]
) -> None:
    user = make_external_user("google")
    body = get_user(fake, external_token, user.oid).json()
    assert body["mail"] is None and body["otherMails"] == [user.email]
    federated, upn = body["identities"]
    assert federated["signInType"] == "federated" and federated["issuer"] == "google.com"
    assert federated["issuerAssignedId"].isdigit() and federated["issuerAssignedId"] != user.email
    assert upn["signInType"] == "userPrincipalName"


def test_external_mail_when_set(
    fake: FakeIdentityServer, external_token: str, make_external_user: Callable[..., User]
) -> None:
    user = make_external_user("email_otp", mail="otp@example.org")
    assert get_user(fake, external_token, user.oid).json()["mail"] == "otp@example.org"


def test_each_tenant_sees_only_its_own_users(
    fake: FakeIdentityServer,
    token: str,
    external_token: str,
    user: User,
    make_external_user: Callable[..., User],
) -> None:
    external = make_external_user()
    for bearer, other in ((token, external.oid), (external_token, user.oid)):
        response = get_user(fake, bearer, other)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "Request_ResourceNotFound"
        assert response.json()["error"]["message"].startswith(f"Resource '{other}' does not exist")
    assert get_user(fake, external_token, external.oid).status_code == 200

    for bearer, directory in ((token, "b2c"), (external_token, "external")):
        listed = requests.get(
            f"{fake.base_url}/v1.0/users",
            params={"$top": "999"},
            headers={"Authorization": f"Bearer {bearer}"},
        ).json()["value"]
        expected = {u["oid"] for u in FakeIdentityClient(fake.base_url).users(directory)}
        assert {u["id"] for u in listed} == expected


def test_external_upn_lookup(
    fake: FakeIdentityServer, external_token: str, token: str, make_external_user: Callable[..., User]
) -> None:
    user = make_external_user()
    upn = get_user(fake, external_token, user.oid, select="userPrincipalName").json()["userPrincipalName"]
    assert get_user(fake, external_token, upn, select=None).json()["id"] == user.oid
    assert get_user(fake, token, upn).status_code == 404


@pytest.mark.parametrize(("roles", "status"), [(["User.Read.All"], 200), ([], 403)])
def test_opaque_access_tokens_are_served_and_honoured(
    fake: FakeIdentityServer, control: FakeIdentityClient, user: User, roles: list[str], status: int
) -> None:
    """Microsoft documents access tokens as opaque to clients; with the knob they are."""
    control.set_knobs(opaque_access_token=True, roles=roles)
    opaque = graph_token(fake)
    with pytest.raises(jwt.DecodeError):
        jwt.get_unverified_header(opaque)
    response = get_user(fake, opaque, user.oid)
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "Authorization_RequestDenied"
    assert get_user(fake, opaque + "x", user.oid).status_code == 401


# --- the app's own application object: its client secret's dates --------------------------------

APPLICATION_ROLES = ["User.Read.All", "Application.Read.All"]
CREDENTIAL_FIELDS = {
    "customKeyIdentifier",
    "displayName",
    "endDateTime",
    "hint",
    "keyId",
    "secretText",
    "startDateTime",
}


def get_application(
    fake: FakeIdentityServer, token: str, app_id: str, select: str | None = "passwordCredentials"
) -> requests.Response:
    return requests.get(
        f"{fake.base_url}/v1.0/applications(appId='{app_id}')",
        params={"$select": select} if select else None,
        headers={"Authorization": f"Bearer {token}"},
    )


def _registration(fake: FakeIdentityServer, directory: str) -> tuple[str, str]:
    cfg = fake.config
    if directory == "external":
        return cfg.external_client_id, cfg.external_client_secret
    return cfg.client_id, cfg.client_secret


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.mark.parametrize("directory", ["b2c", "external"])
def test_application_password_credentials_shape(
    fake: FakeIdentityServer, control: FakeIdentityClient, directory: str
) -> None:
    control.set_knobs(roles=APPLICATION_ROLES)
    client_id, secret = _registration(fake, directory)
    response = get_application(fake, graph_token(fake, directory), client_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["@odata.context", "passwordCredentials"]
    assert body["@odata.context"] == (
        f"{fake.base_url}/v1.0/$metadata#applications(passwordCredentials)/$entity"
    )
    (credential,) = body["passwordCredentials"]
    assert set(credential) == CREDENTIAL_FIELDS
    assert credential["hint"] == secret[:3]  # Graph's hint: the secret's first three characters
    assert credential["secretText"] is None and credential["customKeyIdentifier"] is None
    assert str(uuid.UUID(credential["keyId"])) == credential["keyId"]
    start, end = _time(credential["startDateTime"]), _time(credential["endDateTime"])
    assert credential["endDateTime"].endswith("Z")
    assert start <= datetime.now(UTC) and end - start == timedelta(days=180)


def test_application_without_select_and_unknown_property(
    fake: FakeIdentityServer, control: FakeIdentityClient
) -> None:
    control.set_knobs(roles=APPLICATION_ROLES)
    token = graph_token(fake)
    body = get_application(fake, token, fake.config.client_id, select=None).json()
    assert body["appId"] == fake.config.client_id and body["id"] != body["appId"]
    assert body["keyCredentials"] == [] and len(body["passwordCredentials"]) == 1
    assert body["@odata.context"].endswith("#applications/$entity")
    response = get_application(fake, token, fake.config.client_id, select="passwordCredentials,nope")
    assert response.status_code == 400
    assert "'nope' on type 'microsoft.graph.application'" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("roles", "status"),
    [
        (["User.Read.All"], 403),  # reading users does not reach application objects
        ([], 403),
        (["Application.ReadWrite.OwnedBy"], 403),  # an app does not own its own registration
        (["Application.Read.All"], 200),
        (["Directory.Read.All"], 200),
    ],
)
def test_application_needs_application_read_all(
    fake: FakeIdentityServer, control: FakeIdentityClient, roles: list[str], status: int
) -> None:
    control.set_knobs(roles=roles)
    response = get_application(fake, graph_token(fake), fake.config.client_id)
    assert response.status_code == status
    if status == 403:
        error = response.json()["error"]
        assert error["code"] == "Authorization_RequestDenied"
        assert error["message"] == "Insufficient privileges to complete the operation."


def test_another_tenants_application_is_404(fake: FakeIdentityServer, control: FakeIdentityClient) -> None:
    """An application object lives in its own tenant only: the B2C directory's token finds no
    external app, and the reverse, as Graph answers an unknown appId."""
    control.set_knobs(roles=APPLICATION_ROLES)
    cfg = fake.config
    for directory, other in (("b2c", cfg.external_client_id), ("external", cfg.client_id)):
        response = get_application(fake, graph_token(fake, directory), other)
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "Request_ResourceNotFound"
        assert error["message"] == (
            f"Resource '{other}' does not exist or one of its queried reference-property objects "
            "are not present."
        )


def test_secret_knobs_set_the_end_date(fake: FakeIdentityServer, control: FakeIdentityClient) -> None:
    control.set_knobs(roles=APPLICATION_ROLES)
    token = graph_token(fake)
    soon = (datetime.now(UTC) + timedelta(days=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    control.set_knobs(secret_end_date_time=soon)
    (credential,) = get_application(fake, token, fake.config.client_id).json()["passwordCredentials"]
    assert credential["endDateTime"] == soon

    control.set_knobs(secret_expired=True)  # the token endpoints refuse it from now on
    (credential,) = get_application(fake, token, fake.config.client_id).json()["passwordCredentials"]
    assert _time(credential["endDateTime"]) <= datetime.now(UTC)
    assert "access_token" not in entra_app(fake, fake.config.b2c_tenant_id).acquire_token_for_client(
        GRAPH_SCOPE
    )


@pytest.mark.parametrize("value", ["2020-01-01T00:00:00Z", "2099-01-01T00:00:00", "next week", 5], ids=str)
def test_secret_end_date_time_must_be_a_future_time_with_a_zone(
    fake: FakeIdentityServer, value: object
) -> None:
    response = requests.post(f"{fake.base_url}/_fake/knobs", json={"secret_end_date_time": value})
    assert response.status_code == 400
    assert "secret_end_date_time" in response.json()["error"]
