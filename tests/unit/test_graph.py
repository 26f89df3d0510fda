import pytest

from app.graph import GraphClient, TokenError, pick_email

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
