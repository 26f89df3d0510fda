"""What Azure itself enforces, checked on what the program declares: plan sizes, Key Vault
protection by environment, the health check, and an order of deletion Azure accepts."""

from __future__ import annotations

import datetime

import pytest

from infra.config import ConfigError
from tests.infra.conftest import create_app

pytestmark = pytest.mark.infra

PLAN = "azure-native:web:AppServicePlan"
WEB_APP = "azure-native:web:WebApp"
VAULT = "azure-native:keyvault:Vault"
SUBNET = "azure-native:network:Subnet"


# --- Plan capacity ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sku", "capacity"),
    [("B1", 3), ("B3", 3), ("S1", 10), ("S3", 10), ("P1v2", 30), ("P0v3", 30), ("P3v3", 30), ("P1mv3", 30)],
)
def test_a_plan_may_run_its_tiers_most_instances(deploy, sku, capacity) -> None:
    plan = deploy({"photoshare:appServiceSku": sku, "photoshare:appServiceCapacity": capacity}).one(PLAN)
    assert plan.plain["sku"] == {"name": sku, "capacity": capacity}


@pytest.mark.parametrize(
    ("sku", "capacity", "most", "expected"),
    [
        ("B1", 4, 3, "a Basic plan (B1) runs at most 3 instances; a Premium plan such as P1v3 runs up to 30"),
        ("S2", 11, 10, "a Standard plan (S2) runs at most 10 instances"),
        ("P1v3", 31, 30, "a Premium plan (P1v3) runs at most 30 instances"),
        ("P2v2", 50, 30, "a Premium plan (P2v2) runs at most 30 instances"),
    ],
)
def test_more_instances_than_the_tier_runs_is_refused_naming_its_maximum(
    deploy, sku, capacity, most, expected
) -> None:
    with pytest.raises(ConfigError) as error:
        deploy({"photoshare:appServiceSku": sku, "photoshare:appServiceCapacity": capacity})
    message = str(error.value)
    assert (
        f"photoshare:appServiceCapacity must be between 1 and {most}, got {capacity}: {expected}" in message
    )


def test_an_isolated_plan_is_refused_without_an_app_service_environment(deploy) -> None:
    with pytest.raises(ConfigError) as error:
        deploy({"photoshare:appServiceSku": "I1v2"})
    message = str(error.value)
    assert "photoshare:appServiceSku I1v2 is an Isolated plan" in message
    assert "App Service Environment" in message and "P1v3" in message


# --- Key Vault by environment -------------------------------------------------------------------


def test_a_development_stack_can_purge_its_vault(default) -> None:
    properties = default.one(VAULT).plain["properties"]
    assert properties["enableSoftDelete"] is True
    assert properties["softDeleteRetentionInDays"] == 7
    # Azure accepts only `true`; absent is the only way to leave purge protection off.
    assert "enablePurgeProtection" not in properties


def test_a_production_stack_protects_its_vault_from_purging(deploy) -> None:
    properties = deploy({"photoshare:environment": "production"}).one(VAULT).plain["properties"]
    assert properties["enablePurgeProtection"] is True
    assert properties["enableSoftDelete"] is True  # purge protection needs it
    assert properties["softDeleteRetentionInDays"] == 90


def test_an_unknown_environment_is_refused(deploy) -> None:
    with pytest.raises(
        ConfigError, match="photoshare:environment must be development or production, got 'prod'"
    ):
        deploy({"photoshare:environment": "prod"})


# --- Health check -------------------------------------------------------------------------------


def test_the_health_check_probes_liveness_not_readiness(default) -> None:
    """A database outage must not make App Service replace every instance."""
    assert default.one(WEB_APP).plain["siteConfig"]["healthCheckPath"] == "/healthz"


# --- Teardown order -----------------------------------------------------------------------------


def test_destroy_deletes_site_and_plan_before_the_integration_subnet(default) -> None:
    """Azure refuses to delete a subnet while a plan's service association link holds it."""
    subnet = default.named("network-app-subnet")
    plan, site = default.one(PLAN), default.one(WEB_APP)
    assert subnet.urn in plan.dependencies  # declared, not only inferred through the site
    assert default.depends_on(site, subnet)
    assert default.depends_on(site, plan)
    assert not default.depends_on(subnet, plan)


def test_without_a_vnet_the_plan_depends_on_no_subnet(deploy) -> None:
    deployment = deploy({"photoshare:dbNetwork": "public"})
    assert not deployment.of_type(SUBNET)
    assert "virtualNetworkSubnetId" not in deployment.one(WEB_APP).plain


# --- The created client secret's end date -------------------------------------------------------


@pytest.mark.parametrize("platform", ["b2c", "external_id"])
def test_the_created_secret_lapses_on_the_configured_date_exported_as_an_output(deploy, platform) -> None:
    end = (datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=365)).isoformat()
    deployment = deploy({**create_app(platform), "photoshare:appSecretEndDate": end}, platform=platform)
    password = deployment.one("azuread:index/applicationPassword:ApplicationPassword").plain
    # A fixed date: the same on every `pulumi up`, never "a year from whenever it last ran".
    assert password["endDate"] == f"{end}T00:00:00Z"
    assert "endDateRelative" not in password
    assert deployment.outputs["appSecretEndDate"] == f"{end}T00:00:00Z"
    assert "appSecretEndDate" not in deployment.secret_outputs
