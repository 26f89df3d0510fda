"""`photoshare doctor` against the fake Entra/B2C/Graph over real HTTPS, in every failure mode.

Each run is a real subprocess (`python -m app.cli doctor`), and every run also checks that the
client secret in its environment appears nowhere in what it printed.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from devstack.fake_identity.client import FakeIdentityClient
from tests.conftest import PLATFORMS, Platform

CHECKS = ["settings", "user_flows", "token", "token_claims", "graph", "secret_expiry"]
# What the app needs (User.Read.All) plus what lets the doctor read its secret's expiry.
WATCHING_ROLES = ["User.Read.All", "Application.Read.All"]
NOT_GRANTED = (
    "skipped: reading the secret's expiry needs the Graph application permission Application.Read.All "
    "(optional; grant it and admin-consent it to have the doctor watch the expiry)"
)
both = pytest.mark.parametrize("platform", PLATFORMS, indirect=True)
external_id = pytest.mark.parametrize("platform", ["external_id"], indirect=True)


def run_doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "doctor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    secrets = [env.get(name, "") for name in ("AZURE_AD_B2C_CLIENT_SECRET", "EXTERNAL_ID_CLIENT_SECRET")]
    assert any(secrets)
    for secret in filter(None, secrets):
        assert secret not in result.stdout
        assert secret not in result.stderr
    return result


def lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The check lines (`✓ 1. …`, `! 6. …`), without their detail and fix lines."""
    return [line for line in result.stdout.splitlines() if line[:1] in "✓!✗–"]


@pytest.fixture
def doctor_env(platform_envs: dict[str, dict[str, str]], platform: Platform) -> dict[str, str]:
    """The app's environment on the test's platform minus what the doctor must not need:
    database, storage, SECRET_KEY."""
    env = dict(platform_envs[platform.name])
    for name in (
        "DATABASE_URL",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_ACCOUNT_URL",
        "SECRET_KEY",
    ):
        env.pop(name, None)
    return env


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def secret_line(result: subprocess.CompletedProcess[str]) -> str:
    return next(line for line in lines(result) if "client secret expiry" in line)


def in_days(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


@both
def test_all_green(doctor_env, fake: FakeIdentityClient, make_user: Callable[..., dict], platform: Platform):
    make_user("local")
    fake.set_knobs(roles=WATCHING_ROLES)
    result = run_doctor(doctor_env)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = lines(result)
    assert [line[:4] for line in checks] == ["✓ 1.", "✓ 2.", "✓ 3.", "✓ 4.", "✓ 5.", "✓ 6."]
    tenant = platform.tenant_id
    assert f"the issuer names tenant {tenant}" in checks[1]
    assert f"tid {tenant} is the {platform.directory.kind}; roles: {', '.join(WATCHING_ROLES)}" in checks[3]
    assert "/v1.0/users?$top=1 answered; sample user " in checks[4]
    assert "fix:" not in result.stdout
    assert result.stdout.splitlines()[-1] == "photoshare doctor: all checks passed"


@external_id
def test_the_workforce_tenant_id_is_found_by_the_tenants_name(doctor_env, fake: FakeIdentityClient, identity):
    """External ID's sign-in metadata at a workforce tenant id is an error naming no tenant: the
    doctor looks the external tenant up by its name and prints its real id."""
    main, external = identity.config.main_tenant_id, identity.config.external_tenant_id
    env = {**doctor_env, "EXTERNAL_ID_AUTHORITY": f"{identity.external_id_url}/{main}/v2.0"}
    result = run_doctor(env, "--tenant-id", main)
    assert result.returncode == 1
    checks = lines(result)
    assert checks[1] == (
        f"✗ 2. sign-in metadata: the External ID tenant's metadata's issuer names tenant {external}, but "
        f"EXTERNAL_ID_TENANT_ID is {main}: you probably used your workforce tenant's id"
    )
    assert f"fix: set EXTERNAL_ID_TENANT_ID={external}, the external tenant's id (Entra admin center" in (
        result.stdout
    )
    assert checks[2].startswith("✗ 3. app-only token: AADSTS700016: the app ")
    assert f"fix: set EXTERNAL_ID_TENANT_ID={external}" in result.stdout.split("✗ 3.")[1]


@pytest.mark.parametrize("platform", ["b2c"], indirect=True)
def test_wrong_tenant_names_the_main_directory_mix_up(doctor_env, fake: FakeIdentityClient, identity):
    main, b2c = identity.config.main_tenant_id, identity.config.b2c_tenant_id
    result = run_doctor(doctor_env, "--tenant-id", main)  # a flag wins over the environment
    assert result.returncode == 1
    checks = lines(result)
    assert checks[1] == (
        f"✗ 2. sign-in metadata: user flow B2C_1_signupsignin's issuer names tenant {b2c}, but "
        f"AZURE_AD_B2C_TENANT_ID is {main}: you probably used your main directory's id"
    )
    assert checks[2] == (
        f"✗ 3. app-only token: AADSTS700016: the app {identity.config.client_id} is not registered in "
        f"directory {main}: AZURE_AD_B2C_TENANT_ID is probably your main directory's tenant id"
    )
    # The user flows' issuer told the doctor the B2C directory's id: the fix names it.
    assert f"fix: set AZURE_AD_B2C_TENANT_ID={b2c}, the B2C directory's id" in result.stdout
    assert checks[3] == "– 4. token tenant and roles: skipped: check 'app-only token' failed"
    assert checks[4].startswith("– 5. Graph users: skipped")
    assert checks[5] == "– 6. client secret expiry: skipped: check 'app-only token' failed"
    assert fake.counters()["graph"] == 0


def test_unknown_tenant(doctor_env):
    tenant = str(uuid.uuid4())
    result = run_doctor({**doctor_env, "AZURE_AD_B2C_TENANT_ID": tenant})
    assert result.returncode == 1
    host = doctor_env["AZURE_AUTHORITY_HOST"]
    assert lines(result)[2] == (
        f"✗ 3. app-only token: AADSTS90002: tenant {tenant} does not exist at https://{host}"
    )
    assert "for sovereign clouds also set AZURE_AUTHORITY_HOST" in result.stdout


@both
def test_bad_secret(doctor_env, platform: Platform):
    variable = platform.directory.secret_setting
    result = run_doctor({**doctor_env, variable: "not-the-secret-" + uuid.uuid4().hex})
    assert result.returncode == 1
    assert lines(result)[2] == (
        f"✗ 3. app-only token: AADSTS7000215: {variable} is not a valid secret of app {platform.client_id}"
    )
    assert "fix: put the secret's Value (not its Secret ID)" in result.stdout


@both
def test_expired_secret(doctor_env, fake: FakeIdentityClient, platform: Platform):
    fake.set_knobs(secret_expired=True)
    result = run_doctor(doctor_env)
    assert result.returncode == 1
    variable = platform.directory.secret_setting
    assert lines(result)[2] == (
        f"✗ 3. app-only token: AADSTS7000222: {variable} of app {platform.client_id} has expired"
    )
    assert f"fix: create a new client secret in {platform.directory.portal}" in result.stdout
    # Check 6 says no more than check 3 did: the expiry is read with a token, and none came.
    assert lines(result)[5] == "– 6. client secret expiry: skipped: check 'app-only token' failed"


def test_token_endpoint_down(doctor_env, fake: FakeIdentityClient):
    fake.set_knobs(token_endpoint_down=True)
    result = run_doctor(doctor_env)
    assert result.returncode == 1
    assert "is unavailable (HTTP Error: 503)" in lines(result)[2]
    assert "fix: retry later" in result.stdout


@both
@pytest.mark.parametrize(("roles", "shown"), [([], "none"), (["User.ReadBasic.All"], "User.ReadBasic.All")])
def test_missing_graph_permission(doctor_env, fake: FakeIdentityClient, platform: Platform, roles, shown):
    fake.set_knobs(roles=roles)
    result = run_doctor(doctor_env)
    assert result.returncode == 1
    checks = lines(result)
    assert checks[3] == (
        f"✗ 4. token tenant and roles: the token has no Graph permission that can read users "
        f"(roles: {shown}); Graph will answer 403"
    )
    assert (
        f"fix: grant User.Read.All (or Directory.Read.All): in {platform.directory.portal} → "
        f"{platform.client_id} → API permissions"
    ) in result.stdout
    assert "'Grant admin consent'" in result.stdout
    assert checks[4].startswith("– 5.")
    assert checks[5] == f"– 6. client secret expiry: {NOT_GRANTED}"
    assert fake.counters()["graph"] == 0  # the permissions are read from the token, not from a 403


def test_unreachable_authority_fails_fast(doctor_env, fake: FakeIdentityClient, closed_port):
    host = f"127.0.0.1:{closed_port}"
    env = {**doctor_env, "AZURE_AUTHORITY_HOST": host, "AZURE_AD_B2C_AUTHORITY_HOST": host}
    started = time.monotonic()
    result = run_doctor(env)
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    checks = lines(result)
    assert checks[1].startswith(
        f"✗ 2. sign-in metadata: cannot reach the sign-in metadata at https://{host}/"
    )
    assert checks[1].endswith("(connection failed)")
    assert checks[2] == (
        f"✗ 3. app-only token: cannot reach the token endpoint at https://{host}/"
        f"{doctor_env['AZURE_AD_B2C_TENANT_ID']} (connection failed)"
    )
    assert (
        "fix: check AZURE_AUTHORITY_HOST (login.microsoftonline.com, or your cloud's host)" in result.stdout
    )
    assert fake.counters()["client_credentials_token"] == 0


def test_untrusted_certificate(doctor_env):
    result = run_doctor({**doctor_env, "REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""})
    assert result.returncode == 1
    assert lines(result)[2].endswith("(TLS certificate not trusted)")
    assert "point REQUESTS_CA_BUNDLE at a bundle that includes its CA" in result.stdout


def test_throttled_graph_says_retry_later(doctor_env, fake: FakeIdentityClient):
    fake.set_knobs(graph_throttle={"count": 10, "retry_after": 1})
    result = run_doctor(doctor_env)
    assert result.returncode == 1
    assert lines(result)[4] == (
        "✗ 5. Graph users: Microsoft Graph is throttling this app (Retry-After: 1 s), "
        "still after the bounded retries"
    )
    assert "fix: retry later: Graph throttles per app and tenant" in result.stdout
    assert fake.counters()["graph"] == 4  # one call and three retries, then it gives up


def test_malformed_settings_are_check_one_and_nothing_is_called(doctor_env, fake: FakeIdentityClient):
    env = {
        **doctor_env,
        "AZURE_AD_B2C_TENANT_ID": "contoso",
        "AZURE_AD_B2C_TENANT_NAME": "contoso.b2clogin.com",
    }
    result = run_doctor(env)
    assert result.returncode == 1
    out = result.stdout.splitlines()
    assert out[0] == "✗ 1. settings: 2 problems"
    assert (
        "     - AZURE_AD_B2C_TENANT_NAME must be the bare tenant name (contoso of contoso.onmicrosoft.com), "
        "not a URL, got 'contoso.b2clogin.com'"
    ) in out
    assert (
        "     - AZURE_AD_B2C_TENANT_ID must be a GUID: the B2C directory's tenant id (Azure portal → switch "
        "to the B2C tenant → Overview → Tenant ID), got 'contoso'"
    ) in out
    assert [line[:4] for line in lines(result)] == ["✗ 1.", "– 2.", "– 3.", "– 4.", "– 5.", "– 6."]
    assert sum(fake.counters().values()) == 0


def test_unknown_user_flow(doctor_env):
    result = run_doctor({**doctor_env, "AZURE_AD_B2C_PASSWORD_RESET_POLICY": "B2C_1_missing"})
    assert result.returncode == 1
    assert "✗ 2. sign-in metadata: user flow B2C_1_missing of tenant" in lines(result)[1]
    assert "answered 404" in lines(result)[1]
    assert "(AADB2C90022: Unable to return metadata for the policy 'B2C_1_missing'" in lines(result)[1]
    assert "fix: check AZURE_AD_B2C_TENANT_NAME and AZURE_AD_B2C_PASSWORD_RESET_POLICY" in result.stdout


EMAIL_IDENTITY = "identities[signInType=emailAddress].issuerAssignedId"
PASSCODE_IDENTITY = "identities[signInType=federated, issuer=mail].issuerAssignedId"


@pytest.mark.parametrize(
    ("platform", "kind", "extra", "source"),
    [
        ("b2c", "local", {}, EMAIL_IDENTITY),
        ("b2c", "social", {}, "otherMails[0]"),
        ("b2c", "local", {"mail": "work@example.com"}, "mail"),
        ("external_id", "email_password", {}, EMAIL_IDENTITY),
        ("external_id", "email_otp", {}, PASSCODE_IDENTITY),
        ("external_id", "google", {}, "otherMails[0]"),
        ("external_id", "email_password", {"mail": "work@example.com"}, "mail"),
    ],
    indirect=["platform"],
)
def test_user_email_and_its_source(doctor_env, make_user, kind, extra, source):
    user = make_user(kind, **extra)
    result = run_doctor(doctor_env, "--user", user["oid"])
    assert result.returncode == 0, result.stdout
    email = extra.get("mail", user["email"])
    assert lines(result)[6] == f"✓ 7. user email: user {user['oid']} → {email} (from {source})"


@both
def test_unknown_user(doctor_env, platform: Platform):
    oid = str(uuid.uuid4())
    result = run_doctor(doctor_env, "--user", oid)
    assert result.returncode == 1
    assert lines(result)[6] == f"✗ 7. user email: user {oid} does not exist in the {platform.directory.kind}"


@both
def test_json_output(doctor_env, fake: FakeIdentityClient, identity, platform: Platform):
    fake.set_knobs(roles=WATCHING_ROLES)
    green = run_doctor(doctor_env, "--json")
    assert green.returncode == 0
    results = json.loads(green.stdout)
    assert [r["name"] for r in results] == CHECKS
    assert all(set(r) == {"name", "ok", "detail", "fix", "warning"} for r in results)
    assert all(r["ok"] is True and r["warning"] is False for r in results)

    main, variable = identity.config.main_tenant_id, platform.directory.tenant_id_setting
    wrong_env = {**doctor_env, variable: main}
    if platform.external_id:
        wrong_env["EXTERNAL_ID_AUTHORITY"] = f"{identity.external_id_url}/{main}/v2.0"
    wrong = run_doctor(wrong_env, "--json")
    assert wrong.returncode == 1
    by_name = {r["name"]: r for r in json.loads(wrong.stdout)}
    assert [by_name[n]["ok"] for n in CHECKS] == [True, False, False, None, None, None]
    assert by_name["token"]["detail"].startswith("AADSTS700016: the app ")
    assert by_name["token"]["fix"].startswith(f"set {variable}={platform.tenant_id}")


@both
def test_opaque_access_token_is_judged_by_graph(doctor_env, fake: FakeIdentityClient, make_user, platform):
    """Access tokens are opaque to clients: the doctor's verdict must not need to decode one."""
    make_user("local")
    fake.set_knobs(opaque_access_token=True)
    result = run_doctor(doctor_env)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = lines(result)
    assert checks[3] == (
        "✓ 4. token tenant and roles: the access token is opaque (not a JWT); Graph accepts it for "
        f"reading the {platform.directory.kind}'s users"
    )
    assert checks[4].startswith("✓ 5. Graph users: ")
    assert checks[5] == f"– 6. client secret expiry: {NOT_GRANTED}"  # Graph's 403, not the token
    assert fake.counters()["graph"] == 2  # checks 4 and 5 share one call; 6 reads the app's secrets


@both
def test_opaque_access_token_without_permission_fails_check_four(
    doctor_env, fake: FakeIdentityClient, platform: Platform
):
    fake.set_knobs(opaque_access_token=True, roles=[])
    result = run_doctor(doctor_env)
    assert result.returncode == 1
    checks = lines(result)
    assert checks[3] == (
        "✗ 4. token tenant and roles: Graph refused (403): the app has no permission to read users"
    )
    assert f"fix: grant User.Read.All: in {platform.directory.portal} → {platform.client_id}" in result.stdout
    assert checks[4].startswith("– 5. Graph users: skipped")


@both
def test_sample_users_email_is_masked_in_text_and_json(
    doctor_env, fake: FakeIdentityClient, make_user, platform: Platform
):
    make_user("local")
    directory = "external" if platform.external_id else "b2c"
    emails = [u["email"] for u in fake.users(directory)] + [
        u["mail"] for u in fake.users(directory) if u["mail"]
    ]
    text = run_doctor(doctor_env)
    as_json = run_doctor(doctor_env, "--json")
    graph = {r["name"]: r for r in json.loads(as_json.stdout)}["graph"]
    for shown in (lines(text)[4], graph["detail"]):
        assert re.search(r"sample user [0-9a-f-]{36} → .…@[\w.-]+ \(from \w+", shown), shown
    for email in emails:
        assert email not in text.stdout and email not in as_json.stdout


# --- check 6: the client secret's expiry -----------------------------------------------------------


@both
def test_secret_with_plenty_of_time_is_ok(doctor_env, fake: FakeIdentityClient, platform: Platform):
    """The fake's secret lapses 180 days after it starts, as a portal-made secret by default."""
    fake.set_knobs(roles=WATCHING_ROLES)
    text, as_json = run_doctor(doctor_env), run_doctor(doctor_env, "--json")
    assert text.returncode == 0 and as_json.returncode == 0
    line = secret_line(text)
    assert re.fullmatch(
        r"✓ 6\. client secret expiry: the configured secret 'photoshare sign-in and app-only Graph "
        r"token' \(key [0-9a-f]{8}\) expires on \d{4}-\d\d-\d\d \d\d:\d\d UTC, in 1(79|80) days",
        line,
    ), line
    result = {r["name"]: r for r in json.loads(as_json.stdout)}["secret_expiry"]
    assert result == {
        "name": "secret_expiry",
        "ok": True,
        "detail": line[len("✓ 6. client secret expiry: ") :],
        "fix": "",
        "warning": False,
    }
    # Graph's hint is the secret's first three characters: it is never printed either.
    hint = platform.client_secret[:3]
    assert f"'{hint}" not in text.stdout and f"{hint}…" not in text.stdout


@both
def test_secret_lapsing_within_30_days_is_a_warning(doctor_env, fake: FakeIdentityClient, platform: Platform):
    end = in_days(12.5)
    fake.set_knobs(roles=WATCHING_ROLES, secret_end_date_time=end)
    text, as_json = run_doctor(doctor_env), run_doctor(doctor_env, "--json")
    assert text.returncode == 0 and as_json.returncode == 0  # a warning does not fail CI
    when = f"{datetime.fromisoformat(end):%Y-%m-%d %H:%M} UTC"
    line = secret_line(text)
    assert re.fullmatch(
        r"! 6\. client secret expiry: the configured secret 'photoshare sign-in and app-only Graph "
        rf"token' \(key [0-9a-f]{{8}}\) expires on {when}, in 12 days",
        line,
    ), line
    fix = (
        "rotate it before then: if the Pulumi program created the app, set photoshare:appSecretEndDate "
        "later and run `pulumi up`; otherwise create a new secret in "
        f"{platform.directory.portal} → {platform.client_id} → Certificates & secrets, put its Value "
        f"into {platform.directory.secret_setting}, then delete the old one"
    )
    assert f"     fix: {fix}" in text.stdout.splitlines()
    assert text.stdout.splitlines()[-1] == "photoshare doctor: all checks passed, 1 warning"
    result = {r["name"]: r for r in json.loads(as_json.stdout)}["secret_expiry"]
    assert result["ok"] is True and result["warning"] is True
    assert result["detail"] == line[len("! 6. client secret expiry: ") :] and result["fix"] == fix


@pytest.mark.parametrize("opaque", [False, True], ids=["from the token", "graph 403"])
def test_secret_expiry_without_application_read_all_is_skipped(
    doctor_env, fake: FakeIdentityClient, platform: Platform, opaque: bool
):
    """The default grant (User.Read.All, as the Pulumi program gives) cannot read the app's own
    object: not a failure, and the permission is named. A JWT tells without asking Graph."""
    fake.set_knobs(opaque_access_token=opaque)
    text, as_json = run_doctor(doctor_env), run_doctor(doctor_env, "--json")
    assert text.returncode == 0 and as_json.returncode == 0
    assert secret_line(text) == f"– 6. client secret expiry: {NOT_GRANTED}"
    enable = (
        f"in {platform.directory.portal} → {platform.client_id} → API permissions → Add a permission → "
        "Microsoft Graph → Application permissions → Application.Read.All, then 'Grant admin consent' "
        f"(an admin of the {platform.directory.kind} must consent)"
    )
    assert f"     to enable: {enable}" in text.stdout.splitlines()
    assert text.stdout.splitlines()[-1] == "photoshare doctor: all checks passed"
    result = {r["name"]: r for r in json.loads(as_json.stdout)}["secret_expiry"]
    assert result == {
        "name": "secret_expiry",
        "ok": None,
        "detail": NOT_GRANTED,
        "fix": enable,
        "warning": False,
    }
