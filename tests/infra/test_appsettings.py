"""The web app's settings are built from app/settings.py: nothing required is ever forgotten."""

from __future__ import annotations

import dataclasses

import pytest

from app.settings import SETTINGS, Setting
from infra import appsettings
from infra.appsettings import ContractError, FromKeyVault, NotInAzure

pytestmark = pytest.mark.infra

KEY_VAULT_REFERENCE = "@Microsoft.KeyVault(SecretUri=https://"


def test_every_setting_the_app_requires_is_in_the_web_apps_settings(default) -> None:
    settings = default.app_settings
    for setting in SETTINGS:
        if setting.requirement in ("required", "outside_development"):
            assert settings.get(setting.name), f"{setting.name} is required but missing"
    assert any(settings.get(s.name) for s in SETTINGS if s.requirement == "storage")


def test_in_azure_storage_is_reached_by_endpoint_and_identity_not_a_connection_string(default) -> None:
    settings = default.app_settings
    assert settings["AZURE_STORAGE_ACCOUNT_URL"].startswith("https://st")
    assert settings["AZURE_STORAGE_ACCOUNT_URL"].endswith(".blob.core.windows.net/")
    assert "AZURE_STORAGE_CONNECTION_STRING" not in settings
    assert settings["AZURE_STORAGE_CONTAINER"] == "images"


def test_settings_carry_the_stack_values(default) -> None:
    settings = default.app_settings
    assert settings["APP_ENV"] == "production"
    assert settings["AZURE_AD_B2C_TENANT_NAME"] == "contosob2c"
    assert settings["AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY"] == "B2C_1_signupsignin"
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"].startswith("InstrumentationKey=")


def test_every_secret_setting_is_a_key_vault_reference(default) -> None:
    settings = default.app_settings
    vault = default.one("azure-native:keyvault:Vault").plain["vaultName"]
    for setting in SETTINGS:
        if setting.secret and setting.name in settings:
            value = settings[setting.name]
            assert value.startswith(f"{KEY_VAULT_REFERENCE}{vault}.vault.azure.net/secrets/"), setting.name
            assert value.endswith(")")


def test_only_declared_and_platform_settings_are_set(default) -> None:
    declared = {s.name for s in SETTINGS}
    assert set(default.app_settings) <= declared | appsettings.PLATFORM_SETTINGS


def test_unset_optional_settings_fall_back_to_the_apps_defaults(default) -> None:
    assert "MAX_UPLOAD_MB" not in default.app_settings
    assert "GRAPH_ENDPOINT" not in default.app_settings


def test_declared_optional_settings_can_be_tuned_per_stack(deploy) -> None:
    deployment = deploy(
        {
            "photoshare:appSettings": {"MAX_UPLOAD_MB": "50"},
            "photoshare:graphEndpoint": "https://graph.microsoft.us",
            "photoshare:authorityHost": "login.microsoftonline.us",
            "photoshare:b2cAuthorityHost": "login.contoso.com",
        }
    )
    settings = deployment.app_settings
    assert settings["MAX_UPLOAD_MB"] == "50"
    assert settings["GRAPH_ENDPOINT"] == "https://graph.microsoft.us"
    assert settings["AZURE_AUTHORITY_HOST"] == "login.microsoftonline.us"
    assert settings["AZURE_AD_B2C_AUTHORITY_HOST"] == "login.contoso.com"


def test_a_new_required_setting_the_infra_forgets_fails_before_anything_is_declared(
    deploy, monkeypatch
) -> None:
    extra = Setting("NEW_REQUIRED_THING", "something the app now needs", requirement="required")
    monkeypatch.setattr(appsettings, "SETTINGS", (*SETTINGS, extra))
    with pytest.raises(ContractError, match="NEW_REQUIRED_THING is required by the app"):
        deploy()


def test_a_new_secret_setting_must_come_from_key_vault(deploy, monkeypatch) -> None:
    extra = Setting("NEW_API_KEY", "a token", requirement="required", secret=True)
    monkeypatch.setattr(appsettings, "SETTINGS", (*SETTINGS, extra))
    with pytest.raises(ContractError, match="NEW_API_KEY"):
        deploy()


def test_a_setting_the_app_no_longer_declares_is_reported(deploy, monkeypatch) -> None:
    monkeypatch.setattr(
        appsettings, "SETTINGS", tuple(s for s in SETTINGS if s.name != "AZURE_STORAGE_CONTAINER")
    )
    with pytest.raises(ContractError, match="AZURE_STORAGE_CONTAINER: infra sets it but"):
        deploy()


def test_check_refuses_a_plain_secret_and_a_missing_storage_pair() -> None:
    secret = Setting("API_TOKEN", "token", requirement="required", secret=True)
    with pytest.raises(ContractError, match="API_TOKEN is a secret"):
        appsettings.check({"API_TOKEN": appsettings.Fixed("plain-text")}, [secret])
    url = Setting("URL", "u", requirement="storage")
    conn = dataclasses.replace(url, name="CONN")
    with pytest.raises(ContractError, match="one of URL / CONN is required"):
        appsettings.check({"URL": NotInAzure("x"), "CONN": NotInAzure("y")}, [url, conn])
    appsettings.check({"API_TOKEN": FromKeyVault("api-token")}, [secret])


def test_render_refuses_a_key_vault_secret_that_was_not_created() -> None:
    with pytest.raises(ContractError, match="no Key Vault secret 'database-url'"):
        appsettings.render(
            {"DATABASE_URL": FromKeyVault("database-url")}, resources={}, secret_uris={}, platform={}
        )
