"""The doctor's offline parts: which settings it judges, skipping, issuer parsing, rendering."""

from __future__ import annotations

import argparse
import io
import uuid

import pytest

from app.auth import issuer_tenant
from app.cli import doctor, main
from app.doctor import IDENTITY_SETTINGS, CheckResult, Doctor, mask_email
from app.doctor_report import render_text
from app.graph import TokenError
from app.settings import SETTINGS_BY_NAME

TENANT = str(uuid.uuid4())
CLIENT = str(uuid.uuid4())
GOOD = {
    "AZURE_AD_B2C_TENANT_NAME": "tailspintoys",
    "AZURE_AD_B2C_TENANT_ID": TENANT,
    "AZURE_AD_B2C_CLIENT_ID": CLIENT,
    "AZURE_AD_B2C_CLIENT_SECRET": "s3cret-value",
}


def test_identity_settings_are_part_of_the_contract():
    assert set(IDENTITY_SETTINGS) <= set(SETTINGS_BY_NAME)


def test_settings_check_ignores_database_storage_and_secret_key():
    doctor = Doctor(environ={**GOOD, "DATABASE_URL": "mysql://nope", "MAX_UPLOAD_MB": "lots"})
    result = doctor.check_settings()
    assert result.ok is True
    assert result.detail == f"B2C tenant tailspintoys ({TENANT}), app {CLIENT}, secret set"


def test_settings_problems_fail_check_one_and_skip_the_rest():
    results = Doctor(environ={**GOOD, "AZURE_AD_B2C_CLIENT_ID": "my-app", "GRAPH_ENDPOINT": "http://g"}).run()
    assert [r.ok for r in results] == [False, None, None, None, None, None]
    assert results[0].detail.splitlines() == [
        "AZURE_AD_B2C_CLIENT_ID must be a GUID: the app registration's Application (client) ID, got 'my-app'",
        "GRAPH_ENDPOINT must use https outside development, got 'http://g'",
    ]
    assert all(r.detail == "skipped: check 'settings' failed" for r in results[1:])


def test_user_check_is_listed_only_when_asked():
    """With `--user` the user's email is the last check; without it the report stops at the
    client secret's expiry."""
    base = ["settings", "user_flows", "token", "token_claims", "graph", "secret_expiry"]
    assert [r.name for r in Doctor(environ={}, user=str(uuid.uuid4())).run()] == [*base, "user"]
    assert [r.name for r in Doctor(environ={}).run()] == base


@pytest.mark.parametrize(
    ("issuer", "tenant"),
    [
        (f"https://contoso.b2clogin.com/{TENANT}/v2.0/", TENANT),
        (f"https://login.contoso.com/tfp/{TENANT.upper()}/b2c_1_susi/v2.0/", TENANT),
        (f"https://{TENANT}.ciamlogin.com/{TENANT}/v2.0", TENANT),
        ("https://contoso.b2clogin.com/contoso.onmicrosoft.com/v2.0/", None),
    ],
)
def test_issuer_tenant(issuer, tenant):
    assert issuer_tenant(issuer) == tenant


def test_other_aadsts_codes_are_shown_with_their_description():
    checks = Doctor(environ=GOOD)
    assert checks.check_settings().ok
    assert checks.graph is not None
    error = checks.graph.token_error(
        {
            "error": "invalid_request",
            "error_description": "AADSTS50049: Unknown or invalid instance.\r\nTrace",
        }
    )
    assert isinstance(error, TokenError)
    result = checks._token_failure("token", error)
    assert result.detail == "could not get a Graph token: AADSTS50049: Unknown or invalid instance."
    assert "https://login.microsoftonline.com/error" in result.fix


def test_render_text_marks_details_and_fixes():
    text = render_text(
        [
            CheckResult("settings", True, "fine"),
            CheckResult("user_flows", False, "one\ntwo", "do this"),
            CheckResult("token", None, "skipped: check 'sign-in metadata' failed"),
        ],
        io.StringIO(),
    )
    assert text.splitlines() == [
        "✓ 1. settings: fine",
        "✗ 2. sign-in metadata: 2 problems",
        "     - one",
        "     - two",
        "     fix: do this",
        "– 3. app-only token: skipped: check 'sign-in metadata' failed",
        "photoshare doctor: 1 passed, 1 failed, 1 skipped",
    ]


def test_render_text_falls_back_to_ascii():
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    text = render_text([CheckResult("settings", False, "a → b", "fix")], out)
    assert text.splitlines()[0] == "FAIL 1. settings: a -> b"


def test_run_never_prints_the_secret_even_if_a_message_held_it(monkeypatch):
    leaky = CheckResult("settings", False, f"oops {GOOD['AZURE_AD_B2C_CLIENT_SECRET']}", "fix")
    monkeypatch.setattr(Doctor, "run", lambda self: [leaky])
    out = io.StringIO()
    args = argparse.Namespace(user=None, timeout=1.0, json=True, platform=None)
    assert doctor(args, GOOD, out=out) == 1
    assert GOOD["AZURE_AD_B2C_CLIENT_SECRET"] not in out.getvalue()
    assert "oops ***" in out.getvalue()


@pytest.mark.parametrize(
    "args",
    [["--client-secret", "x"], ["--timeout", "0"], ["--user"]],
    ids=["no-secret-flag", "timeout", "user"],
)
def test_usage_errors_exit_2(capsys, args):
    with pytest.raises(SystemExit) as exited:
        main(["doctor", *args])
    assert exited.value.code == 2
    assert "usage: photoshare" in capsys.readouterr().err


def test_help_says_the_secret_comes_only_from_the_environment(capsys):
    with pytest.raises(SystemExit):
        main(["doctor", "--help"])
    assert (
        "EXTERNAL_ID_CLIENT_SECRET) is read only from the environment or .env, never from a flag"
        in capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("email", "masked"),
    [("ann@example.com", "a…@example.com"), ("@example.com", "…@example.com"), ("no-at-sign", "…")],
)
def test_mask_email_keeps_the_first_letter_and_the_domain(email, masked):
    assert mask_email(email) == masked
