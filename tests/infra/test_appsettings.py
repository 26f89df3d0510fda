"""The web app's settings are built from app/settings.py: nothing required is ever forgotten."""

from __future__ import annotations

import dataclasses

import pytest

from app.settings import SETTINGS, SETTINGS_BY_NAME, Setting
from infra import appsettings
from infra.appsettings import CLIENT_SECRET_NAMES, ContractError, Fixed, FromKeyVault, NotInAzure
from infra.config import ConfigError
from tests.infra.conftest import (
    CLIENT_ID,
    CLIENT_SECRETS,
    EXTERNAL_TENANT,
    PLATFORMS,
    SETTING_PREFIXES,
    contains_secret,
)

pytestmark = pytest.mark.infra

KEY_VAULT_REFERENCE = "@Microsoft.KeyVault(SecretUri=https://"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_setting_the_app_requires_is_in_the_web_apps_settings(deployed, platform) -> None:
    settings = deployed(platform).app_settings
    for setting in SETTINGS:
        if setting.platform not in (None, platform):
            continue
        if setting.requirement in ("required", "outside_development"):
            assert settings.get(setting.name), f"{setting.name} is required but missing"
    assert any(settings.get(s.name) for s in SETTINGS if s.requirement == "storage")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_site_gets_its_platforms_settings_and_none_of_the_others(deployed, platform) -> None:
    """The app refuses to start when a setting of the other platform is set."""
    settings = deployed(platform).app_settings
    assert settings["IDENTITY_PLATFORM"] == platform
    ours = {s.name for s in SETTINGS if s.platform == platform}
    theirs = {s.name for s in SETTINGS if s.platform not in (None, platform)}
    assert ours & set(settings)
    assert not theirs & set(settings)
    other_prefix = next(p for name, p in SETTING_PREFIXES.items() if name != platform)
    assert not [name for name in settings if name.startswith(other_prefix)]


def test_an_external_id_site_gets_exactly_the_external_id_settings(deployed) -> None:
    settings = deployed("external_id").app_settings
    of_a_platform = {s.name for s in SETTINGS if s.platform is not None}
    assert of_a_platform & set(settings) == {
        "EXTERNAL_ID_TENANT_SUBDOMAIN",
        "EXTERNAL_ID_TENANT_ID",
        "EXTERNAL_ID_CLIENT_ID",
        "EXTERNAL_ID_CLIENT_SECRET",
    }  # EXTERNAL_ID_AUTHORITY: the app derives it from subdomain and tenant id
    assert settings["IDENTITY_PLATFORM"] == "external_id"
    assert settings["EXTERNAL_ID_TENANT_SUBDOMAIN"] == "adatumcustomers"
    assert settings["EXTERNAL_ID_TENANT_ID"] == EXTERNAL_TENANT
    assert settings["EXTERNAL_ID_CLIENT_ID"] == CLIENT_ID
    assert not [name for name in settings if name.startswith("AZURE_AD_B2C_")]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_client_secret_is_a_key_vault_reference_to_its_own_secret(deployed, platform) -> None:
    deployment = deployed(platform)
    vault = deployment.one("azure-native:keyvault:Vault").plain["vaultName"]
    secret_name = CLIENT_SECRET_NAMES[platform]
    reference = deployment.app_settings[f"{SETTING_PREFIXES[platform]}CLIENT_SECRET"]
    assert reference.startswith(f"{KEY_VAULT_REFERENCE}{vault}.vault.azure.net/secrets/{secret_name}/")
    assert CLIENT_SECRETS[platform] not in reference
    stored = deployment.named(f"secrets-{secret_name}")
    assert contains_secret(stored.inputs["properties"])
    assert stored.plain["properties"]["value"] == CLIENT_SECRETS[platform]
    names = {s.plain["secretName"] for s in deployment.of_type("azure-native:keyvault:Secret")}
    assert names == {secret_name, "database-url", "database-owner-url", "flask-secret-key"}


def test_a_changed_client_secret_changes_the_reference_so_the_site_reads_it_at_once(deploy) -> None:
    """Versioned references: App Service resolves them again on a configuration change."""
    first = deploy(platform="external_id").app_settings["EXTERNAL_ID_CLIENT_SECRET"]
    rotated = deploy(
        {"photoshare:externalIdClientSecret": "a-new-secret-value"}, platform="external_id"
    ).app_settings["EXTERNAL_ID_CLIENT_SECRET"]
    assert first != rotated
    assert first.rsplit("/", 1)[0] == rotated.rsplit("/", 1)[0]


def test_a_custom_external_id_authority_is_passed_on(deploy) -> None:
    authority = f"https://login.adatum.example/{EXTERNAL_TENANT}/v2.0"
    deployment = deploy({"photoshare:externalIdAuthority": authority + "/"}, platform="external_id")
    assert deployment.app_settings["EXTERNAL_ID_AUTHORITY"] == authority


def test_in_azure_storage_is_reached_by_endpoint_and_identity_not_a_connection_string(default) -> None:
    settings = default.app_settings
    assert settings["AZURE_STORAGE_ACCOUNT_URL"].startswith("https://st")
    assert settings["AZURE_STORAGE_ACCOUNT_URL"].endswith(".blob.core.windows.net/")
    assert "AZURE_STORAGE_CONNECTION_STRING" not in settings
    assert settings["AZURE_STORAGE_CONTAINER"] == "images"


def test_settings_carry_the_stack_values(default) -> None:
    settings = default.app_settings
    assert settings["APP_ENV"] == "production"
    assert settings["IDENTITY_PLATFORM"] == "b2c"
    assert settings["AZURE_AD_B2C_TENANT_NAME"] == "adatumb2c"
    assert settings["AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY"] == "B2C_1_signupsignin"
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"].startswith("InstrumentationKey=")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_secret_setting_is_a_key_vault_reference(deployed, platform) -> None:
    deployment = deployed(platform)
    settings = deployment.app_settings
    vault = deployment.one("azure-native:keyvault:Vault").plain["vaultName"]
    for setting in SETTINGS:
        if setting.secret and setting.name in settings:
            value = settings[setting.name]
            assert value.startswith(f"{KEY_VAULT_REFERENCE}{vault}.vault.azure.net/secrets/"), setting.name
            assert value.endswith(")")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_only_declared_and_platform_settings_are_set(deployed, platform) -> None:
    declared = {s.name for s in SETTINGS}
    assert set(deployed(platform).app_settings) <= declared | appsettings.PLATFORM_SETTINGS


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
    assert settings["AZURE_AUTHORITY_HOST"] == "https://login.microsoftonline.us"
    assert settings["AZURE_AD_B2C_AUTHORITY_HOST"] == "https://login.contoso.com"


def test_a_new_required_setting_the_infra_forgets_fails_before_anything_is_declared(
    deploy, monkeypatch
) -> None:
    extra = Setting(
        "NEW_REQUIRED_THING", "new_required_thing", "something the app now needs", requirement="required"
    )
    monkeypatch.setattr(appsettings, "SETTINGS", (*SETTINGS, extra))
    with pytest.raises(ContractError, match="NEW_REQUIRED_THING is required by the app"):
        deploy()


def test_a_new_required_external_id_setting_the_infra_forgets_fails_an_external_id_stack(
    deploy, monkeypatch
) -> None:
    extra = Setting(
        "EXTERNAL_ID_NEW_THING",
        "new_thing",
        "something External ID now needs",
        requirement="required",
        platform="external_id",
    )
    monkeypatch.setattr(appsettings, "SETTINGS", (*SETTINGS, extra))
    with pytest.raises(ContractError, match="EXTERNAL_ID_NEW_THING is required by the app"):
        deploy(platform="external_id")
    deploy()  # a B2C site leaves it unset, as the app wants


def test_a_new_secret_setting_must_come_from_key_vault(deploy, monkeypatch) -> None:
    extra = Setting("NEW_API_KEY", "new_api_key", "a token", requirement="required", secret=True)
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
    secret = Setting("API_TOKEN", "api_token", "token", requirement="required", secret=True)
    with pytest.raises(ContractError, match="API_TOKEN is a secret"):
        appsettings.check({"API_TOKEN": appsettings.Fixed("plain-text")}, [secret])
    url = Setting("URL", "url", "u", requirement="storage")
    conn = dataclasses.replace(url, name="CONN")
    with pytest.raises(ContractError, match="one of URL / CONN is required"):
        appsettings.check({"URL": NotInAzure("x"), "CONN": NotInAzure("y")}, [url, conn])
    appsettings.check({"API_TOKEN": FromKeyVault("api-token")}, [secret])


def test_check_refuses_a_value_for_the_other_platforms_setting() -> None:
    b2c_id = SETTINGS_BY_NAME["AZURE_AD_B2C_TENANT_ID"]
    platform = SETTINGS_BY_NAME["IDENTITY_PLATFORM"]
    with pytest.raises(ContractError, match="AZURE_AD_B2C_TENANT_ID is a setting of IDENTITY_PLATFORM=b2c"):
        appsettings.check(
            {"IDENTITY_PLATFORM": Fixed("external_id"), "AZURE_AD_B2C_TENANT_ID": Fixed(CLIENT_ID)},
            [platform, b2c_id],
        )
    appsettings.check(
        {"IDENTITY_PLATFORM": Fixed("external_id"), "AZURE_AD_B2C_TENANT_ID": NotInAzure("external_id")},
        [platform, b2c_id],
    )


@pytest.mark.parametrize(
    ("platform", "name"),
    [("external_id", "AZURE_AD_B2C_PROFILE_EDIT_POLICY"), ("b2c", "EXTERNAL_ID_AUTHORITY")],
)
def test_stack_app_settings_may_not_set_the_other_platforms_settings(deploy, platform, name) -> None:
    with pytest.raises(ConfigError, match=f"appSettings.{name} is a setting of IDENTITY_PLATFORM="):
        deploy({"photoshare:appSettings": {name: "x"}}, platform=platform)


def test_render_refuses_a_key_vault_secret_that_was_not_created() -> None:
    with pytest.raises(ContractError, match="no Key Vault secret 'database-url'"):
        appsettings.render(
            {"DATABASE_URL": FromKeyVault("database-url")}, resources={}, secret_uris={}, platform={}
        )
