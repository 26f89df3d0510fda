"""Stack configuration is validated before anything is declared, with messages that carry the fix."""

from __future__ import annotations

import pytest

from infra.config import TENANT_MIXUP, ConfigError
from tests.infra.conftest import B2C_TENANT, CLIENT_ID, MAIN_TENANT

pytestmark = pytest.mark.infra


def test_b2c_tenant_equal_to_the_deploying_tenant_fails_with_the_fix(deploy) -> None:
    with pytest.raises(ConfigError) as error:
        deploy({"photoshare:b2cTenantId": MAIN_TENANT}, deploying_tenant=MAIN_TENANT)
    message = str(error.value)
    assert message == TENANT_MIXUP
    assert "AZURE_AD_B2C_TENANT_ID (photoshare:b2cTenantId)" in message
    assert "main directory" in message
    assert "Azure portal → B2C tenant → Overview" in message


def test_the_tenant_check_ignores_case(deploy) -> None:
    with pytest.raises(ConfigError, match="main directory"):
        deploy({"photoshare:b2cTenantId": MAIN_TENANT.upper()}, deploying_tenant=MAIN_TENANT)


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


def test_a_b2c_tenant_distinct_from_the_deploying_one_passes(deploy) -> None:
    deployment = deploy(deploying_tenant=MAIN_TENANT)
    assert deployment.app_settings["AZURE_AD_B2C_TENANT_ID"] == B2C_TENANT


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"photoshare:b2cTenantId": "contosob2c.onmicrosoft.com"}, "must be the B2C directory's GUID"),
        ({"photoshare:b2cTenantName": "contosob2c.onmicrosoft.com"}, "must be the bare tenant name"),
        ({"photoshare:b2cTenantName": "https://contosob2c.b2clogin.com"}, "bare tenant name"),
        ({"photoshare:b2cClientId": "my-app"}, "Application (client) ID, a GUID"),
        ({"photoshare:b2cClientId": B2C_TENANT}, "not the directory's id"),
        ({"photoshare:b2cClientSecret": None}, "pulumi config set --secret b2cClientSecret"),
        ({"photoshare:b2cTenantName": None}, "photoshare:b2cTenantName is required"),
        ({"azure-native:location": None}, "azure-native:location is required"),
        ({"photoshare:b2cSignupSigninPolicy": "B2C 1 sign in"}, "user-flow name"),
        ({"photoshare:b2cAuthorityHost": "http://login.contoso.com"}, "https host name"),
        ({"photoshare:graphEndpoint": "http://graph.example"}, "must be an https URL"),
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


def test_create_app_needs_no_client_id_or_secret(deploy) -> None:
    deployment = deploy(
        {
            "photoshare:b2cCreateApp": True,
            "photoshare:b2cClientId": None,
            "photoshare:b2cClientSecret": None,
        }
    )
    assert deployment.app_settings["AZURE_AD_B2C_CLIENT_ID"] != CLIENT_ID
