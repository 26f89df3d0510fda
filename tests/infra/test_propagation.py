"""The wait between the platform identity's role assignment and the site's first start."""

from __future__ import annotations

import pytest

from infra.propagation import DEFAULT_SECONDS, PropagationProvider
from tests.infra.conftest import Deployment

pytestmark = pytest.mark.infra


def test_a_new_assignment_is_waited_for_once():
    waited: list[float] = []
    provider = PropagationProvider(sleep=waited.append)
    props = {"after": ["/assignments/a"], "seconds": 120.0}
    assert provider.create(props).outs == props
    assert waited == [120.0]
    assert provider.diff("propagation", props, dict(props)).changes is False  # a later `up`: no wait
    moved = {"after": ["/assignments/b"], "seconds": 120.0}
    assert provider.diff("propagation", props, moved).changes is True
    provider.update("propagation", props, moved)
    assert waited == [120.0, 120.0]
    provider.delete("propagation", moved)
    assert waited == [120.0, 120.0]


def test_the_site_starts_after_the_role_and_the_wait(default: Deployment):
    wait = default.named("role-propagation")
    secrets_user = default.named("platform-kv-secrets-user")
    site = default.one("azure-native:web:WebApp")
    assert wait.plain["seconds"] == DEFAULT_SECONDS
    assert default.depends_on(wait, secrets_user)
    assert default.depends_on(site, wait)
    admin = default.one("azure-native:dbforpostgresql:AdministratorsMicrosoftEntra")
    assert default.depends_on(site, admin)  # the owner migrates at the first start
