"""The CI stack script always destroys what it created, and waits for the site to be ready."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from infra import ci_stack
from infra.ci_stack import SmokeTestFailed, run, smoke_test

pytestmark = pytest.mark.infra

ENV = {
    "AZURE_LOCATION": "westeurope",
    "PHOTOSHARE_B2C_TENANT_NAME": "contosob2c",
    "PHOTOSHARE_B2C_TENANT_ID": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
    "PHOTOSHARE_B2C_CLIENT_ID": "0f0e0d0c-0b0a-4909-8807-060504030201",
    "PHOTOSHARE_B2C_CLIENT_SECRET": "s3cret",
    "GITHUB_RUN_ID": "42",
    "GITHUB_RUN_ATTEMPT": "2",
}


class FakeStack:
    """Records the Automation API calls; `fail_up` makes `up` raise."""

    def __init__(self, *, fail_up: BaseException | None = None, fail_destroy: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_up = fail_up
        self.fail_destroy = fail_destroy
        self.destroy_options: dict[str, Any] = {}

    def set_all_config(self, config: Any) -> None:
        self.calls.append("config")

    def up(self, **kwargs: Any) -> Any:
        self.calls.append("up")
        assert kwargs.get("show_secrets") is False
        if self.fail_up:
            raise self.fail_up
        return SimpleNamespace(outputs={"siteUrl": SimpleNamespace(value="https://app.example")})

    def cancel(self) -> None:
        self.calls.append("cancel")

    def destroy(self, **kwargs: Any) -> Any:
        self.calls.append("destroy")
        self.destroy_options = kwargs
        if self.fail_destroy:
            raise RuntimeError("resource group is locked")


def test_a_passing_run_smoke_tests_the_site_then_destroys() -> None:
    stack = FakeStack()
    tested: list[str] = []
    assert run(stack, {}, smoke=tested.append) == 0
    assert tested == ["https://app.example"]
    assert stack.calls == ["config", "up", "destroy"]
    assert stack.destroy_options["remove"] is True


@pytest.mark.parametrize("error", [RuntimeError("quota exceeded"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_up_still_destroys(error: BaseException) -> None:
    stack = FakeStack(fail_up=error)
    assert run(stack, {}, smoke=lambda url: None) == 1
    assert stack.calls[-2:] == ["cancel", "destroy"]


def test_a_failed_smoke_test_still_destroys() -> None:
    stack = FakeStack()

    def unhealthy(url: str) -> None:
        raise SmokeTestFailed("GET /readyz answered 503")

    assert run(stack, {}, smoke=unhealthy) == 1
    assert stack.calls[-1] == "destroy"


def test_a_failed_destroy_is_reported_distinctly() -> None:
    assert run(FakeStack(fail_destroy=True), {}, smoke=lambda url: None) == 2


def test_smoke_test_waits_for_healthz_then_readyz() -> None:
    answers = {"/healthz": [(0, "refused"), (200, "ok")], "/readyz": [(503, "db down"), (200, "ok")]}
    asked: list[str] = []

    def fetch(url: str) -> tuple[int, str]:
        path = url.removeprefix("https://site")
        asked.append(path)
        return answers[path].pop(0)

    smoke_test("https://site/", fetch=fetch, sleep=lambda s: None, clock=lambda: 0.0)
    assert asked == ["/healthz", "/healthz", "/readyz", "/readyz"]


def test_smoke_test_gives_up_at_the_deadline_with_the_reason() -> None:
    now = iter(range(0, 10_000, 100))
    with pytest.raises(SmokeTestFailed, match=r"/readyz answered 503.*postgresql"):
        smoke_test(
            "https://site",
            deadline_seconds=300,
            fetch=lambda url: (200, "") if url.endswith("/healthz") else (503, '{"down": ["postgresql"]}'),
            sleep=lambda s: None,
            clock=lambda: float(next(now)),
        )


def test_config_comes_from_the_environment_with_the_secret_marked() -> None:
    config = ci_stack.stack_config(ENV)
    assert config["photoshare:b2cClientSecret"].secret is True
    assert config["photoshare:b2cTenantId"].secret is False
    assert config["azure-native:location"].value == "westeurope"
    assert ci_stack.default_stack_name(ENV) == "ci-42-2"


def test_an_external_id_stack_takes_its_own_variables() -> None:
    env = {
        "AZURE_LOCATION": "westeurope",
        "PHOTOSHARE_IDENTITY_PLATFORM": "externalId",
        "PHOTOSHARE_EXTERNAL_ID_TENANT_SUBDOMAIN": "tailspintoys",
        "PHOTOSHARE_EXTERNAL_ID_TENANT_ID": "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d",
        "PHOTOSHARE_EXTERNAL_ID_CLIENT_ID": "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9",
        "PHOTOSHARE_EXTERNAL_ID_CLIENT_SECRET": "not-a-real-secret",
    }
    config = ci_stack.stack_config(env)
    assert config["photoshare:identityPlatform"].value == "externalId"
    assert config["photoshare:externalIdClientSecret"].secret is True
    assert not any(key.startswith("photoshare:b2c") for key in config)
    with pytest.raises(SystemExit, match="PHOTOSHARE_EXTERNAL_ID_TENANT_ID"):
        ci_stack.stack_config({k: v for k, v in env.items() if not k.endswith("TENANT_ID")})


def test_missing_environment_names_every_variable() -> None:
    with pytest.raises(SystemExit, match="PHOTOSHARE_B2C_CLIENT_SECRET"):
        ci_stack.stack_config({k: v for k, v in ENV.items() if "SECRET" not in k})
