"""Client-credentials tokens through the real MSAL: the right tenant works, the classic
mistakes (main directory, unknown tenant, bad or expired secret) fail with Entra's codes."""

from __future__ import annotations

import uuid

import jwt
import msal
import pytest
import requests
from msal.exceptions import MsalServiceError

from devstack.fake_identity import FakeIdentityClient, FakeIdentityServer
from tests.fake.helpers import GRAPH_SCOPE, entra_app, jwks_keys

ENTRA_ERROR_KEYS = {
    "error",
    "error_description",
    "error_codes",
    "timestamp",
    "trace_id",
    "correlation_id",
    "error_uri",
}


@pytest.mark.parametrize("tenant_form", ["guid", "domain"])
def test_b2c_tenant_issues_a_graph_app_token(fake: FakeIdentityServer, tenant_form: str) -> None:
    cfg = fake.config
    tenant = cfg.b2c_tenant_id if tenant_form == "guid" else cfg.b2c_domain
    result = entra_app(fake, tenant).acquire_token_for_client(GRAPH_SCOPE)

    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == cfg.access_token_lifetime
    token = result["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    metadata = requests.get(f"{fake.base_url}/{tenant}/v2.0/.well-known/openid-configuration").json()
    key = jwks_keys(metadata["jwks_uri"])[header["kid"]]
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="https://graph.microsoft.com")
    assert claims["iss"] == f"https://sts.windows.net/{cfg.b2c_tenant_id}/"
    assert claims["tid"] == cfg.b2c_tenant_id
    assert claims["appid"] == claims["azp"] == cfg.client_id
    assert claims["roles"] == ["User.Read.All"]
    assert claims["idtyp"] == "app"
    assert claims["nbf"] <= claims["iat"] < claims["exp"]


def test_metadata_names_the_tenant_guid_even_when_asked_by_domain(fake: FakeIdentityServer) -> None:
    cfg = fake.config
    url = f"{fake.base_url}/{cfg.b2c_domain.upper()}/v2.0/.well-known/openid-configuration"
    metadata = requests.get(url).json()
    root = f"{fake.base_url}/{cfg.b2c_tenant_id}"
    assert metadata["token_endpoint"] == f"{root}/oauth2/v2.0/token"
    assert metadata["issuer"] == f"{root}/v2.0"
    assert metadata["jwks_uri"] == f"{root}/discovery/v2.0/keys"


def test_main_directory_tenant_gives_aadsts700016(fake: FakeIdentityServer) -> None:
    result = entra_app(fake, fake.config.main_tenant_id).acquire_token_for_client(GRAPH_SCOPE)

    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]
    assert result["error_description"].startswith(
        f"AADSTS700016: Application with identifier '{fake.config.client_id}' was not found in "
        f"the directory '{fake.config.main_tenant_id}'."
    )
    assert set(result) >= ENTRA_ERROR_KEYS


def test_unknown_client_id_in_the_b2c_tenant_gives_aadsts700016(fake: FakeIdentityServer) -> None:
    other = str(uuid.uuid4())
    app = entra_app(fake, fake.config.b2c_tenant_id, client_id=other)
    result = app.acquire_token_for_client(GRAPH_SCOPE)
    assert result["error_codes"] == [700016]
    assert other in result["error_description"]


def test_unknown_tenant_fails_msal_discovery_with_aadsts90002(fake: FakeIdentityServer) -> None:
    """MSAL raises ValueError at construction; Entra's body is on the chained exception."""
    tenant = str(uuid.uuid4())
    with pytest.raises(ValueError, match="Unable to get authority configuration") as caught:
        entra_app(fake, tenant)
    cause = str(caught.value.__context__)
    assert "HTTP status: 400" in cause
    assert f"AADSTS90002: Tenant '{tenant}' not found." in cause

    response = requests.get(f"{fake.base_url}/{tenant}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == ENTRA_ERROR_KEYS
    assert body["error"] == "invalid_tenant"
    assert body["error_codes"] == [90002]
    assert "Check to make sure you have the correct tenant ID" in body["error_description"]


def test_unknown_tenant_at_the_token_endpoint_gives_aadsts90002(fake: FakeIdentityServer) -> None:
    cfg = fake.config
    response = requests.post(
        f"{fake.base_url}/contoso.onmicrosoft.com/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret,
            "scope": GRAPH_SCOPE[0],
        },
    )
    assert response.status_code == 400
    assert response.json()["error_codes"] == [90002]


def test_wrong_secret_gives_aadsts7000215(fake: FakeIdentityServer) -> None:
    app = entra_app(fake, fake.config.b2c_tenant_id, secret="not-the-secret")
    result = app.acquire_token_for_client(GRAPH_SCOPE)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")


def test_expired_secret_knob_gives_aadsts7000222(
    fake: FakeIdentityServer, control: FakeIdentityClient
) -> None:
    control.set_knobs(secret_expired=True)
    result = entra_app(fake, fake.config.b2c_tenant_id).acquire_token_for_client(GRAPH_SCOPE)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000222]
    assert (
        f"client secret keys for app '{fake.config.client_id}' are expired" in (result["error_description"])
    )


@pytest.mark.parametrize(("secret", "status"), [("not-the-secret", 401), (None, 200)], ids=["bad", "good"])
def test_secret_can_come_as_http_basic(fake: FakeIdentityServer, secret: str | None, status: int) -> None:
    cfg = fake.config
    response = requests.post(
        f"{fake.base_url}/{cfg.b2c_tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "scope": GRAPH_SCOPE[0]},
        auth=(cfg.client_id, secret or cfg.client_secret),
    )
    assert response.status_code == status


def test_scope_must_end_with_default(fake: FakeIdentityServer) -> None:
    cfg = fake.config
    response = requests.post(
        f"{fake.base_url}/{cfg.b2c_tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret,
            "scope": "https://graph.microsoft.com/User.Read.All",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert response.json()["error_codes"] == [1002012]


def test_roles_knob_shapes_the_token(fake: FakeIdentityServer, control: FakeIdentityClient) -> None:
    control.set_knobs(roles=[])
    token = entra_app(fake, fake.config.b2c_tenant_id).acquire_token_for_client(GRAPH_SCOPE)
    assert "roles" not in jwt.decode(token["access_token"], options={"verify_signature": False})


def test_token_endpoint_down_gives_503(fake: FakeIdentityServer, control: FakeIdentityClient) -> None:
    control.set_knobs(token_endpoint_down={"retry_after": 7})
    cfg = fake.config
    url = f"{fake.base_url}/{cfg.b2c_tenant_id}/oauth2/v2.0/token"
    response = requests.post(url, data={"grant_type": "client_credentials"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert response.json()["error"] == "temporarily_unavailable"

    with pytest.raises(MsalServiceError, match="503"):  # MSAL raises on 5xx
        entra_app(fake, cfg.b2c_tenant_id).acquire_token_for_client(GRAPH_SCOPE)


def test_counters_count_every_call_including_failures(
    fake: FakeIdentityServer, control: FakeIdentityClient
) -> None:
    entra_app(fake, fake.config.b2c_tenant_id).acquire_token_for_client(GRAPH_SCOPE)
    entra_app(fake, fake.config.main_tenant_id).acquire_token_for_client(GRAPH_SCOPE)
    with pytest.raises(ValueError):
        entra_app(fake, str(uuid.uuid4()))

    counters = control.counters()
    assert counters["client_credentials_token"] == 2
    assert counters["metadata"] == 3
    assert counters["graph"] == 0


# --- the external tenant's app registration -----------------------------------------------------


def external_entra_app(
    fake: FakeIdentityServer, tenant: str, **change: str
) -> msal.ConfidentialClientApplication:
    cfg = fake.config
    credentials = {"client_id": cfg.external_client_id, "secret": cfg.external_client_secret, **change}
    return entra_app(fake, tenant, **credentials)


@pytest.mark.parametrize("tenant_form", ["guid", "domain"])
def test_external_tenant_issues_a_graph_app_token_for_its_client(
    fake: FakeIdentityServer, tenant_form: str
) -> None:
    cfg = fake.config
    tenant = cfg.external_tenant_id if tenant_form == "guid" else cfg.external_domain
    result = external_entra_app(fake, tenant).acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" in result, result
    metadata = requests.get(f"{fake.base_url}/{tenant}/v2.0/.well-known/openid-configuration").json()
    key = jwks_keys(metadata["jwks_uri"])[jwt.get_unverified_header(result["access_token"])["kid"]]
    claims = jwt.decode(
        result["access_token"], key.key, algorithms=["RS256"], audience="https://graph.microsoft.com"
    )
    assert claims["iss"] == f"https://sts.windows.net/{cfg.external_tenant_id}/"
    assert claims["tid"] == cfg.external_tenant_id
    assert claims["appid"] == claims["azp"] == cfg.external_client_id
    assert claims["roles"] == ["User.Read.All"]


@pytest.mark.parametrize(
    ("tenant", "client"),
    [
        ("main", "external"),  # the classic mistake: the workforce tenant's id
        ("b2c", "external"),
        ("external", "b2c"),
    ],
)
def test_a_client_outside_its_tenant_gives_aadsts700016(
    fake: FakeIdentityServer, tenant: str, client: str
) -> None:
    cfg = fake.config
    tenant_id = {"main": cfg.main_tenant_id, "b2c": cfg.b2c_tenant_id, "external": cfg.external_tenant_id}[
        tenant
    ]
    client_id, secret = {
        "external": (cfg.external_client_id, cfg.external_client_secret),
        "b2c": (cfg.client_id, cfg.client_secret),
    }[client]
    result = entra_app(fake, tenant_id, client_id=client_id, secret=secret).acquire_token_for_client(
        GRAPH_SCOPE
    )
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]
    assert result["error_description"].startswith(
        f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory "
        f"'{tenant_id}'."
    )


def test_external_client_secret_errors_name_the_external_app(
    fake: FakeIdentityServer, control: FakeIdentityClient
) -> None:
    cfg = fake.config
    wrong = external_entra_app(fake, cfg.external_tenant_id, secret="not-it").acquire_token_for_client(
        GRAPH_SCOPE
    )
    assert wrong["error_codes"] == [7000215] and f"'{cfg.external_client_id}'" in wrong["error_description"]
    b2c_secret = external_entra_app(fake, cfg.external_tenant_id, secret=cfg.client_secret)
    assert b2c_secret.acquire_token_for_client(GRAPH_SCOPE)["error_codes"] == [7000215]
    control.set_knobs(secret_expired=True)
    expired = external_entra_app(fake, cfg.external_tenant_id).acquire_token_for_client(GRAPH_SCOPE)
    assert expired["error_codes"] == [7000222]
