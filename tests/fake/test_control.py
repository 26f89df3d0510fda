"""The /_fake/ control API, config loading and the thread safety of the shared state."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devstack.fake_identity import FakeConfig, FakeIdentityClient, FakeIdentityServer, create_fake_app
from tests.fake.helpers import new_email


def test_health(control: FakeIdentityClient) -> None:
    assert control.health() == {"status": "ok"}


def test_add_and_list_users(fake: FakeIdentityServer) -> None:
    email = new_email()
    response = requests.post(
        f"{fake.base_url}/_fake/users",
        json={"email": email, "password": "pw", "name": "Ann", "kind": "local"},
    )
    assert response.status_code == 201
    created = response.json()
    assert str(uuid.UUID(created["oid"])) == created["oid"]
    assert created["kind"] == "local" and created["mail"] is None

    listed = requests.get(f"{fake.base_url}/_fake/users").json()
    assert next(u for u in listed if u["oid"] == created["oid"]) == created
    assert all("password" not in u for u in listed)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"email": "not-an-email"}, 400),
        ({"email": "a@example.com", "kind": "guest"}, 400),
        ({"email": "a@example.com", "colour": "red"}, 400),
        ({"email": "a@example.com", "name": 3}, 400),
        ({"email": "a@example.com", "oid": "not-a-guid"}, 400),
        ({"email": "a@example.com", "directory": "workforce"}, 400),
        ({"email": "a@example.com", "kind": "email_otp"}, 400),  # an external kind in B2C
        ({"email": "a@example.com", "kind": "local", "directory": "external"}, 400),
        (["not", "an", "object"], 400),
    ],
)
def test_bad_users_are_rejected(fake: FakeIdentityServer, body: object, status: int) -> None:
    response = requests.post(f"{fake.base_url}/_fake/users", json=body)
    assert response.status_code == status
    assert "error" in response.json()


def test_duplicate_email_is_409(fake: FakeIdentityServer, control: FakeIdentityClient) -> None:
    email = new_email()
    control.add_user(email, "pw")
    response = requests.post(f"{fake.base_url}/_fake/users", json={"email": email.upper()})
    assert response.status_code == 409


@pytest.mark.parametrize(
    "knobs",
    [
        {"next_id_token": "slightly_off"},
        {"email_claim": "yes"},
        {"graph_throttle": {"count": 1, "status": 500}},
        {"graph_throttle": {"count": -1}},
        {"roles": "User.Read.All"},
        {"secret_expired": "yes"},
        {"opaque_access_token": 1},
        {"rotate_signing_key": "now"},
        {"no_such_knob": True},
    ],
)
def test_bad_knobs_are_rejected_and_change_nothing(fake: FakeIdentityServer, knobs: dict) -> None:
    before = requests.get(f"{fake.base_url}/_fake/knobs").json()
    response = requests.post(f"{fake.base_url}/_fake/knobs", json={"secret_expired": True, **knobs})
    assert response.status_code == 400
    assert requests.get(f"{fake.base_url}/_fake/knobs").json() == before


def test_external_users_live_in_their_own_directory(
    fake: FakeIdentityServer, control: FakeIdentityClient
) -> None:
    email = new_email()
    b2c = control.add_user(email, "pw", kind="local")
    external = control.add_user(email.upper(), directory="external")  # the same address: another tenant
    assert b2c["directory"] == "b2c" and external["directory"] == "external"
    assert external["kind"] == "email_password"  # the directory's first kind
    assert b2c["oid"] != external["oid"]

    response = requests.post(
        f"{fake.base_url}/_fake/users", json={"email": email, "directory": "external", "kind": "google"}
    )
    assert response.status_code == 409
    assert [u["oid"] for u in control.users("external") if u["email"].lower() == email] == [external["oid"]]
    assert all(u["directory"] == "b2c" for u in control.users("b2c"))
    assert {b2c["oid"], external["oid"]} <= {u["oid"] for u in control.users()}


def test_reset_restores_knobs_and_counters_but_keeps_users(
    fake: FakeIdentityServer, control: FakeIdentityClient
) -> None:
    defaults = control.knobs()
    oid = control.add_user(new_email())["oid"]
    control.set_knobs(secret_expired=True, roles=[], graph_fail={"count": 2})
    requests.get(f"{fake.base_url}/v1.0/users")
    assert control.counters()["graph"] == 1

    control.reset()
    assert control.knobs() == defaults
    assert defaults["email_claim"] is False  # a new app registration has no optional claims
    assert set(control.counters().values()) == {0}
    assert any(u["oid"] == oid for u in control.users())


def test_counters_are_thread_safe(fake: FakeIdentityServer, control: FakeIdentityClient) -> None:
    url = f"{fake.base_url}/{fake.config.b2c_tenant_id}/v2.0/.well-known/openid-configuration"
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: requests.get(url).status_code, range(64)))
    assert statuses == [200] * 64
    assert control.counters()["metadata"] == 64


def test_config_round_trips_through_json_and_seeds_users(tmp_path) -> None:  # noqa: ANN001
    oid = str(uuid.uuid4())
    config = FakeConfig.random(users=[{"email": "seed@example.com", "password": "pw", "oid": oid}])
    path = tmp_path / "fake.json"
    config.write_json(path)
    loaded = FakeConfig.from_json_file(path)
    assert loaded == config

    users = create_fake_app(loaded).test_client().get("/_fake/users").get_json()
    assert [(u["oid"], u["email"], u["kind"]) for u in users] == [
        (oid, "seed@example.com", "local_with_emails_claim")
    ]


def test_config_has_a_second_registration_in_the_external_tenant(tmp_path) -> None:  # noqa: ANN001
    config = FakeConfig.random(
        external_email_claim=True,
        users=[{"email": "otp@example.com", "kind": "email_otp", "directory": "external"}],
    )
    assert config.external_domain == "photosharedevext.onmicrosoft.com"
    assert config.external_client_id != config.client_id
    assert config.external_client_secret != config.client_secret
    assert len({config.b2c_tenant_id, config.main_tenant_id, config.external_tenant_id}) == 3
    config.write_json(tmp_path / "fake.json")
    loaded = FakeConfig.from_json_file(tmp_path / "fake.json")
    assert loaded == config

    client = create_fake_app(loaded).test_client()
    assert client.get("/_fake/knobs").get_json()["email_claim"] is True
    client.post("/_fake/knobs", json={"email_claim": False})
    client.post("/_fake/reset")
    assert client.get("/_fake/knobs").get_json()["email_claim"] is True  # reset goes back to the config
    (seeded,) = client.get("/_fake/users?directory=external").get_json()
    assert seeded["kind"] == "email_otp"


@pytest.mark.parametrize(
    "overrides",
    [
        {"b2c_tenant_id": "photosharedev"},
        {"b2c_tenant_name": "photosharedev.onmicrosoft.com"},
        {"client_secret": ""},
        {"policies": []},
        {"external_tenant_id": "photosharedevext"},
        {"external_subdomain": "photosharedevext.ciamlogin.com"},
        {"external_subdomain": ""},
        {"external_client_secret": ""},
        {"external_client_id": "{client_id}"},  # one registration for both is not how it works
        {"external_tenant_id": "{b2c_tenant_id}"},
    ],
)
def test_config_rejects_mistakes(overrides: dict) -> None:
    base = FakeConfig.random().to_dict()
    overrides = {k: v.format(**base) if isinstance(v, str) else v for k, v in overrides.items()}
    with pytest.raises(ValueError):
        FakeConfig.from_dict({**base, **overrides})


def test_config_rejects_unknown_keys() -> None:
    data = FakeConfig.random().to_dict()
    with pytest.raises(ValueError, match="tenant_id"):
        FakeConfig.from_dict({**data, "tenant_id": "x"})
