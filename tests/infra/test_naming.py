"""Names are valid for each Azure service and distinct between stacks, however long."""

from __future__ import annotations

import re

import pytest

from infra.naming import Names

pytestmark = pytest.mark.infra

SUBSCRIPTION = "99999999-8888-4777-8666-555555555555"
LONG_A = "dev-" + "alexandra-montgomery-wellington" * 3 + "-feature-a"
LONG_B = "dev-" + "alexandra-montgomery-wellington" * 3 + "-feature-b"

RULES = {
    # Azure naming rules: https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules
    "storage data": (lambda n: n.storage_account("data"), re.compile(r"^[a-z0-9]{3,24}$")),
    "storage package": (lambda n: n.storage_account("package"), re.compile(r"^[a-z0-9]{3,24}$")),
    "key vault": (
        lambda n: n.key_vault,
        re.compile(r"^(?=.{3,24}$)[a-zA-Z](?!.*--)[a-zA-Z0-9-]*[a-zA-Z0-9]$"),
    ),
    "postgres": (lambda n: n.postgres_server, re.compile(r"^(?=.{3,63}$)[a-z0-9][a-z0-9-]*[a-z0-9]$")),
    "web app": (lambda n: n.web_app, re.compile(r"^(?=.{2,60}$)[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]$")),
    "plan": (lambda n: n.app_service_plan, re.compile(r"^(?=.{1,60}$)[a-zA-Z0-9-]+$")),
    "resource group": (lambda n: n.resource_group, re.compile(r"^(?=.{1,90}$)[-\w.()]*[-\w()]$")),
    "log workspace": (
        lambda n: n.log_workspace,
        re.compile(r"^(?=.{4,63}$)[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]$"),
    ),
    "identity": (lambda n: n.identity, re.compile(r"^(?=.{3,128}$)[a-zA-Z0-9][a-zA-Z0-9_-]*$")),
    "vnet": (lambda n: n.virtual_network, re.compile(r"^(?=.{2,64}$)[a-zA-Z0-9][-\w.]*\w$")),
    "key vault private endpoint": (
        lambda n: n.key_vault_private_endpoint,
        re.compile(r"^(?=.{2,64}$)[a-zA-Z0-9][-\w.]*\w$"),
    ),
}
STACKS = ["dev", "dev-alice", "Dev.Alice_Smith", "ci-1234567890-1", LONG_A, LONG_B, "x"]


def names(stack: str, subscription: str = SUBSCRIPTION) -> Names:
    return Names.for_stack(project="photoshare", stack=stack, subscription_id=subscription)


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("kind", sorted(RULES))
def test_names_follow_each_services_rules(stack: str, kind: str) -> None:
    get, rule = RULES[kind]
    assert rule.match(get(names(stack))), f"{kind} name {get(names(stack))!r} for stack {stack!r}"


@pytest.mark.parametrize("kind", sorted(RULES))
def test_two_long_stack_names_get_distinct_names(kind: str) -> None:
    get, _ = RULES[kind]
    assert get(names(LONG_A)) != get(names(LONG_B))


def test_names_are_stable_and_depend_on_the_subscription() -> None:
    assert names("dev") == names("dev")
    assert names("dev").storage_account() == names("dev").storage_account()
    other = names("dev", "00000000-1111-4222-8333-444444444444")
    assert other.storage_account() != names("dev").storage_account()


def test_redirect_host_is_known_before_the_app_exists() -> None:
    n = names("dev-alice")
    assert n.default_host_name == f"{n.web_app}.azurewebsites.net"
    assert n.postgres_private_zone.endswith(".postgres.database.azure.com")


def test_every_stack_gets_its_own_names() -> None:
    all_names = {RULES[kind][0](names(stack)) for stack in STACKS for kind in RULES}
    assert len(all_names) == len(STACKS) * len(RULES)
