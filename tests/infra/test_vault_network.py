"""Key Vault's network access by dbNetwork: in the VNet a private endpoint and no public access,
with the site routing all traffic through the VNet and starting only once the endpoint resolves;
without a VNet, public access with Entra ID and RBAC deciding every read."""

from __future__ import annotations

import pytest

from infra.naming import Names
from infra.network import KEY_VAULT_PRIVATE_ZONE
from tests.infra.conftest import BASE_CONFIG, SUBSCRIPTION, Deployment, run

pytestmark = pytest.mark.infra

VAULT = "azure-native:keyvault:Vault"
WEB_APP = "azure-native:web:WebApp"
ENDPOINT = "azure-native:network:PrivateEndpoint"
ZONE_GROUP = "azure-native:network:PrivateDnsZoneGroup"
SUBNET = "azure-native:network:Subnet"


@pytest.fixture(scope="module")
def public() -> Deployment:
    """The program run once with dbNetwork=public: no VNet."""
    return run({**BASE_CONFIG, "photoshare:dbNetwork": "public"})


def _subnet(deployment: Deployment, subnet_name: str):
    [subnet] = [s for s in deployment.of_type(SUBNET) if s.plain["subnetName"] == subnet_name]
    return subnet


# --- The vault ----------------------------------------------------------------------------------


def test_in_the_vnet_the_vault_has_no_public_access(default) -> None:
    properties = default.one(VAULT).plain["properties"]
    assert properties["publicNetworkAccess"] == "Disabled"
    assert properties["networkAcls"] == {"defaultAction": "Deny", "bypass": "AzureServices"}


def test_without_a_vnet_the_vault_stays_public_for_key_vault_references(public) -> None:
    """App Service is no trusted service for references, so a closed vault would leave them
    unresolved; Entra ID and the Key Vault Secrets User role decide every read."""
    properties = public.one(VAULT).plain["properties"]
    assert properties["publicNetworkAccess"] == "Enabled"
    assert properties["networkAcls"] == {"defaultAction": "Allow", "bypass": "AzureServices"}
    for typ in (ENDPOINT, ZONE_GROUP, "azure-native:privatedns:PrivateZone"):
        assert public.of_type(typ) == []


def test_pulumi_still_writes_the_secrets_through_resource_manager(default) -> None:
    """keyvault.Secret is Microsoft.KeyVault/vaults/secrets, a control-plane resource."""
    secrets = {s.plain["secretName"] for s in default.of_type("azure-native:keyvault:Secret")}
    assert {"b2c-client-secret", "database-url", "flask-secret-key"} <= secrets


# --- The private endpoint and its DNS -----------------------------------------------------------


def test_the_endpoint_sits_in_its_own_undelegated_subnet(default) -> None:
    endpoint = default.one(ENDPOINT).plain
    subnet = _subnet(default, "endpoints")
    assert endpoint["subnet"]["id"].endswith("/Subnet/endpoints")
    assert "delegations" not in subnet.plain
    assert subnet.plain["privateEndpointNetworkPolicies"] == "Disabled"
    # Neither App Service's integration subnet nor PostgreSQL's delegated one.
    delegated = {
        _subnet(default, name).plain["delegations"][0]["serviceName"] for name in ("app", "postgres")
    }
    assert delegated == {"Microsoft.Web/serverFarms", "Microsoft.DBforPostgreSQL/flexibleServers"}
    assert default.depends_on(default.named("secrets-vault-endpoint"), subnet)


def test_the_endpoint_connects_to_the_vault(default) -> None:
    endpoint = default.one(ENDPOINT).plain
    vault = default.one(VAULT).plain["vaultName"]
    [connection] = endpoint["privateLinkServiceConnections"]
    assert connection["groupIds"] == ["vault"]
    assert connection["privateLinkServiceId"].endswith(f"/Vault/{vault}")
    names = Names.for_stack(project="photoshare", stack="dev", subscription_id=SUBSCRIPTION)
    assert endpoint["privateEndpointName"] == names.key_vault_private_endpoint


def test_the_vaults_name_resolves_to_the_endpoint_inside_the_vnet(default) -> None:
    zone = default.named("network-vault-zone")
    link = default.named("network-vault-zone-link")
    group = default.one(ZONE_GROUP)
    assert zone.plain["privateZoneName"] == KEY_VAULT_PRIVATE_ZONE == "privatelink.vaultcore.azure.net"
    vnet = default.one("azure-native:network:VirtualNetwork").plain["virtualNetworkName"]
    assert link.plain["virtualNetwork"]["id"].endswith(f"/VirtualNetwork/{vnet}")
    assert link.plain["registrationEnabled"] is False
    [config] = group.plain["privateDnsZoneConfigs"]
    assert config["privateDnsZoneId"].endswith(f"/PrivateZone/{KEY_VAULT_PRIVATE_ZONE}")
    assert group.plain["privateEndpointName"] == default.one(ENDPOINT).plain["privateEndpointName"]
    # The record goes in once the zone answers in the VNet; destroy removes it before the zone.
    assert default.depends_on(group, link)
    assert default.depends_on(group, zone)
    assert default.depends_on(group, default.one(ENDPOINT))


def test_no_nat_gateway_or_public_ip_is_created(default) -> None:
    """Route-all keeps the app's own outbound addresses for the internet (infra/README.md)."""
    for typ in ("azure-native:network:NatGateway", "azure-native:network:PublicIPAddress"):
        assert default.of_type(typ) == []
    assert "natGateway" not in _subnet(default, "app").plain
    assert "routeTable" not in _subnet(default, "app").plain


# --- The site -----------------------------------------------------------------------------------


def test_in_the_vnet_the_site_routes_all_traffic_through_it(default) -> None:
    site = default.one(WEB_APP).plain
    assert site["outboundVnetRouting"] == {"allTraffic": True}
    assert site["siteConfig"]["vnetRouteAllEnabled"] is True
    assert site["virtualNetworkSubnetId"].endswith("/Subnet/app")


def test_without_a_vnet_the_site_routes_nothing(public) -> None:
    site = public.one(WEB_APP).plain
    assert "outboundVnetRouting" not in site
    assert site["siteConfig"]["vnetRouteAllEnabled"] is False


def test_the_site_starts_only_once_the_endpoint_resolves(default) -> None:
    """Its first start resolves the Key Vault references through the endpoint; `pulumi destroy`
    deletes the site before the endpoint, its record, the zone and the subnet."""
    site = default.one(WEB_APP)
    for dependency in (
        default.one(ENDPOINT),
        default.one(ZONE_GROUP),
        default.named("network-vault-zone"),
        default.named("network-vault-zone-link"),
        _subnet(default, "endpoints"),
    ):
        assert default.depends_on(site, dependency), dependency.name
    assert default.one(ENDPOINT).urn in site.dependencies  # declared, not only inferred
    assert default.one(ZONE_GROUP).urn in site.dependencies
    assert not default.depends_on(default.one(ENDPOINT), site)


def test_subnets_are_changed_one_at_a_time(default) -> None:
    """Azure refuses concurrent changes to the subnets of one VNet."""
    app, postgres, endpoints = (_subnet(default, n) for n in ("app", "postgres", "endpoints"))
    assert default.depends_on(postgres, app)
    assert default.depends_on(endpoints, postgres)
