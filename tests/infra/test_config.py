"""Stack configuration is validated before anything is declared, with messages that carry the fix."""

from __future__ import annotations

import pytest

from infra.config import TENANT_MIXUP, TENANT_MIXUPS, ConfigError
from tests.infra.conftest import (
    B2C_TENANT,
    CLIENT_ID,
    EXTERNAL_ID_CONFIG,
    EXTERNAL_TENANT,
    MAIN_TENANT,
    PLATFORMS,
    create_app,
    key,
    run,
    secret_end_date,
)

pytestmark = pytest.mark.infra


def test_b2c_tenant_equal_to_the_deploying_tenant_fails_with_the_fix(deploy) -> None:
    with pytest.raises(ConfigError) as error:
        deploy({"photoshare:b2cTenantId": MAIN_TENANT}, deploying_tenant=MAIN_TENANT)
    message = str(error.value)
    assert message == TENANT_MIXUP
    assert message.startswith(
        "photoshare:b2cTenantId (AZURE_AD_B2C_TENANT_ID) is the tenant you are deploying"
    )
    assert "main directory" in message
    assert "Azure portal → switch to the B2C tenant → Overview → Tenant ID" in message


def test_external_tenant_equal_to_the_deploying_tenant_fails_with_the_fix(deploy) -> None:
    with pytest.raises(ConfigError) as error:
        deploy(
            {"photoshare:externalIdTenantId": MAIN_TENANT},
            platform="external_id",
            deploying_tenant=MAIN_TENANT,
        )
    message = str(error.value)
    assert message == TENANT_MIXUPS["external_id"]
    assert message.startswith(
        "photoshare:externalIdTenantId (EXTERNAL_ID_TENANT_ID) is the tenant you are deploying with"
    )
    assert "your workforce tenant" in message
    assert "Entra admin center → switch to the external tenant → Overview → Tenant ID" in message


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_tenant_check_ignores_case(deploy, platform) -> None:
    with pytest.raises(ConfigError, match="is the tenant you are deploying with"):
        deploy(
            {key(platform, "TenantId"): MAIN_TENANT.upper()}, platform=platform, deploying_tenant=MAIN_TENANT
        )


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_tenant_check_applies_when_the_program_creates_the_registration(deploy, platform) -> None:
    """The registration would otherwise be created in the deploying (workforce) tenant."""
    with pytest.raises(ConfigError, match="is the tenant you are deploying with"):
        deploy(
            {**create_app(platform), key(platform, "TenantId"): MAIN_TENANT},
            platform=platform,
            deploying_tenant=MAIN_TENANT,
        )


def test_nothing_is_declared_when_the_check_fails(deploy) -> None:
    from tests.infra import conftest

    recorded: list = []
    original = conftest.RecordingMocks.new_resource

    def spy(self, args):
        recorded.append(args.typ)
        return original(self, args)

    conftest.RecordingMocks.new_resource = spy  # type: ignore[method-assign]
    try:
        with pytest.raises(ConfigError):
            deploy({"photoshare:b2cTenantId": MAIN_TENANT}, deploying_tenant=MAIN_TENANT)
    finally:
        conftest.RecordingMocks.new_resource = original  # type: ignore[method-assign]
    assert recorded == []


def test_stack_keys_are_read_as_the_app_reads_its_settings(deploy) -> None:
    """The app's own parsers: a full tenant domain becomes the bare name, a GUID lower case."""
    deployment = deploy(
        {
            "photoshare:b2cTenantName": "adatumb2c.onmicrosoft.com",
            "photoshare:b2cTenantId": B2C_TENANT.upper(),
        }
    )
    assert deployment.app_settings["AZURE_AD_B2C_TENANT_NAME"] == "adatumb2c"
    assert deployment.app_settings["AZURE_AD_B2C_TENANT_ID"] == B2C_TENANT.lower()


def test_a_b2c_tenant_distinct_from_the_deploying_one_passes(deploy) -> None:
    deployment = deploy(deploying_tenant=MAIN_TENANT)
    assert deployment.app_settings["AZURE_AD_B2C_TENANT_ID"] == B2C_TENANT


def test_external_id_keys_are_read_as_the_app_reads_its_settings(deploy) -> None:
    deployment = deploy(
        {
            "photoshare:identityPlatform": "external_id",  # the app's spelling works too
            "photoshare:externalIdTenantSubdomain": "AdatumCustomers.ciamlogin.com",
            "photoshare:externalIdTenantId": EXTERNAL_TENANT.upper(),
        },
        platform="external_id",
    )
    assert deployment.app_settings["IDENTITY_PLATFORM"] == "external_id"
    assert deployment.app_settings["EXTERNAL_ID_TENANT_SUBDOMAIN"] == "adatumcustomers"
    assert deployment.app_settings["EXTERNAL_ID_TENANT_ID"] == EXTERNAL_TENANT


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"photoshare:externalIdTenantId": None},
            "photoshare:externalIdTenantId is required: GUID of the external tenant",
        ),
        (
            {"photoshare:externalIdTenantId": "00000000-0000-0000-0000-000000000000"},
            "photoshare:externalIdTenantId (EXTERNAL_ID_TENANT_ID) is still the sample's placeholder "
            "(all zeros)",
        ),
        (
            {"photoshare:externalIdClientId": "00000000-0000-0000-0000-000000000000"},
            "photoshare:externalIdClientId (EXTERNAL_ID_CLIENT_ID) is still the sample's placeholder",
        ),
        (
            {"photoshare:externalIdTenantId": "adatumcustomers.onmicrosoft.com"},
            "photoshare:externalIdTenantId (EXTERNAL_ID_TENANT_ID) must be a GUID: the external tenant's id",
        ),
        (
            {"photoshare:externalIdTenantSubdomain": "contoso"},
            "photoshare:externalIdTenantSubdomain (EXTERNAL_ID_TENANT_SUBDOMAIN) is still the sample's "
            "placeholder",
        ),
        (
            {"photoshare:externalIdTenantSubdomain": "https://adatum.ciamlogin.com/"},
            "must be the bare tenant name (contoso of contoso.ciamlogin.com)",
        ),
        ({"photoshare:externalIdTenantSubdomain": None}, "photoshare:externalIdTenantSubdomain is required"),
        ({"photoshare:externalIdClientId": EXTERNAL_TENANT}, "not the directory's id"),
        (
            {"photoshare:externalIdClientSecret": None},
            "photoshare:externalIdClientSecret is required: EXTERNAL_ID_CLIENT_SECRET, set it with "
            "`pulumi config set --secret externalIdClientSecret`",
        ),
        (
            {"photoshare:externalIdAuthority": "http://adatum.ciamlogin.com/x/v2.0"},
            "photoshare:externalIdAuthority (EXTERNAL_ID_AUTHORITY) must use https",
        ),
        (
            {"photoshare:identityPlatform": "entra"},
            "photoshare:identityPlatform (IDENTITY_PLATFORM) must be b2c or external_id, got 'entra'",
        ),
        (
            {"photoshare:b2cTenantId": B2C_TENANT},
            "photoshare:b2cTenantId is a key of identityPlatform=b2c, but photoshare:identityPlatform "
            "is externalId: remove it",
        ),
        (
            {"photoshare:b2cTenantName": "adatumb2c", "photoshare:b2cClientSecret": "s"},
            "photoshare:b2cTenantName, photoshare:b2cClientSecret are keys of identityPlatform=b2c",
        ),
        (
            {**create_app("external_id"), "photoshare:appSecretMonths": 25},
            "photoshare:appSecretMonths must be between 1 and 24, got 25: Entra lets a client secret "
            "live at most 24 months",
        ),
        ({**create_app("external_id"), "photoshare:appSecretMonths": 0}, "must be between 1 and 24, got 0"),
        (
            {**create_app("external_id"), "photoshare:appSecretMonths": "a year"},
            "photoshare:appSecretMonths must be a whole number, got 'a year'",
        ),
        (
            {"photoshare:appSecretMonths": 12},
            "photoshare:appSecretMonths only applies when the program creates the app registration "
            "(photoshare:externalIdCreateApp=true)",
        ),
        (
            {**create_app("external_id"), "photoshare:externalIdClientId": CLIENT_ID},
            "photoshare:externalIdClientId must not be set with photoshare:externalIdCreateApp=true",
        ),
        ({"photoshare:appSecretEndDate": secret_end_date()}, "only applies when the program creates"),
        ({**create_app("external_id"), "photoshare:appSecretEndDate": secret_end_date(-1)}, "has passed"),
        ({**create_app("external_id"), "photoshare:appSecretEndDate": secret_end_date(0)}, "has passed"),
        (
            {**create_app("external_id"), "photoshare:appSecretEndDate": secret_end_date(800)},
            "more than 24 months",
        ),
        ({**create_app("external_id"), "photoshare:appSecretEndDate": "next year"}, "must be a date such as"),
        ({"photoshare:b2cCreateApp": True}, "photoshare:b2cCreateApp is a key of identityPlatform=b2c"),
    ],
)
def test_invalid_external_id_configuration_is_refused_with_the_key_and_the_fix(
    deploy, overrides, expected
) -> None:
    with pytest.raises(ConfigError) as error:
        deploy(overrides, platform="external_id")
    assert expected in str(error.value)


def test_a_b2c_stack_refuses_external_id_keys(deploy) -> None:
    with pytest.raises(ConfigError) as error:
        deploy({"photoshare:externalIdTenantId": EXTERNAL_TENANT, "photoshare:externalIdCreateApp": False})
    assert (
        "photoshare:externalIdTenantId, photoshare:externalIdCreateApp are keys of "
        "identityPlatform=externalId, but photoshare:identityPlatform is b2c (the default): remove them"
    ) in str(error.value)


def test_an_unknown_platform_is_reported_alone(deploy) -> None:
    """Not also as every External ID key "of the other platform"."""
    with pytest.raises(ConfigError) as error:
        deploy({"photoshare:identityPlatform": "entra"}, platform="external_id")
    assert "must be b2c or external_id, got 'entra'" in str(error.value)
    assert "are keys of identityPlatform" not in str(error.value)


def test_an_external_id_client_secret_kept_in_plain_text_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        run(EXTERNAL_ID_CONFIG, secret_keys=[])
    assert (
        "photoshare:externalIdClientSecret is stored in plain text in Pulumi.<stack>.yaml; set it again "
        "with `pulumi config set --secret externalIdClientSecret` and rotate the secret"
    ) in str(error.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"photoshare:b2cTenantId": "contosob2c.onmicrosoft.com"},
            "photoshare:b2cTenantId (AZURE_AD_B2C_TENANT_ID) must be a GUID: the B2C directory's tenant id",
        ),
        ({"photoshare:b2cTenantName": "adatumb2c.b2clogin.com"}, "must be the bare tenant name"),
        ({"photoshare:b2cTenantName": "https://adatumb2c.b2clogin.com"}, "bare tenant name"),
        ({"photoshare:b2cTenantName": "contosob2c"}, "is still the sample's placeholder 'contosob2c'"),
        ({"photoshare:b2cTenantId": "00000000-0000-0000-0000-000000000000"}, "placeholder (all zeros)"),
        (
            {"photoshare:b2cClientId": "my-app"},
            "must be a GUID: the app registration's Application (client) ID",
        ),
        ({"photoshare:b2cClientId": B2C_TENANT}, "not the directory's id"),
        ({"photoshare:b2cClientSecret": None}, "pulumi config set --secret b2cClientSecret"),
        ({"photoshare:b2cTenantName": None}, "photoshare:b2cTenantName is required"),
        ({"azure-native:location": None}, "azure-native:location is required"),
        ({"photoshare:b2cSignupSigninPolicy": "B2C 1 sign in"}, "user-flow name"),
        (
            {"photoshare:b2cAuthorityHost": "http://login.contoso.com"},
            "photoshare:b2cAuthorityHost (AZURE_AD_B2C_AUTHORITY_HOST) must use https",
        ),
        ({"photoshare:b2cAuthorityHost": "login.contoso.com/path"}, "must be a host name"),
        ({"photoshare:graphEndpoint": "http://graph.example"}, "must use https"),
        (
            {"photoshare:appSettings": {"MAX_UPLOAD_MB": "lots"}},
            "appSettings.MAX_UPLOAD_MB must be a positive",
        ),
        ({"photoshare:dbSku": "B1ms"}, "compute size"),
        ({"photoshare:dbVersion": "9.6"}, "photoshare:dbVersion must be one of"),
        ({"photoshare:dbStorageGb": 40}, "photoshare:dbStorageGb must be one of"),
        ({"photoshare:dbHighAvailability": True}, "Burstable servers have no high availability"),
        ({"photoshare:dbBackupRetentionDays": 3}, "between 7 and 35"),
        ({"photoshare:dbNetwork": "private"}, "must be vnet or public"),
        ({"photoshare:appServiceSku": "F1"}, "Free and Shared plans"),
        ({"photoshare:pythonVersion": "3.9"}, "photoshare:pythonVersion must be one of"),
        ({"photoshare:b2cCreateApp": True}, "must not be set with photoshare:b2cCreateApp=true"),
        ({"photoshare:dbFirewallRules": ["203.0.113.7"]}, "only applies with photoshare:dbNetwork=public"),
        (
            {"photoshare:dbNetwork": "public", "photoshare:dbFirewallRules": ["0.0.0.0"]},
            "allow every Azure service",
        ),
        (
            {"photoshare:dbNetwork": "public", "photoshare:dbFirewallRules": ["0.0.0.0-255.255.255.255"]},
            "allow every Azure service",
        ),
        (
            {"photoshare:dbNetwork": "public", "photoshare:dbFirewallRules": ["10.0.0.0/8"]},
            "not a narrow range",
        ),
        (
            {"photoshare:dbNetwork": "public", "photoshare:dbFirewallRules": ["not-an-ip"]},
            "not an IPv4 address",
        ),
        (
            {"photoshare:vnetAddressSpace": "10.20.0.0/23"},
            "photoshare:vnetAddressSpace must be /22 or larger: three /24 subnets (the app, PostgreSQL, "
            "Key Vault's private endpoint), got 10.20.0.0/23",
        ),
        ({"photoshare:vnetAddressSpace": "10.20.0.0"}, "must be /22 or larger"),
        ({"photoshare:vnetAddressSpace": "not-a-cidr"}, "must be an IPv4 CIDR block"),
        ({"photoshare:appSettings": {"NOT_DECLARED": "1"}}, "declares no such setting"),
        ({"photoshare:appSettings": {"DATABASE_URL": "postgresql://x"}}, "secrets come from Key Vault"),
        ({"photoshare:appSettings": {"APP_ENV": "development"}}, "set by infra itself"),
    ],
)
def test_invalid_configuration_is_refused_with_the_key_and_the_fix(deploy, overrides, expected) -> None:
    with pytest.raises(ConfigError) as error:
        deploy(overrides)
    assert expected in str(error.value)


def test_a_client_secret_kept_in_plain_text_is_refused() -> None:
    from tests.infra.conftest import BASE_CONFIG, run

    with pytest.raises(ConfigError, match="stored in plain text"):
        run(BASE_CONFIG, secret_keys=[])


def test_every_problem_is_reported_at_once(deploy) -> None:
    with pytest.raises(ConfigError) as error:
        deploy(
            {
                "photoshare:b2cTenantId": "nope",
                "photoshare:b2cClientId": "also-not-a-guid",
                "photoshare:dbSku": "nope",
            }
        )
    message = str(error.value)
    assert message.count("\n  - ") == 3


@pytest.mark.parametrize("platform", PLATFORMS)
def test_create_app_needs_no_client_id_secret_or_end_date(deploy, platform) -> None:
    deployment = deploy(create_app(platform), platform=platform)
    prefix = "AZURE_AD_B2C_" if platform == "b2c" else "EXTERNAL_ID_"
    assert deployment.app_settings[f"{prefix}CLIENT_ID"] != CLIENT_ID
