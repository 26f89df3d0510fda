import pytest

from app.settings import SETTINGS, Settings, SettingsError

TENANT_ID = "5f6e7d8c-1a2b-4c3d-9e8f-0a1b2c3d4e5f"
CLIENT_ID = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"


def env(**overrides: str) -> dict[str, str]:
    base = {
        "AZURE_AD_B2C_TENANT_NAME": "contoso",
        "AZURE_AD_B2C_TENANT_ID": TENANT_ID,
        "AZURE_AD_B2C_CLIENT_ID": CLIENT_ID,
        "AZURE_AD_B2C_CLIENT_SECRET": "not-a-real-secret",
        "AZURE_STORAGE_ACCOUNT_URL": "https://contosoimages.blob.core.windows.net",
        "DATABASE_URL": "postgresql://app@db.example/photoshare?sslmode=require",
        "SECRET_KEY": "k" * 64,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_defaults_follow_the_contract():
    settings = Settings.from_env(env())
    assert settings.signup_signin_policy == "B2C_1_signupsignin"
    assert settings.password_reset_policy == "B2C_1_passwordreset"
    assert settings.profile_edit_policy == "B2C_1_profileedit"
    assert settings.b2c_authority("B2C_1_x") == "https://contoso.b2clogin.com/contoso.onmicrosoft.com/B2C_1_x"
    assert settings.graph_authority == f"https://login.microsoftonline.com/{TENANT_ID}"
    assert settings.graph_scope == "https://graph.microsoft.com/.default"
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
    assert settings.b2c_authority_base == "https://login.contoso.com/contoso.onmicrosoft.com"
    assert settings.graph_authority == f"https://login.microsoftonline.us/{TENANT_ID}"
    assert settings.graph_endpoint == "https://graph.microsoft.us"
    assert settings.graph_scope == "https://graph.microsoft.us/.default"


def test_every_missing_required_setting_is_named():
    with pytest.raises(SettingsError) as err:
        Settings.from_env({})
    message = str(err.value)
    for setting in SETTINGS:
        if setting.requirement == "required":
            assert setting.name in message
    assert "AZURE_STORAGE_ACCOUNT_URL" in message and "SECRET_KEY" in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("AZURE_AD_B2C_TENANT_ID", "contoso.onmicrosoft.com", "B2C directory's GUID"),
        ("AZURE_AD_B2C_TENANT_NAME", "contoso.b2clogin.com/x", "bare tenant name"),
        ("AZURE_AD_B2C_CLIENT_ID", "my-app", "a GUID"),
        ("GRAPH_ENDPOINT", "http://graph.example", "must use https outside development"),
        ("AZURE_AD_B2C_AUTHORITY_HOST", "http://login.example", "must use https"),
        ("DATABASE_URL", "mysql://x", "postgresql://"),
        ("MAX_UPLOAD_MB", "lots", "MAX_UPLOAD_MB must be a positive whole number"),
        ("AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY", "B2C 1/x", "user-flow name"),
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
    assert settings.graph_endpoint == "http://127.0.0.1:9000"


def test_tenant_name_accepts_full_domain():
    assert (
        Settings.from_env(env(AZURE_AD_B2C_TENANT_NAME="contoso.onmicrosoft.com")).b2c_tenant_name
        == "contoso"
    )


def test_secrets_stay_out_of_repr():
    text = repr(Settings.from_env(env()))
    assert "not-a-real-secret" not in text
    assert "k" * 64 not in text
    assert "app@db.example" not in text
