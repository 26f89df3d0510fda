"""The CI stack script always destroys what it created, and waits for the site to be ready.

Resource Manager is a local fake server speaking the few endpoints the script calls (restart a
site, list tagged groups and resources, delete a group), with counters and failure switches.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from infra import ci_stack
from infra.ci_stack import Azure, SmokeTestFailed, run, smoke_test

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
        outputs = {"siteUrl": "https://app.example", "resourceGroupName": "rg-ci", "webAppName": "app-ci"}
        return SimpleNamespace(outputs={k: SimpleNamespace(value=v) for k, v in outputs.items()})

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
    assert run(stack, {}, stack_name="ci-42-2", smoke=lambda url, restart: tested.append(url)) == 0
    assert tested == ["https://app.example"]
    assert stack.calls == ["config", "up", "destroy"]
    assert stack.destroy_options["remove"] is True


@pytest.mark.parametrize("error", [RuntimeError("quota exceeded"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_up_still_destroys(error: BaseException) -> None:
    stack = FakeStack(fail_up=error)
    assert run(stack, {}, stack_name="ci-42-2", smoke=lambda url, restart: None) == 1
    assert stack.calls[-2:] == ["cancel", "destroy"]


def test_a_failed_smoke_test_still_destroys() -> None:
    stack = FakeStack()

    def unhealthy(url: str, restart: Any) -> None:
        raise SmokeTestFailed("GET /readyz answered 503")

    assert run(stack, {}, stack_name="ci-42-2", smoke=unhealthy) == 1
    assert stack.calls[-1] == "destroy"


def test_a_failed_destroy_is_reported_distinctly() -> None:
    assert run(FakeStack(fail_destroy=True), {}, stack_name="ci-42-2", smoke=lambda url, restart: None) == 2


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


# --- Resource Manager: restart once, fall back to deleting the stack's groups -------------------

SUBSCRIPTION = "99999999-8888-4777-8666-555555555555"
TOKEN = "arm-token"  # noqa: S105 - what the fake expects in Authorization


class FakeArm:
    """Resource Manager's resource-group, resource-list and site-restart endpoints on loopback.

    `groups` and `resources` hold what exists, each tagged; a deleted group disappears (with its
    resources) after `polls_until_gone` GETs, or never when it is in `stuck`.
    """

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, str]] = {}
        self.resources: list[dict[str, Any]] = []
        self.stuck: set[str] = set()
        self.polls_until_gone = 2
        self.deleting: dict[str, int] = {}
        self.restarts: list[str] = []
        self.requests: list[str] = []
        self.page_size = 1  # lists come in pages of one, so nextLink is followed
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, group: str, *, stack: str, project: str = "photoshare", resources: int = 2) -> None:
        tags = {"stack": stack, "project": project}
        self.groups[group] = tags
        base = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Mock/things"
        self.resources.extend({"id": f"{base}/r{i}", "group": group, "tags": tags} for i in range(resources))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                fake.requests.append(f"{method} {url.path}")
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._answer(401, {"error": {"code": "AuthenticationFailed"}})
                if "api-version" not in query:
                    return self._answer(400, {"error": {"code": "MissingApiVersionParameter"}})
                parts = url.path.strip("/").split("/")
                if parts[:2] != ["subscriptions", SUBSCRIPTION]:
                    return self._answer(404, {"error": {"code": "SubscriptionNotFound"}})
                rest = parts[2:]
                if method == "POST" and len(rest) == 7 and rest[-1] == "restart":
                    fake.restarts.append(f"{rest[1]}/{rest[5]}")
                    return self._answer(200)
                if method == "GET" and rest in (["resourcegroups"], ["resources"]):
                    return self._list(rest[0], query)
                if len(rest) == 2 and rest[0] == "resourcegroups":
                    return self._group(method, rest[1])
                return self._answer(404, {"error": {"code": "NotFound", "path": url.path}})

            def _list(self, kind: str, query: dict[str, str]) -> None:
                wanted = query.get("$filter", "")
                items: list[dict[str, Any]]
                if kind == "resourcegroups":
                    items = [
                        {"id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{n}", "name": n, "tags": t}
                        for n, t in fake.groups.items()
                    ]
                else:
                    items = [{"id": r["id"], "tags": r["tags"]} for r in fake.resources]
                items = [i for i in items if f"tagValue eq '{i['tags'].get('stack')}'" in wanted]
                skip = int(query.get("$skiptoken", "0"))
                page: dict[str, Any] = {"value": items[skip : skip + fake.page_size]}
                if skip + fake.page_size < len(items):
                    next_query = urllib.parse.urlencode({**query, "$skiptoken": skip + fake.page_size})
                    page["nextLink"] = f"{fake.endpoint}/subscriptions/{SUBSCRIPTION}/{kind}?{next_query}"
                return self._answer(200, page)

            def _group(self, method: str, name: str) -> None:
                if name not in fake.groups:
                    return self._answer(404, {"error": {"code": "ResourceGroupNotFound"}})
                if method == "DELETE":
                    fake.deleting.setdefault(name, 0)
                    return self._answer(202)
                if name in fake.deleting and name not in fake.stuck:
                    fake.deleting[name] += 1
                    if fake.deleting[name] >= fake.polls_until_gone:
                        del fake.groups[name]
                        fake.resources = [r for r in fake.resources if r["group"] != name]
                        return self._answer(404, {"error": {"code": "ResourceGroupNotFound"}})
                state = "Deleting" if name in fake.deleting else "Succeeded"
                return self._answer(200, {"name": name, "properties": {"provisioningState": state}})

            def do_GET(self) -> None:  # noqa: N802 - http.server's names
                self._route("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._route("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._route("DELETE")

        return Handler


@pytest.fixture
def arm() -> Iterator[FakeArm]:
    fake = FakeArm()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def azure_for(fake: FakeArm) -> Azure:
    return Azure(
        subscription_id=SUBSCRIPTION,
        token=lambda: TOKEN,
        endpoint=fake.endpoint,
        sleep=lambda s: None,
        clock=lambda: 0.0,
    )


def test_a_site_that_is_not_ready_is_restarted_once_then_passes(arm) -> None:
    answers = iter([(503, "kv reference unresolved")] * 3 + [(200, "ok")] * 2)
    clock = iter(range(0, 100_000, 400))
    asked: list[str] = []

    def fetch(url: str) -> tuple[int, str]:
        asked.append(url.rsplit("/", 1)[1])
        return (200, "ok") if url.endswith("/healthz") else next(answers)

    azure = azure_for(arm)
    smoke_test(
        "https://site",
        restart=lambda: azure.restart_site("rg-ci", "app-ci"),
        deadline_seconds=700,
        fetch=fetch,
        sleep=lambda s: None,
        clock=lambda: float(next(clock)),
    )
    assert arm.restarts == ["rg-ci/app-ci"]
    # Before the restart until the deadline, then both paths again.
    assert asked == ["healthz", "readyz", "readyz", "healthz", "readyz", "readyz"]


def test_a_site_still_not_ready_after_one_restart_fails_with_both_answers(arm) -> None:
    clock = iter(range(0, 100_000, 400))
    restarts: list[int] = []
    with pytest.raises(SmokeTestFailed, match=r"/readyz answered 503.*also before a restart.*503"):
        smoke_test(
            "https://site",
            restart=lambda: restarts.append(1),
            deadline_seconds=700,
            fetch=lambda url: (200, "") if url.endswith("/healthz") else (503, "postgresql down"),
            sleep=lambda s: None,
            clock=lambda: float(next(clock)),
        )
    assert restarts == [1]


def test_run_restarts_the_deployed_site_through_resource_manager(arm) -> None:
    def smoke(url: str, restart: Any) -> None:
        restart()

    assert run(FakeStack(), {}, stack_name="ci-42-2", azure=azure_for(arm), smoke=smoke) == 0
    assert arm.restarts == ["rg-ci/app-ci"]


def test_a_failed_destroy_deletes_the_stacks_groups_and_checks_nothing_is_left(arm, capsys) -> None:
    arm.add("rg-photoshare-ci-42-2", stack="ci-42-2")
    arm.add("rg-photoshare-ci-7-1", stack="ci-7-1")  # another run's: kept
    arm.add("rg-other-project", stack="ci-42-2", project="other")  # same stack name, not ours: kept
    stack = FakeStack(fail_destroy=True)
    code = run(
        stack, {}, stack_name="my-org/photoshare/ci-42-2", azure=azure_for(arm), smoke=lambda u, restart: None
    )
    assert code == 2  # pulumi destroy failed: the delete order needs fixing even though nothing leaked
    assert set(arm.groups) == {"rg-photoshare-ci-7-1", "rg-other-project"}
    assert f"DELETE /subscriptions/{SUBSCRIPTION}/resourcegroups/rg-photoshare-ci-42-2" in arm.requests
    assert not any("rg-photoshare-ci-7-1" in r and r.startswith("DELETE") for r in arm.requests)
    err = capsys.readouterr().err
    assert "nothing tagged stack=ci-42-2 remains" in err
    assert "pulumi stack rm --force my-org/photoshare/ci-42-2" in err


def test_a_group_that_will_not_go_away_is_reported(arm, capsys) -> None:
    arm.add("rg-photoshare-ci-42-2", stack="ci-42-2")
    arm.stuck.add("rg-photoshare-ci-42-2")
    clock = iter(range(0, 100_000, 600))
    azure = Azure(
        subscription_id=SUBSCRIPTION,
        token=lambda: TOKEN,
        endpoint=arm.endpoint,
        sleep=lambda s: None,
        clock=lambda: float(next(clock)),
    )
    assert ci_stack.destroy(FakeStack(fail_destroy=True), stack_name="ci-42-2", azure=azure) == 2
    assert "rg-photoshare-ci-42-2 still exists (Deleting)" in capsys.readouterr().err


def test_resources_left_outside_the_deleted_groups_are_listed(arm, capsys) -> None:
    arm.add("rg-photoshare-ci-42-2", stack="ci-42-2")
    arm.resources.append(
        {"id": "/elsewhere/stray", "group": "shared", "tags": {"stack": "ci-42-2", "project": "photoshare"}}
    )
    assert ci_stack.destroy(FakeStack(fail_destroy=True), stack_name="ci-42-2", azure=azure_for(arm)) == 2
    err = capsys.readouterr().err
    assert "still tagged stack=ci-42-2" in err and "/elsewhere/stray" in err


def test_a_successful_destroy_calls_no_resource_manager(arm) -> None:
    arm.add("rg-photoshare-ci-42-2", stack="ci-42-2")
    assert ci_stack.destroy(FakeStack(), stack_name="ci-42-2", azure=azure_for(arm)) == 0
    assert arm.requests == []
