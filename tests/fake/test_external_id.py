"""External ID on the fake's ciamlogin.com listener through the real MSAL (`oidc_authority=`):
metadata, the sign-in page for every user kind, code redemption, v2.0 ID tokens with and without
the optional email claim, Entra's error codes, end-session, client credentials and defective
tokens on request."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import msal
import pytest
import requests

from devstack.fake_identity import FakeConfig, FakeIdentityClient, FakeIdentityServer, TlsFiles
from devstack.fake_identity.tokens import pairwise_subject
from tests.fake.helpers import (
    GRAPH_SCOPE,
    REDIRECT_URI,
    User,
    b2c_app,
    external_app,
    external_authority,
    external_metadata_url,
    hand_made_authorize_query,
    new_email,
    verify_jwt,
)

pytestmark = pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")

EXTERNAL_KINDS = ["email_password", "email_otp", "google"]


def ciam_issuer(fake: FakeIdentityServer) -> str:
    tenant_id = fake.config.external_tenant_id
    return f"https://{tenant_id}.ciamlogin.com/{tenant_id}/v2.0"


def authorize_url(fake: FakeIdentityServer) -> str:
    return f"{fake.external_id_url}/{fake.config.external_tenant_id}/oauth2/v2.0/authorize"


def token_url(fake: FakeIdentityServer) -> str:
    return f"{fake.external_id_url}/{fake.config.external_tenant_id}/oauth2/v2.0/token"


def authorize_query(fake: FakeIdentityServer, **change: str) -> dict[str, str]:
    return hand_made_authorize_query(**{"client_id": fake.config.external_client_id, **change})


def start(fake: FakeIdentityServer) -> tuple[msal.ConfidentialClientApplication, dict]:
    app = external_app(fake)
    return app, app.initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)


def signed_in(fake: FakeIdentityServer, control: FakeIdentityClient, user: User) -> dict:
    """Run the whole auth-code flow as the app and a browser would; return MSAL's result."""
    app, flow = start(fake)
    params = control.sign_in_as(flow["auth_uri"], user.as_dict())
    return app.acquire_token_by_auth_code_flow(flow, params)


def verify(fake: FakeIdentityServer, id_token: str) -> dict:
    return verify_jwt(
        id_token, metadata_url=external_metadata_url(fake), audience=fake.config.external_client_id
    )


def redirect_params(response: requests.Response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.text[:300]
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    assert not location.fragment
    return parse_qs(location.query)


# --- metadata -----------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["guid", "domain", "DOMAIN"])
def test_metadata_is_the_ciamlogin_document(fake: FakeIdentityServer, form: str) -> None:
    cfg = fake.config
    tenant = {
        "guid": cfg.external_tenant_id,
        "domain": cfg.external_domain,
        "DOMAIN": cfg.external_domain.upper(),
    }[form]
    metadata = requests.get(external_metadata_url(fake, tenant)).json()

    root = f"{fake.external_id_url}/{cfg.external_tenant_id}"
    assert metadata["issuer"] == ciam_issuer(fake)  # on another host, never fetched
    assert metadata["authorization_endpoint"] == f"{root}/oauth2/v2.0/authorize"
    assert metadata["token_endpoint"] == f"{root}/oauth2/v2.0/token"
    assert metadata["end_session_endpoint"] == f"{root}/oauth2/v2.0/logout"
    assert metadata["jwks_uri"] == f"{root}/discovery/v2.0/keys"
    assert metadata["response_types_supported"] == ["code", "id_token", "code id_token", "id_token token"]
    assert metadata["scopes_supported"] == ["openid", "profile", "email", "offline_access"]
    assert metadata["subject_types_supported"] == ["pairwise"]
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"sub", "tid", "email", "preferred_username", "nonce", "ver"} <= set(metadata["claims_supported"])


def test_the_same_path_on_the_main_listener_is_entra(fake: FakeIdentityServer) -> None:
    """Why External ID has a listener of its own: login.microsoftonline.com serves this path."""
    tenant_id = fake.config.external_tenant_id
    entra = requests.get(f"{fake.base_url}/{tenant_id}/v2.0/.well-known/openid-configuration").json()
    assert entra["issuer"] == f"{fake.base_url}/{tenant_id}/v2.0"
    assert fake.external_id_url != fake.base_url


@pytest.mark.parametrize("which", ["random", "main", "b2c", "contoso.onmicrosoft.com"])
def test_other_tenants_are_aadsts90002(fake: FakeIdentityServer, which: str) -> None:
    cfg = fake.config
    tenant = {
        "random": "11111111-2222-3333-4444-555555555555",
        "main": cfg.main_tenant_id,
        "b2c": cfg.b2c_tenant_id,
        "contoso.onmicrosoft.com": "contoso.onmicrosoft.com",
    }[which]
    response = requests.get(external_metadata_url(fake, tenant))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_tenant" and body["error_codes"] == [90002]
    assert body["error_description"].startswith(f"AADSTS90002: Tenant '{tenant}' not found.")


def test_msal_with_an_unknown_tenant_raises_value_error(fake: FakeIdentityServer) -> None:
    """MSAL hides the AADSTS answer behind a generic ValueError (the app must say more)."""
    with pytest.raises(ValueError, match="Unable to get OIDC authority configuration"):
        external_app(fake, fake.config.main_tenant_id)


def test_jwks_publishes_the_signing_key(fake: FakeIdentityServer) -> None:
    jwks = requests.get(requests.get(external_metadata_url(fake)).json()["jwks_uri"]).json()
    (key,) = jwks["keys"]
    assert key["kty"] == "RSA" and key["use"] == "sig" and key["kid"] == fake.fake.key.kid


# --- sign-in for every kind, with and without the email claim ------------------------------------


@pytest.mark.parametrize("email_claim", [False, True], ids=["no-email-claim", "email-claim"])
@pytest.mark.parametrize("kind", EXTERNAL_KINDS)
def test_msal_flow_returns_a_v2_id_token(
    fake: FakeIdentityServer,
    control: FakeIdentityClient,
    make_external_user: Callable[..., User],
    kind: str,
    email_claim: bool,
) -> None:
    cfg = fake.config
    user = make_external_user(kind)
    control.set_knobs(email_claim=email_claim)
    app, flow = start(fake)
    params = control.sign_in_as(flow["auth_uri"], user.as_dict())
    assert set(params) == {"code", "state", "session_state"} and params["state"] == flow["state"]
    result = app.acquire_token_by_auth_code_flow(flow, params)

    assert "error" not in result, result
    claims = verify(fake, result["id_token"])
    assert claims["iss"] == ciam_issuer(fake)
    assert claims["aud"] == cfg.external_client_id
    assert claims["tid"] == cfg.external_tenant_id
    assert claims["oid"] == user.oid
    assert claims["sub"] != user.oid
    assert claims["ver"] == "2.0"
    assert claims["name"] == user.name
    assert claims["preferred_username"] == user.email
    assert claims["nonce"] == result["id_token_claims"]["nonce"]  # MSAL checked it against the flow
    assert claims["nbf"] == claims["iat"] and claims["exp"] - claims["iat"] == cfg.id_token_lifetime
    assert ("email" in claims) is email_claim
    if email_claim:
        assert claims["email"] == user.email
    assert claims.get("idp") == ("google.com" if kind == "google" else None)
    assert not {"emails", "tfp", "acr"} & set(claims)
    assert result["refresh_token"]  # MSAL asks for offline_access
    assert "access_token" not in result
    assert jwt.get_unverified_header(result["id_token"]) == {
        "alg": "RS256",
        "kid": fake.fake.key.kid,
        "typ": "JWT",
    }
    assert app.get_accounts()[0]["local_account_id"] == user.oid


def test_sub_is_pairwise_and_stable(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_external_user: Callable[..., User]
) -> None:
    cfg, user = fake.config, make_external_user()
    first = signed_in(fake, control, user)["id_token_claims"]["sub"]
    assert signed_in(fake, control, user)["id_token_claims"]["sub"] == first
    salt = fake.fake.pairwise_salt
    assert first == pairwise_subject(salt, cfg.external_tenant_id, cfg.external_client_id, user.oid)
    assert first != pairwise_subject(salt, cfg.external_tenant_id, cfg.client_id, user.oid)  # another app


def test_b2c_kinds_are_not_external_users(
    fake: FakeIdentityServer, control: FakeIdentityClient, user: User
) -> None:
    _, flow = start(fake)
    outcome = control.submit_authorize(flow["auth_uri"], email=user.email, password=user.password)
    assert outcome.status_code == 200 and outcome.error_message == (
        "We couldn't find an account with this email address."
    )


# --- the page: sign-up, passcodes, Google, reset, cancel -------------------------------------------


def test_sign_up_verifies_the_address_then_creates_the_user(
    fake: FakeIdentityServer, control: FakeIdentityClient
) -> None:
    app, flow = start(fake)
    email = new_email()
    shown = control.submit_authorize(
        flow["auth_uri"], "signup", name="New Person", email=email, password="pw1"
    )
    assert shown.status_code == 200 and shown.inbox_code and len(shown.inbox_code) == 8
    assert all(u["email"] != email for u in control.users("external"))  # not before the code

    params = control.submit_form(shown, "otp_verify", code=shown.inbox_code).params
    claims = app.acquire_token_by_auth_code_flow(flow, params)["id_token_claims"]
    assert claims["name"] == "New Person"
    created = next(u for u in control.users("external") if u["email"] == email)
    assert created == {**created, "oid": claims["oid"], "kind": "email_password", "directory": "external"}
    assert "id_token_claims" in signed_in(
        fake, control, User(created["oid"], email, "pw1", "New Person", "email_password", "external")
    )


def test_sign_up_helper_completes_the_code_step(
    fake: FakeIdentityServer, control: FakeIdentityClient
) -> None:
    app, flow = start(fake)
    params = control.sign_up(flow["auth_uri"], name="Helper", email=new_email(), password="pw")
    assert app.acquire_token_by_auth_code_flow(flow, params)["id_token_claims"]["name"] == "Helper"


def test_sign_up_with_a_taken_email_shows_an_error(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_external_user: Callable[..., User]
) -> None:
    user = make_external_user("email_otp")
    _, flow = start(fake)
    outcome = control.submit_authorize(
        flow["auth_uri"], "signup", name="Dup", email=user.email.upper(), password="pw"
    )
    assert outcome.error_message == "An account with this email address already exists."
    assert not outcome.inbox_code


@pytest.mark.parametrize(
    ("kind", "password", "message"),
    [
        ("email_password", "wrong", "Your password is incorrect."),
        ("email_otp", "x", "We couldn't find an account with this email address."),
        ("google", "x", "We couldn't find an account with this email address."),
    ],
)
def test_password_sign_in_errors_show_the_page_again(
    fake: FakeIdentityServer,
    control: FakeIdentityClient,
    make_external_user: Callable[..., User],
    kind: str,
    password: str,
    message: str,
) -> None:
    user = make_external_user(kind)
    _, flow = start(fake)
    outcome = control.submit_authorize(flow["auth_uri"], email=user.email, password=password)
    assert outcome.status_code == 200 and not outcome.params
    assert outcome.error_message == message


def test_passcode_for_an_unknown_address_is_refused(
    fake: FakeIdentityServer, control: FakeIdentityClient
) -> None:
    _, flow = start(fake)
    outcome = control.submit_authorize(flow["auth_uri"], "otp_send", email=new_email())
    assert outcome.error_message == "We couldn't find an account with this email address."
    assert not outcome.inbox_code


def test_wrong_passcode_then_the_right_one(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_external_user: Callable[..., User]
) -> None:
    user = make_external_user("email_otp")
    app, flow = start(fake)
    shown = control.submit_authorize(flow["auth_uri"], "otp_send", email=user.email)
    code = shown.inbox_code
    assert code
    wrong = control.submit_form(shown, "otp_verify", code="00000000" if code != "00000000" else "11111111")
    assert wrong.error_message == "Wrong code. Try again." and wrong.inbox_code == code

    params = control.submit_form(wrong, "otp_verify", code=code).params
    assert app.acquire_token_by_auth_code_flow(flow, params)["id_token_claims"]["oid"] == user.oid
    again = control.submit_form(wrong, "otp_verify", code=code)  # a code works once
    assert again.error_message == "That code has expired. Request a new one."


def test_three_wrong_passcodes_use_the_code_up(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_external_user: Callable[..., User]
) -> None:
    user = make_external_user("email_otp")
    _, flow = start(fake)
    shown = control.submit_authorize(flow["auth_uri"], "otp_send", email=user.email)
    code = shown.inbox_code
    wrong = "00000000" if code != "00000000" else "11111111"
    first = control.submit_form(shown, "otp_verify", code=wrong)
    second = control.submit_form(first, "otp_verify", code=wrong)
    third = control.submit_form(second, "otp_verify", code=wrong)
    assert third.error_message == "Too many incorrect codes. Request a new one."
    assert control.submit_form(second, "otp_verify", code=code or "").error_message == (
        "That code has expired. Request a new one."
    )


def test_google_first_sign_in_signs_up_then_signs_in(
    fake: FakeIdentityServer, control: FakeIdentityClient
) -> None:
    email = f"someone.{secrets.token_hex(4)}@gmail.com"
    google = control.submit_authorize(start(fake)[1]["auth_uri"], "google")
    assert google.status_code == 200 and "Google" in google.html and "google_signin" in google.html

    first = signed_in(fake, control, User("", email, "", "", "google", "external"))["id_token_claims"]
    created = next(u for u in control.users("external") if u["email"] == email)
    assert created["kind"] == "google" and created["oid"] == first["oid"]
    second = signed_in(fake, control, User("", email, "", "", "google", "external"))["id_token_claims"]
    assert second["oid"] == first["oid"] and second["idp"] == "google.com"


def test_google_with_a_local_account_address_is_refused(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_external_user: Callable[..., User]
) -> None:
    user = make_external_user("email_password")
    google = control.submit_authorize(start(fake)[1]["auth_uri"], "google")
    outcome = control.submit_form(google, "google_signin", email=user.email)
    assert outcome.status_code == 200 and "already exists" in (outcome.error_message or "")


def test_forgot_password_resets_in_the_flow_and_signs_in(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_external_user: Callable[..., User]
) -> None:
    user = make_external_user("email_password")
    app, flow = start(fake)
    params = control.reset_password_in_flow(flow["auth_uri"], user.email, "a new password")
    assert "error" not in params
    result = app.acquire_token_by_auth_code_flow(flow, params)
    assert result["id_token_claims"]["oid"] == user.oid

    _, flow = start(fake)
    old = control.submit_authorize(flow["auth_uri"], email=user.email, password=user.password)
    assert old.error_message == "Your password is incorrect."
    renewed = User(user.oid, user.email, "a new password", user.name, user.kind, "external")
    assert signed_in(fake, control, renewed)["id_token_claims"]["oid"] == user.oid


def test_forgot_password_for_an_unknown_address(
    fake: FakeIdentityServer, control: FakeIdentityClient
) -> None:
    forgot = control.submit_authorize(start(fake)[1]["auth_uri"], "forgot")
    outcome = control.submit_form(forgot, "reset_send", email=new_email())
    assert outcome.error_message == "We couldn't find an account with this email address."


@pytest.mark.parametrize("where", ["page", "google page", "code page"])
def test_cancel_is_access_denied_aadsts65004(
    fake: FakeIdentityServer,
    control: FakeIdentityClient,
    make_external_user: Callable[..., User],
    where: str,
) -> None:
    app, flow = start(fake)
    if where == "page":
        outcome = control.submit_authorize(flow["auth_uri"], "cancel")
    elif where == "google page":
        outcome = control.submit_form(control.submit_authorize(flow["auth_uri"], "google"), "cancel")
    else:
        user = make_external_user("email_otp")
        outcome = control.submit_form(
            control.submit_authorize(flow["auth_uri"], "otp_send", email=user.email), "cancel"
        )

    assert outcome.status_code == 302 and (outcome.location or "").startswith(REDIRECT_URI + "?")
    assert outcome.params["error"] == "access_denied"
    assert outcome.params["state"] == flow["state"]
    description = outcome.params["error_description"]
    assert description.startswith("AADSTS65004: User declined to consent to access the app.\r\nTrace ID: ")
    assert "\r\nCorrelation ID: " in description and "\r\nTimestamp: " in description
    result = app.acquire_token_by_auth_code_flow(flow, outcome.params)
    assert result["error"] == "access_denied" and "AADSTS65004" in result["error_description"]


# --- what the app never sends, and clients the page cannot trust ---------------------------------


@pytest.mark.parametrize(
    ("change", "error", "code"),
    [
        ({"scope": "openid email"}, "invalid_scope", 70011),
        ({"scope": "openid api://photoshare/read"}, "invalid_scope", 70011),
        ({"scope": "profile"}, "invalid_scope", 70011),
        ({"response_type": "id_token"}, "unsupported_response_type", 70005),
        ({"response_mode": "fragment"}, "invalid_request", 70007),
        ({"response_mode": "form_post"}, "invalid_request", 70007),
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "invalid_request", 9002313),
        ({"code_challenge": "x" * 43}, "invalid_request", 9002313),  # no method means plain
        ({"prompt": "none"}, "login_required", 50058),
    ],
    ids=[
        "email-scope",
        "api-scope",
        "no-openid",
        "id_token",
        "fragment",
        "form_post",
        "plain",
        "pkce-default",
        "silent",
    ],
)
def test_request_errors_go_back_to_the_app(
    fake: FakeIdentityServer, change: dict[str, str], error: str, code: int
) -> None:
    query = authorize_query(fake, state="s1", **change)
    sent = redirect_params(requests.get(authorize_url(fake), params=query, allow_redirects=False))
    assert sent["error"] == [error] and sent["state"] == ["s1"]
    assert sent["error_description"][0].startswith(f"AADSTS{code}: ")
    assert "this fake" in sent["error_description"][0].lower()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"client_id": "{b2c_client}"}, 700016),
        ({"client_id": "5e5a2d8e-0000-4000-8000-000000000000"}, 700016),
        ({"client_id": ""}, 900144),
        ({"redirect_uri": "javascript:alert(1)"}, 50011),
        ({"redirect_uri": "ftp://localhost/cb"}, 50011),
    ],
    ids=["b2c-client", "unknown-client", "no-client", "javascript", "ftp"],
)
def test_untrusted_client_or_redirect_uri_gets_an_error_page(
    fake: FakeIdentityServer, change: dict[str, str], code: int
) -> None:
    change = {k: v.format(b2c_client=fake.config.client_id) for k, v in change.items()}
    response = requests.get(
        authorize_url(fake), params=authorize_query(fake, **change), allow_redirects=False
    )
    assert response.status_code == 400 and response.headers["Content-Type"].startswith("text/html")
    assert f"AADSTS{code}: " in response.text


def test_unknown_tenant_on_the_page_is_an_error_page(fake: FakeIdentityServer) -> None:
    url = f"{fake.external_id_url}/{fake.config.b2c_tenant_id}/oauth2/v2.0/authorize"
    response = requests.get(url, params=authorize_query(fake))
    assert response.status_code == 400 and "AADSTS90002: " in response.text


@pytest.fixture(scope="module")
def registered(fake_tls: TlsFiles) -> Iterator[FakeIdentityServer]:
    """A fake whose app registrations list their redirect URIs (the session-scoped one accepts any)."""
    config = FakeConfig.random(redirect_uris=[REDIRECT_URI, "http://localhost:5000/"])
    with FakeIdentityServer(config, tls=fake_tls) as server:
        yield server


def test_only_registered_redirect_uris_are_trusted(
    registered: FakeIdentityServer, fake_tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake_tls.bundle_pem))
    url = authorize_url(registered)
    other = requests.get(
        url, params=authorize_query(registered, redirect_uri="http://localhost:5000/elsewhere")
    )
    assert other.status_code == 400
    assert "AADSTS50011: The redirect URI &#39;http://localhost:5000/elsewhere&#39;" in other.text
    page = requests.get(url, params=authorize_query(registered))
    assert page.status_code == 200 and "Sign in with Google" in page.text


@pytest.mark.parametrize(
    ("target", "redirected"),
    [("http://localhost:5000/", True), ("http://localhost:5000/not-registered", False), ("", False)],
)
def test_end_session_honours_only_registered_uris(
    registered: FakeIdentityServer,
    fake_tls: TlsFiles,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    redirected: bool,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake_tls.bundle_pem))
    logout = requests.get(external_metadata_url(registered)).json()["end_session_endpoint"]
    query = {"post_logout_redirect_uri": target, "state": "st"} if target else {}
    response = requests.get(logout, params=query, allow_redirects=False)
    if redirected:
        assert response.status_code == 302 and response.headers["Location"] == f"{target}?state=st"
    else:
        assert response.status_code == 200 and "You signed out of your account" in response.text
    assert FakeIdentityClient(registered.base_url).counters()["external_logout"] >= 1


def test_end_session_with_the_tenant_domain(fake: FakeIdentityServer, control: FakeIdentityClient) -> None:
    logout = f"{fake.external_id_url}/{fake.config.external_domain}/oauth2/v2.0/logout"
    back = "http://localhost:5000/"
    response = requests.get(logout, params={"post_logout_redirect_uri": back}, allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"] == back
    assert control.counters()["external_logout"] == 1 and control.counters()["logout"] == 0


# --- the token endpoint ------------------------------------------------------------------------------


def test_replayed_code_is_aadsts54005(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_external_user: Callable[..., User]
) -> None:
    app, flow = start(fake)
    params = control.sign_in_as(flow["auth_uri"], make_external_user().as_dict())
    assert "id_token" in app.acquire_token_by_auth_code_flow(dict(flow), params)
    replay = app.acquire_token_by_auth_code_flow(dict(flow), params)
    assert replay["error"] == "invalid_grant" and replay["error_codes"] == [54005]


def test_unknown_code_is_aadsts70008(fake: FakeIdentityServer) -> None:
    cfg = fake.config
    response = requests.post(
        token_url(fake),
        data={"grant_type": "authorization_code", "code": "nope", "redirect_uri": REDIRECT_URI},
        auth=(cfg.external_client_id, cfg.external_client_secret),
    )
    assert response.status_code == 400 and response.json()["error_codes"] == [70008]


@pytest.mark.parametrize(
    ("tamper", "code"),
    [({"code_verifier": "x" * 43}, 501481), ({"redirect_uri": "http://localhost:5000/elsewhere"}, 500112)],
    ids=["pkce", "redirect_uri"],
)
def test_code_redemption_checks_pkce_and_redirect_uri(
    fake: FakeIdentityServer,
    control: FakeIdentityClient,
    make_external_user: Callable[..., User],
    tamper: dict[str, str],
    code: int,
) -> None:
    app, flow = start(fake)
    params = control.sign_in_as(flow["auth_uri"], make_external_user().as_dict())
    result = app.acquire_token_by_auth_code_flow({**flow, **tamper}, params)
    assert result["error"] == "invalid_grant" and result["error_codes"] == [code]


@pytest.mark.parametrize(
    ("credentials", "status", "code"),
    [
        ("wrong-secret", 401, 7000215),
        ("b2c-client", 400, 700016),
        ("no-secret", 401, 7000218),
    ],
)
def test_token_endpoint_checks_the_client(
    fake: FakeIdentityServer, credentials: str, status: int, code: int
) -> None:
    cfg = fake.config
    data = {"grant_type": "authorization_code", "code": "x", "redirect_uri": REDIRECT_URI}
    data.update(
        {
            "wrong-secret": {"client_id": cfg.external_client_id, "client_secret": "wrong"},
            "b2c-client": {"client_id": cfg.client_id, "client_secret": cfg.client_secret},
            "no-secret": {"client_id": cfg.external_client_id},
        }[credentials]
    )
    response = requests.post(token_url(fake), data=data)
    assert response.status_code == status
    assert response.json()["error_codes"] == [code]


def test_b2c_codes_and_external_codes_do_not_cross(
    fake: FakeIdentityServer,
    control: FakeIdentityClient,
    user: User,
    make_external_user: Callable[..., User],
) -> None:
    cfg = fake.config
    b2c_flow = b2c_app(fake).initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    b2c_code = control.sign_in_as(b2c_flow["auth_uri"], user.as_dict())["code"]
    at_external = requests.post(
        token_url(fake),
        data={"grant_type": "authorization_code", "code": b2c_code, "redirect_uri": REDIRECT_URI},
        auth=(cfg.external_client_id, cfg.external_client_secret),
    )
    assert at_external.json()["error_codes"] == [700005]

    _, flow = start(fake)
    external_code = control.sign_in_as(flow["auth_uri"], make_external_user().as_dict())["code"]
    b2c_token = f"{fake.base_url}/{cfg.b2c_domain}/B2C_1_signupsignin/oauth2/v2.0/token"
    at_b2c = requests.post(
        b2c_token,
        data={"grant_type": "authorization_code", "code": external_code, "redirect_uri": REDIRECT_URI},
        auth=(cfg.client_id, cfg.client_secret),
    )
    assert at_b2c.json()["error_description"].startswith("AADB2C90088: ")


def test_refresh_token_grant_is_refused_saying_so(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_external_user: Callable[..., User]
) -> None:
    cfg = fake.config
    refresh = signed_in(fake, control, make_external_user())["refresh_token"]
    response = requests.post(
        token_url(fake),
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        auth=(cfg.external_client_id, cfg.external_client_secret),
    )
    body = response.json()
    assert response.status_code == 400 and body["error"] == "unsupported_grant_type"
    assert (
        body["error_codes"] == [70003]
        and "This fake redeems authorization codes" in body["error_description"]
    )


def test_raw_code_redemption_body(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_external_user: Callable[..., User]
) -> None:
    """The protocol by hand (no PKCE, no nonce, no client_info): a plain JSON answer."""
    cfg, user = fake.config, make_external_user()
    auth_uri = f"{authorize_url(fake)}?{urlencode(authorize_query(fake, state='abc'))}"
    params = control.sign_in_as(auth_uri, user.as_dict())
    body = requests.post(
        token_url(fake),
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": REDIRECT_URI,
            "client_id": cfg.external_client_id,
            "client_secret": cfg.external_client_secret,
        },
    ).json()
    assert set(body) == {"token_type", "scope", "id_token"}
    claims = verify(fake, body["id_token"])
    assert claims["oid"] == user.oid and "nonce" not in claims


# --- client credentials on ciamlogin.com -------------------------------------------------------------


def test_client_credentials_on_ciamlogin(fake: FakeIdentityServer, control: FakeIdentityClient) -> None:
    cfg = fake.config
    result = external_app(fake).acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" in result, result
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["tid"] == cfg.external_tenant_id and claims["appid"] == cfg.external_client_id
    assert claims["roles"] == ["User.Read.All"]
    assert control.counters()["external_token"] == 1
    assert control.counters()["client_credentials_token"] == 0


def test_client_credentials_on_ciamlogin_for_the_b2c_client_is_aadsts700016(fake: FakeIdentityServer) -> None:
    cfg = fake.config
    app = external_app(fake, client_id=cfg.client_id, secret=cfg.client_secret)
    result = app.acquire_token_for_client(GRAPH_SCOPE)
    assert result["error"] == "unauthorized_client" and result["error_codes"] == [700016]
    assert cfg.client_id in result["error_description"]


# --- defective ID tokens on request ------------------------------------------------------------------


EXPECTED_FAILURE = {
    "wrong_aud": jwt.InvalidAudienceError,
    "wrong_iss": jwt.InvalidIssuerError,
    "expired": jwt.ExpiredSignatureError,
    "bad_signature": jwt.InvalidSignatureError,
    "alg_none": jwt.InvalidAlgorithmError,
}


@pytest.mark.parametrize("defect", sorted(EXPECTED_FAILURE))
def test_next_id_token_defect_fails_validation_once(
    fake: FakeIdentityServer,
    control: FakeIdentityClient,
    make_external_user: Callable[..., User],
    defect: str,
) -> None:
    user = make_external_user()
    control.set_knobs(next_id_token=defect)
    defective = signed_in(fake, control, user)  # MSAL does not validate: the app must
    with pytest.raises(EXPECTED_FAILURE[defect]):
        verify(fake, defective["id_token"])
    verify(fake, signed_in(fake, control, user)["id_token"])
    assert control.knobs()["next_id_token"] is None


def test_wrong_iss_names_another_tenant_on_ciamlogin(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_external_user: Callable[..., User]
) -> None:
    control.set_knobs(next_id_token="wrong_iss")
    iss = signed_in(fake, control, make_external_user())["id_token_claims"]["iss"]
    other = iss.split("/")[3]
    assert other != fake.config.external_tenant_id and iss == f"https://{other}.ciamlogin.com/{other}/v2.0"


def test_wrong_tid_is_a_valid_token_of_another_tenant(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_external_user: Callable[..., User]
) -> None:
    control.set_knobs(next_id_token="wrong_tid")
    claims = verify(
        fake, signed_in(fake, control, make_external_user())["id_token"]
    )  # signature, iss, aud fine
    assert claims["tid"] != fake.config.external_tenant_id
    assert control.knobs()["next_id_token"] is None


def test_wrong_tid_waits_for_an_external_id_token(
    fake: FakeIdentityServer,
    control: FakeIdentityClient,
    user: User,
    make_external_user: Callable[..., User],
) -> None:
    """A B2C ID token has no tid to get wrong: it leaves the defect for the next External ID one."""
    control.set_knobs(next_id_token="wrong_tid")
    app = b2c_app(fake)
    flow = app.initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    b2c = app.acquire_token_by_auth_code_flow(flow, control.sign_in_as(flow["auth_uri"], user.as_dict()))
    assert "tid" not in b2c["id_token_claims"]
    assert control.knobs()["next_id_token"] == "wrong_tid"
    external = signed_in(fake, control, make_external_user())["id_token_claims"]
    assert external["tid"] != fake.config.external_tenant_id


def test_wrong_policy_waits_for_a_b2c_token(
    fake: FakeIdentityServer,
    control: FakeIdentityClient,
    user: User,
    make_external_user: Callable[..., User],
) -> None:
    """An External ID ID token names no user flow: it leaves the defect for the next B2C one."""
    control.set_knobs(next_id_token="wrong_policy")
    external = signed_in(fake, control, make_external_user())["id_token_claims"]
    assert "tfp" not in external and external["tid"] == fake.config.external_tenant_id
    assert control.knobs()["next_id_token"] == "wrong_policy"
    app = b2c_app(fake)
    flow = app.initiate_auth_code_flow(scopes=[], redirect_uri=REDIRECT_URI)
    b2c = app.acquire_token_by_auth_code_flow(flow, control.sign_in_as(flow["auth_uri"], user.as_dict()))
    assert b2c["id_token_claims"]["tfp"] not in fake.config.policies


def test_wrong_nonce_is_caught_by_msal(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_external_user: Callable[..., User]
) -> None:
    control.set_knobs(next_id_token="wrong_nonce")
    with pytest.raises(RuntimeError, match="nonce"):
        signed_in(fake, control, make_external_user())


def test_counters_count_the_external_flow(
    fake: FakeIdentityServer, control: FakeIdentityClient, make_external_user: Callable[..., User]
) -> None:
    signed_in(fake, control, make_external_user("email_otp"))
    counters = control.counters()
    assert counters["external_metadata"] == 1
    assert counters["external_authorize"] == 1
    assert counters["external_authorize_submit"] == 2  # ask for a code, enter it
    assert counters["external_token"] == 1
    assert counters["metadata"] == counters["authorize"] == counters["b2c_token"] == 0


def test_external_listener_serves_the_control_api_over_the_same_state(
    fake: FakeIdentityServer, control: FakeIdentityClient
) -> None:
    via_external = FakeIdentityClient(fake.external_id_url)
    created = via_external.add_user(new_email(), kind="email_otp", directory="external")
    assert any(u["oid"] == created["oid"] for u in control.users("external"))
    assert external_authority(fake).startswith(fake.external_id_url)
