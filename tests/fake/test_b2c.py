"""B2C user flows through the real MSAL: metadata, the sign-in page, code redemption,
B2C error codes, and ID tokens that are (or, on request, are not) valid. Only what the app's
MSAL auth-code flow uses is served; the rest of B2C is refused, saying so."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests

from devstack.fake_identity import ID_TOKEN_DEFECTS, FakeIdentityClient, FakeIdentityServer
from tests.fake.helpers import (
    REDIRECT_URI,
    SIGNUP_SIGNIN,
    User,
    b2c_app,
    hand_made_authorize_query,
    new_email,
    verify_jwt,
)

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")


def authority(fake: FakeIdentityServer, policy: str = SIGNUP_SIGNIN) -> str:
    return f"{fake.base_url}/{fake.config.b2c_tenant_name}.onmicrosoft.com/{policy}"


def metadata_url(fake: FakeIdentityServer, policy: str = SIGNUP_SIGNIN) -> str:
    return f"{authority(fake, policy)}/v2.0/.well-known/openid-configuration"


def authorize_query(fake: FakeIdentityServer, **change: str) -> dict[str, str]:
    return hand_made_authorize_query(**{"client_id": fake.config.client_id, **change})


def signed_in(
    fake: FakeIdentityServer, control: FakeIdentityClient, user: User, policy: str = SIGNUP_SIGNIN
) -> dict:
    """Run the whole auth-code flow as the app and a browser would; return MSAL's result."""
    app = b2c_app(fake, policy)
    flow = app.initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    params = control.sign_in(flow["auth_uri"], user.email, user.password)
    return app.acquire_token_by_auth_code_flow(flow, params)


# --- metadata -----------------------------------------------------------------------------------


def test_metadata_looks_like_b2c(fake: FakeIdentityServer) -> None:
    cfg = fake.config
    metadata = requests.get(metadata_url(fake)).json()
    base = f"{fake.base_url}/{cfg.b2c_tenant_name}.onmicrosoft.com/b2c_1_signupsignin"
    assert metadata["issuer"] == f"{fake.base_url}/{cfg.b2c_tenant_id}/v2.0/"
    assert metadata["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert metadata["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert metadata["end_session_endpoint"] == f"{base}/oauth2/v2.0/logout"
    assert metadata["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    for key in (
        "response_modes_supported",
        "response_types_supported",
        "scopes_supported",
        "subject_types_supported",
        "token_endpoint_auth_methods_supported",
        "claims_supported",
    ):
        assert metadata[key], key


@pytest.mark.parametrize(
    "path",
    [
        "{name}.onmicrosoft.com/B2C_1_signupsignin",
        "{name}.ONMICROSOFT.COM/b2c_1_SIGNUPSIGNIN",
        "{tid}/B2C_1_signupsignin",
        "{name}.onmicrosoft.com/B2C_1_passwordreset",
    ],
)
def test_tenant_and_policy_match_case_insensitively(fake: FakeIdentityServer, path: str) -> None:
    cfg = fake.config
    path = path.format(name=cfg.b2c_tenant_name, tid=cfg.b2c_tenant_id)
    response = requests.get(f"{fake.base_url}/{path}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.json()["issuer"] == f"{fake.base_url}/{cfg.b2c_tenant_id}/v2.0/"


@pytest.mark.parametrize(
    "path", ["{name}.onmicrosoft.com/B2C_1_nope", "contoso.onmicrosoft.com/B2C_1_signupsignin"]
)
def test_unknown_policy_or_tenant_is_404(fake: FakeIdentityServer, path: str) -> None:
    path = path.format(name=fake.config.b2c_tenant_name)
    response = requests.get(f"{fake.base_url}/{path}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 404
    assert response.json()["error_description"].startswith("AADB2C90022: ")


def test_jwks_publishes_the_signing_key(fake: FakeIdentityServer) -> None:
    jwks = requests.get(requests.get(metadata_url(fake)).json()["jwks_uri"]).json()
    (key,) = jwks["keys"]
    assert key["kty"] == "RSA" and key["use"] == "sig" and key["kid"] == fake.fake.key.kid


# --- the full flow with MSAL ----------------------------------------------------------------------


def test_msal_auth_code_flow_returns_verified_id_token(
    fake: FakeIdentityServer, control: FakeIdentityClient, user: User
) -> None:
    app = b2c_app(fake)
    flow = app.initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    page = requests.get(flow["auth_uri"])
    assert page.status_code == 200 and "Sign in" in page.text and "Forgot your password?" in page.text

    params = control.sign_in(flow["auth_uri"], user.email, user.password)
    assert set(params) == {"code", "state"} and params["state"] == flow["state"]
    result = app.acquire_token_by_auth_code_flow(flow, params)

    assert "error" not in result, result
    claims = result["id_token_claims"]
    assert claims["oid"] == claims["sub"] == user.oid
    assert claims["emails"] == [user.email]
    assert claims["tfp"] == SIGNUP_SIGNIN
    assert claims["name"] == user.name
    assert claims["ver"] == "1.0"
    assert "idp" not in claims
    assert result["refresh_token"]  # MSAL asks for offline_access
    assert "access_token" not in result  # no API scope requested: B2C returns no access token

    header = jwt.get_unverified_header(result["id_token"])
    assert header == {"alg": "RS256", "kid": fake.fake.key.kid, "typ": "JWT"}
    verified = verify_jwt(result["id_token"], metadata_url=metadata_url(fake), audience=fake.config.client_id)
    assert verified["nonce"] == claims["nonce"]  # MSAL already checked it against the flow
    assert verified["exp"] - verified["iat"] == fake.config.id_token_lifetime
    assert app.get_accounts()[0]["local_account_id"] == user.oid


def test_local_account_without_emails_claim(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_user: Callable[..., User]
) -> None:
    claims = signed_in(fake, control, make_user("local"))["id_token_claims"]
    assert "emails" not in claims and "idp" not in claims


def test_social_account_has_idp_and_no_emails(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_user: Callable[..., User]
) -> None:
    claims = signed_in(fake, control, make_user("social"))["id_token_claims"]
    assert claims["idp"] == "google.com"
    assert "emails" not in claims


def test_replayed_code_is_rejected(fake: FakeIdentityServer, control: FakeIdentityClient, user: User) -> None:
    app = b2c_app(fake)
    flow = app.initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    params = control.sign_in(flow["auth_uri"], user.email, user.password)
    assert "id_token" in app.acquire_token_by_auth_code_flow(dict(flow), params)

    replay = app.acquire_token_by_auth_code_flow(dict(flow), params)
    assert replay["error"] == "invalid_grant"
    assert replay["error_description"].startswith("AADB2C90080: The provided grant has expired.")
    assert control.counters()["b2c_token"] == 2


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ({"code_verifier": "x" * 43}, "AADB2C90182"),
        ({"redirect_uri": "http://localhost:5000/elsewhere"}, "AADB2C90088"),
    ],
    ids=["pkce", "redirect_uri"],
)
def test_code_redemption_checks_pkce_and_redirect_uri(
    fake: FakeIdentityServer,
    control: FakeIdentityClient,
    user: User,
    tamper: dict[str, str],
    code: str,
) -> None:
    app = b2c_app(fake)
    flow = app.initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    params = control.sign_in(flow["auth_uri"], user.email, user.password)
    result = app.acquire_token_by_auth_code_flow({**flow, **tamper}, params)
    assert result["error"] in ("invalid_grant", "invalid_request")
    assert result["error_description"].startswith(code)


def test_token_endpoint_checks_client_secret(fake: FakeIdentityServer) -> None:
    url = f"{authority(fake)}/oauth2/v2.0/token"
    data = {"grant_type": "authorization_code", "code": "x", "client_id": fake.config.client_id}
    response = requests.post(url, data={**data, "client_secret": "wrong"})
    assert response.status_code == 401
    assert response.json()["error_description"].startswith("AADB2C90081: ")


def test_refresh_token_grant_is_refused_saying_so(
    fake: FakeIdentityServer, control: FakeIdentityClient, user: User
) -> None:
    """B2C has the grant; the app never uses it (it discards MSAL's cache after sign-in)."""
    first = signed_in(fake, control, user)
    cfg = fake.config
    response = requests.post(
        f"{authority(fake)}/oauth2/v2.0/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=(cfg.client_id, cfg.client_secret),
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "unsupported_grant_type"
    assert body["error_description"].startswith("AADB2C90086: The supplied grant_type [refresh_token]")
    assert "This fake redeems authorization codes only" in body["error_description"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"scope": "openid offline_access {client_id}"}, "AADB2C90117"),
        ({"scope": "openid https://contoso.onmicrosoft.com/api/read"}, "AADB2C90117"),
        ({"response_mode": "fragment"}, "AADB2C90014"),
        ({"response_mode": "form_post"}, "AADB2C90014"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "AADB2C90184"),
        ({"code_challenge": "x" * 43}, "AADB2C90184"),  # no method means plain
    ],
    ids=["client-id-scope", "api-scope", "fragment", "form_post", "plain-pkce", "pkce-default"],
)
def test_what_the_app_never_sends_is_refused_saying_so(
    fake: FakeIdentityServer, change: dict[str, str], code: str
) -> None:
    """Real B2C serves these; the fake does not imitate them, and its answer says so."""
    change = {k: v.format(client_id=fake.config.client_id) for k, v in change.items()}
    query = authorize_query(fake, state="s1", **change)
    response = requests.get(f"{authority(fake)}/oauth2/v2.0/authorize", params=query, allow_redirects=False)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert not location.fragment
    sent = parse_qs(location.query)
    assert sent["state"] == ["s1"]
    assert sent["error_description"][0].startswith(f"{code}: ")
    assert "This fake" in sent["error_description"][0]


# --- the page: errors, sign-up, other user flows --------------------------------------------------


@pytest.mark.parametrize(
    ("action", "code", "text"),
    [
        ("forgot", "AADB2C90118", "The user has forgotten their password."),
        ("cancel", "AADB2C90091", "The user has cancelled entering self-asserted information."),
    ],
)
def test_forgot_and_cancel_return_b2c_errors(
    fake: FakeIdentityServer, control: FakeIdentityClient, action: str, code: str, text: str
) -> None:
    app = b2c_app(fake)
    flow = app.initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    outcome = control.submit_authorize(flow["auth_uri"], action)

    assert outcome.status_code == 302
    assert (outcome.location or "").startswith(REDIRECT_URI + "?")
    assert outcome.params["error"] == "access_denied"
    assert outcome.params["error_description"].startswith(f"{code}: {text}\r\nCorrelation ID: ")
    assert outcome.params["state"] == flow["state"]
    result = app.acquire_token_by_auth_code_flow(flow, outcome.params)
    assert result["error"] == "access_denied" and code in result["error_description"]


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("{email}", "wrong", "Your password is incorrect."),
        ("nobody@example.com", "x", "We can't seem to find your account."),
    ],
)
def test_bad_credentials_show_the_page_again(
    fake: FakeIdentityServer,
    control: FakeIdentityClient,
    user: User,
    email: str,
    password: str,
    message: str,
) -> None:
    flow = b2c_app(fake).initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    outcome = control.submit_authorize(
        flow["auth_uri"], email=email.format(email=user.email), password=password
    )
    assert outcome.status_code == 200 and not outcome.params
    assert outcome.error_message == message


@pytest.mark.parametrize("kind", ["local_with_emails_claim", "local", "social"])
def test_sign_up_on_the_page_creates_the_user(
    fake: FakeIdentityServer, control: FakeIdentityClient, kind: str
) -> None:
    app = b2c_app(fake)
    flow = app.initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    email = new_email()
    params = control.sign_up(flow["auth_uri"], name="New Person", email=email, password="pw", kind=kind)
    claims = app.acquire_token_by_auth_code_flow(flow, params)["id_token_claims"]

    assert claims["name"] == "New Person"
    assert ("emails" in claims) == (kind == "local_with_emails_claim")
    created = next(u for u in control.users() if u["email"] == email)
    assert created == {**created, "oid": claims["oid"], "kind": kind}
    assert "password" not in created


def test_sign_up_with_a_taken_email_shows_an_error(
    fake: FakeIdentityServer, control: FakeIdentityClient, user: User
) -> None:
    flow = b2c_app(fake).initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    outcome = control.submit_authorize(
        flow["auth_uri"], "signup", name="Dup", email=user.email.upper(), password="pw"
    )
    assert outcome.status_code == 200
    assert outcome.error_message == (
        "A user with the specified ID already exists. Please choose a different one."
    )


@pytest.mark.parametrize(
    ("policy", "heading"),
    [("B2C_1_passwordreset", "Reset your password"), ("B2C_1_profileedit", "Edit your profile")],
)
def test_other_user_flows_complete_like_sign_in(
    fake: FakeIdentityServer, control: FakeIdentityClient, user: User, policy: str, heading: str
) -> None:
    flow = b2c_app(fake, policy).initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    page = requests.get(flow["auth_uri"]).text
    assert heading in page and "Sign up" not in page and "Forgot your password?" not in page
    result = signed_in(fake, control, user, policy)
    assert result["id_token_claims"]["tfp"] == policy


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"client_id": str(uuid.uuid4())}, "AADB2C90018"),
        ({"redirect_uri": "javascript:alert(1)"}, "AADB2C90006"),
        ({"redirect_uri": "ftp://localhost/cb"}, "AADB2C90006"),
    ],
)
def test_untrusted_client_or_redirect_uri_gets_an_error_page(
    fake: FakeIdentityServer, change: dict[str, str], code: str
) -> None:
    response = requests.get(
        f"{authority(fake)}/oauth2/v2.0/authorize", params=authorize_query(fake, **change)
    )
    assert response.status_code == 400
    assert code in response.text


def test_request_errors_go_back_to_the_app(fake: FakeIdentityServer) -> None:
    query = authorize_query(fake, state="s1", prompt="none")
    response = requests.get(f"{authority(fake)}/oauth2/v2.0/authorize", params=query, allow_redirects=False)
    assert response.status_code == 302
    sent = parse_qs(urlsplit(response.headers["Location"]).query)
    assert sent["error"] == ["login_required"] and sent["state"] == ["s1"]
    assert sent["error_description"][0].startswith("AADB2C90077: ")


def test_logout_redirects_back(fake: FakeIdentityServer) -> None:
    url = f"{authority(fake)}/oauth2/v2.0/logout"
    back = "http://localhost:5000/"
    response = requests.get(url, params={"post_logout_redirect_uri": back}, allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"] == back
    page = requests.get(url)
    assert page.status_code == 200 and "signed out" in page.text


# --- defective ID tokens on request -----------------------------------------------------------------


EXPECTED_FAILURE = {
    "wrong_aud": jwt.InvalidAudienceError,
    "wrong_iss": jwt.InvalidIssuerError,
    "expired": jwt.ExpiredSignatureError,
    "bad_signature": jwt.InvalidSignatureError,
    "alg_none": jwt.InvalidAlgorithmError,
}


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@pytest.mark.parametrize("defect", sorted(EXPECTED_FAILURE))
def test_next_id_token_defect_fails_validation_once(
    fake: FakeIdentityServer, control: FakeIdentityClient, user: User, defect: str
) -> None:
    control.set_knobs(next_id_token=defect)
    defective = signed_in(fake, control, user)  # MSAL does not validate: the app must
    with pytest.raises(EXPECTED_FAILURE[defect]):
        verify_jwt(defective["id_token"], metadata_url=metadata_url(fake), audience=fake.config.client_id)
    if defect == "alg_none":
        assert jwt.get_unverified_header(defective["id_token"])["alg"] == "none"

    healthy = signed_in(fake, control, user)
    verify_jwt(healthy["id_token"], metadata_url=metadata_url(fake), audience=fake.config.client_id)
    assert control.knobs()["next_id_token"] is None


def test_wrong_nonce_is_caught_by_msal(
    fake: FakeIdentityServer, control: FakeIdentityClient, user: User
) -> None:
    control.set_knobs(next_id_token="wrong_nonce")
    with pytest.raises(RuntimeError, match="nonce"):
        signed_in(fake, control, user)


def test_wrong_policy_names_another_user_flow(
    fake: FakeIdentityServer, control: FakeIdentityClient, user: User
) -> None:
    """Signed as usual, for the same audience and issuer: only `tfp` tells it apart."""
    control.set_knobs(next_id_token="wrong_policy")
    claims = verify_jwt(
        signed_in(fake, control, user)["id_token"],
        metadata_url=metadata_url(fake),
        audience=fake.config.client_id,
    )
    assert claims["tfp"] not in fake.config.policies
    healthy = signed_in(fake, control, user)["id_token"]
    assert jwt.decode(healthy, options={"verify_signature": False})["tfp"] == fake.config.policies[0]


def test_every_defect_is_covered() -> None:
    """wrong_tid is External ID's (test_external_id): a B2C ID token has no tid."""
    assert set(EXPECTED_FAILURE) | {"wrong_nonce", "wrong_tid", "wrong_policy"} == set(ID_TOKEN_DEFECTS)


def test_raw_flow_without_msal(fake: FakeIdentityServer, control: FakeIdentityClient, user: User) -> None:
    """The protocol by hand (what a non-MSAL client sends), including a plain JSON response."""
    verifier, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(8)
    query = authorize_query(
        fake, state="abc", nonce=nonce, code_challenge=_s256(verifier), code_challenge_method="S256"
    )
    auth_uri = f"{authority(fake)}/oauth2/v2.0/authorize?{urlencode(query)}"
    params = control.sign_in(auth_uri, user.email, user.password)
    cfg = fake.config
    body = requests.post(
        f"{authority(fake)}/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret,
        },
    ).json()
    assert set(body) == {
        "id_token",
        "token_type",
        "not_before",
        "id_token_expires_in",
        "profile_info",
        "scope",
    }
    profile = json.loads(base64.urlsafe_b64decode(body["profile_info"] + "=="))
    assert profile["tid"] == cfg.b2c_tenant_id and profile["idp"] == "LocalAccount"
    claims = verify_jwt(body["id_token"], metadata_url=metadata_url(fake), audience=cfg.client_id)
    assert claims["nonce"] == nonce


def test_counters_count_the_flow(fake: FakeIdentityServer, control: FakeIdentityClient, user: User) -> None:
    signed_in(fake, control, user)
    counters = control.counters()
    assert counters["metadata"] == 1
    assert counters["authorize"] == 1
    assert counters["authorize_submit"] == 1
    assert counters["b2c_token"] == 1
    assert counters["client_credentials_token"] == 0
