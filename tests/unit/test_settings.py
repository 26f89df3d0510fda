import dataclasses

import pytest

from app.settings import SETTINGS, IdentitySettings, Settings, SettingsError

TENANT_ID = "5f6e7d8c-1a2b-4c3d-9e8f-0a1b2c3d4e5f"
CLIENT_ID = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"


def env(**overrides: str | None) -> dict[str, str]:
    base = {
        "AZURE_AD_B2C_TENANT_NAME": "tailspintoys",
        "AZURE_AD_B2C_TENANT_ID": TENANT_ID,
        "AZURE_AD_B2C_CLIENT_ID": CLIENT_ID,
        "AZURE_AD_B2C_CLIENT_SECRET": "not-a-real-secret",
        "AZURE_STORAGE_ACCOUNT_URL": "https://contosoimages.blob.core.windows.net",
        "DATABASE_URL": "postgresql://app@db.example/photoshare?sslmode=verify-full&sslrootcert=system",
        "SECRET_KEY": "k" * 64,
    }
    merged: dict[str, str | None] = {**base, **overrides}
    return {k: v for k, v in merged.items() if v is not None}


def test_defaults_follow_the_contract():
    settings = Settings.from_env(env())
    identity = settings.identity
    base = "https://tailspintoys.b2clogin.com/tailspintoys.onmicrosoft.com"
    assert {name: (a.name, a.url, a.metadata_url) for name, a in identity.authorities.items()} == {
        name: (policy, f"{base}/{policy}", f"{base}/{policy}/v2.0/.well-known/openid-configuration")
        for name, policy in (
            ("sign_in", "B2C_1_signupsignin"),
            ("password_reset", "B2C_1_passwordreset"),
            ("profile_edit", "B2C_1_profileedit"),
        )
    }
    assert identity.graph_authority == f"https://login.microsoftonline.com/{TENANT_ID}"
    assert identity.graph_scope == "https://graph.microsoft.com/.default"
    assert settings.storage_container == "images"
    assert settings.max_upload_bytes == 20 * 1024 * 1024
    assert not settings.development


def test_custom_domain_and_sovereign_cloud():
    settings = Settings.from_env(
        env(
            AZURE_AD_B2C_AUTHORITY_HOST="login.contoso.com",
            AZURE_AUTHORITY_HOST="login.microsoftonline.us",
            GRAPH_ENDPOINT="https://graph.microsoft.us/",
        )
    )
    identity = settings.identity
    assert identity.authorities["sign_in"].url == (
        "https://login.contoso.com/tailspintoys.onmicrosoft.com/B2C_1_signupsignin"
    )
    assert identity.graph_authority == f"https://login.microsoftonline.us/{TENANT_ID}"
    assert identity.graph_endpoint == "https://graph.microsoft.us"
    assert identity.graph_scope == "https://graph.microsoft.us/.default"


def test_every_missing_required_setting_is_named():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({})
    message = str(err.value)
    for setting in SETTINGS:
        if setting.requirement == "required" and setting.platform in (None, "b2c"):  # the default
            assert setting.name in message
    assert "AZURE_STORAGE_ACCOUNT_URL" in message and "SECRET_KEY" in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("AZURE_AD_B2C_TENANT_ID", "contoso.onmicrosoft.com", "a GUID: the B2C directory's tenant id"),
        ("AZURE_AD_B2C_TENANT_NAME", "contoso.b2clogin.com/x", "bare tenant name"),
        ("AZURE_AD_B2C_CLIENT_ID", "my-app", "a GUID"),
        ("GRAPH_ENDPOINT", "http://graph.example", "must use https outside development"),
        ("AZURE_AD_B2C_AUTHORITY_HOST", "http://login.example", "must use https"),
        ("DATABASE_URL", "mysql://x", "postgresql://"),
        ("DATABASE_URL", "postgresql://app:pw@db.example/photoshare?sslmode=require", "sslmode=verify-full"),
        ("DATABASE_OWNER_URL", "postgresql://owner@db.example/photoshare", "sslmode=verify-full"),
        ("MAX_UPLOAD_MB", "lots", "MAX_UPLOAD_MB must be a positive whole number"),
        ("AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY", "B2C 1/x", "user-flow name"),
        ("AZURE_STORAGE_CONTAINER", "Images_1", "blob container name"),
        ("APP_ENV", "prod", "must be production or development"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(name, value, expected):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env(**{name: value}))
    assert name in str(err.value)
    assert expected in str(err.value)


def test_development_relaxes_https_and_secret_key():
    settings = Settings.from_env(
        env(APP_ENV="development", SECRET_KEY=None, GRAPH_ENDPOINT="http://127.0.0.1:9000")
    )
    assert settings.development
    assert len(settings.secret_key) >= 32
    assert settings.identity.graph_endpoint == "http://127.0.0.1:9000"


def test_tenant_name_accepts_full_domain():
    settings = Settings.from_env(env(AZURE_AD_B2C_TENANT_NAME="TailspinToys.onmicrosoft.com"))
    assert settings.identity.b2c_tenant_name == "tailspintoys"


def test_every_field_is_filled_by_exactly_one_declared_setting():
    """`from_env` is derived from SETTINGS: each dataclass field has one setting, and back."""
    for cls, section in ((IdentitySettings, "identity"), (Settings, "app")):
        init = [f.name for f in dataclasses.fields(cls) if f.init and f.name != "identity"]
        declared = [s.field for s in SETTINGS if s.section == section]
        assert sorted(init) == sorted(declared), cls.__name__


def test_the_identity_settings_alone_need_no_database_or_storage():
    identity = IdentitySettings.from_env({k: v for k, v in env().items() if "AZURE_AD_B2C" in k})
    assert identity.client_id == CLIENT_ID
    with pytest.raises(SettingsError) as err:
        IdentitySettings.from_env({"AZURE_AD_B2C_TENANT_ID": "x"})
    assert not any("DATABASE_URL" in p or "STORAGE" in p for p in err.value.problems)
    assert any(p.startswith("AZURE_AD_B2C_TENANT_ID must be a GUID") for p in err.value.problems)


EXTERNAL_TENANT = "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d"


def external(**overrides: str | None) -> dict[str, str]:
    b2c = {k: None for k in env() if k.startswith("AZURE_AD_B2C_")}
    values: dict[str, str | None] = {
        **b2c,
        "IDENTITY_PLATFORM": "external_id",
        "EXTERNAL_ID_TENANT_SUBDOMAIN": "tailspintoys",
        "EXTERNAL_ID_TENANT_ID": EXTERNAL_TENANT,
        "EXTERNAL_ID_CLIENT_ID": CLIENT_ID,
        "EXTERNAL_ID_CLIENT_SECRET": "not-a-real-secret",
        **overrides,
    }
    return env(**values)


def test_external_id_authority_and_graph_token_come_from_the_external_tenant():
    identity = Settings.from_env(external()).identity
    authority = f"https://tailspintoys.ciamlogin.com/{EXTERNAL_TENANT}/v2.0"
    assert list(identity.authorities) == ["sign_in"]  # reset is inside sign-in; no profile edit
    sign_in = identity.authorities["sign_in"]
    assert (sign_in.url, sign_in.metadata_url) == (authority, f"{authority}/.well-known/openid-configuration")
    assert sign_in.oidc and sign_in.tenant_id == EXTERNAL_TENANT and sign_in.email_claim == "email"
    assert sign_in.discovery_url == (
        "https://tailspintoys.ciamlogin.com/tailspintoys.onmicrosoft.com/v2.0/.well-known/openid-configuration"
    )
    assert identity.graph_authority == f"https://login.microsoftonline.com/{EXTERNAL_TENANT}"
    assert (identity.tenant_id, identity.client_id) == (EXTERNAL_TENANT, CLIENT_ID)
    assert identity.directory.tenant_id_setting == "EXTERNAL_ID_TENANT_ID"


def test_external_id_authority_can_be_a_custom_domain():
    custom = "https://login.tailspintoys.com/" + EXTERNAL_TENANT + "/v2.0/"
    sign_in = Settings.from_env(external(EXTERNAL_ID_AUTHORITY=custom)).identity.authorities["sign_in"]
    assert sign_in.url == custom.rstrip("/")
    assert sign_in.discovery_url is not None and sign_in.discovery_url.startswith(
        "https://login.tailspintoys.com/"
    )


def test_each_platform_requires_only_its_own_settings():
    with pytest.raises(SettingsError) as err:
        Settings.from_env(external(EXTERNAL_ID_TENANT_ID=None, EXTERNAL_ID_CLIENT_SECRET=None))
    assert [p.split(" ")[0] for p in err.value.problems] == [
        "EXTERNAL_ID_TENANT_ID",
        "EXTERNAL_ID_CLIENT_SECRET",
    ]


def test_a_setting_of_the_other_platform_is_named():
    with pytest.raises(SettingsError) as err:
        Settings.from_env(external(AZURE_AD_B2C_TENANT_ID=TENANT_ID))
    assert err.value.problems == [
        "AZURE_AD_B2C_TENANT_ID is a setting of IDENTITY_PLATFORM=b2c, but IDENTITY_PLATFORM is "
        "external_id: remove it, or set IDENTITY_PLATFORM=b2c (and every setting that platform needs)"
    ]
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env(EXTERNAL_ID_TENANT_SUBDOMAIN="tailspintoys"))
    assert err.value.problems[0].startswith(
        "EXTERNAL_ID_TENANT_SUBDOMAIN is a setting of IDENTITY_PLATFORM=external_id"
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"AZURE_AD_B2C_TENANT_NAME": "contoso"},
            "AZURE_AD_B2C_TENANT_NAME is still the sample's placeholder",
        ),
        (
            {"AZURE_AD_B2C_CLIENT_ID": "00000000-0000-0000-0000-000000000000"},
            "AZURE_AD_B2C_CLIENT_ID is still the sample's placeholder (all zeros)",
        ),
        ({"AZURE_AD_B2C_CLIENT_SECRET": ""}, "AZURE_AD_B2C_CLIENT_SECRET is required"),
        ({"IDENTITY_PLATFORM": "entra"}, "IDENTITY_PLATFORM must be b2c or external_id, got 'entra'"),
    ],
)
def test_placeholders_are_refused_as_placeholders(overrides, expected):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env(**overrides))
    assert any(p.startswith(expected) for p in err.value.problems), err.value.problems


def test_a_bad_app_env_is_reported_once():
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env(APP_ENV="staging"))
    assert [p for p in err.value.problems if "APP_ENV" in p] == [
        "APP_ENV must be production or development, got 'staging'"
    ]


def test_secrets_stay_out_of_repr():
    text = repr(Settings.from_env(env()))
    assert "not-a-real-secret" not in text
    assert "k" * 64 not in text
    assert "app@db.example" not in text


@pytest.mark.parametrize(
    ("url", "development"),
    [
        ("postgresql://app@127.0.0.1:5432/photoshare", False),
        ("postgresql://app@localhost/photoshare", False),
        ("postgresql://app@[::1]/photoshare", False),
        ("postgresql://app@db.example/photoshare", True),
    ],
)
def test_an_unverified_database_connection_is_only_for_this_machine_or_development(url, development):
    """`sslmode=require` encrypts to whoever answers: outside development only a server on
    this machine may be reached without verifying its certificate and name."""
    app_env = "development" if development else "production"
    settings = Settings.from_env(env(APP_ENV=app_env, DATABASE_URL=url, DATABASE_OWNER_URL=url))
    assert settings.database_url == settings.database_owner_url == url


def test_an_unresolved_key_vault_reference_is_named_with_its_likely_cause():
    """What App Service passes on when the site's identity cannot read the secret (yet)."""
    reference = (
        "@Microsoft.KeyVault(SecretUri=https://kv-photoshare.vault.azure.net/secrets/database-url/0a1b)"
    )
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env(DATABASE_URL=reference, AZURE_AD_B2C_CLIENT_SECRET=reference))
    problems = err.value.problems
    assert [p.split()[0] for p in problems] == ["AZURE_AD_B2C_CLIENT_SECRET", "DATABASE_URL"]
    for problem in problems:
        assert "Key Vault reference App Service did not resolve" in problem
        assert "Key Vault Secrets User" in problem and "restart the site" in problem
        assert "must be a postgresql:// URL" not in problem
        assert "kv-photoshare" not in problem  # the reference itself is not echoed


def test_entra_database_auth_takes_no_password_in_the_urls():
    with pytest.raises(SettingsError) as err:
        Settings.from_env(
            env(
                DATABASE_AUTH="entra",
                DATABASE_URL="postgresql://app:secret@db.example/p?sslmode=verify-full",
                DATABASE_OWNER_URL="postgresql://owner@db.example/p?sslmode=verify-full",
            )
        )
    assert err.value.problems == [
        "DATABASE_URL must not hold a password with DATABASE_AUTH=entra: the password is a "
        "Microsoft Entra token taken for each connection"
    ]
    settings = Settings.from_env(env(DATABASE_AUTH="entra", DATABASE_OWNER_CLIENT_ID=CLIENT_ID))
    assert (settings.database_auth, settings.database_owner_client_id) == ("entra", CLIENT_ID)
