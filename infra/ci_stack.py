"""A short-lived CI stack through Pulumi's Automation API: up, smoke-test, always destroy.

    python -m infra.ci_stack run      [--stack ci-123] [--org my-org]  # create, up, test, destroy
    python -m infra.ci_stack destroy  --stack ci-123  [--org my-org]  # clean up after a cancel

Configuration comes from the environment (GitHub secrets/variables in CI): AZURE_LOCATION and
PHOTOSHARE_IDENTITY_PLATFORM (`b2c`, the default, or `externalId`), then for B2C
PHOTOSHARE_B2C_TENANT_NAME, PHOTOSHARE_B2C_TENANT_ID, PHOTOSHARE_B2C_CLIENT_ID,
PHOTOSHARE_B2C_CLIENT_SECRET, for External ID PHOTOSHARE_EXTERNAL_ID_TENANT_SUBDOMAIN,
PHOTOSHARE_EXTERNAL_ID_TENANT_ID, PHOTOSHARE_EXTERNAL_ID_CLIENT_ID,
PHOTOSHARE_EXTERNAL_ID_CLIENT_SECRET. Azure credentials are the provider's usual ARM_* variables
(ARM_USE_OIDC=true in GitHub Actions) and the Pulumi backend is PULUMI_ACCESS_TOKEN or
PULUMI_BACKEND_URL.

Besides Pulumi, the script calls Azure Resource Manager itself for three things: restarting the
site once when it does not become ready, deleting the stack's resource groups when `pulumi
destroy` fails, and checking that nothing tagged with the stack is left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT = "photoshare"

# Stack key -> (environment variable, secret?), per identity platform.
ENVIRONMENTS = {
    "b2c": {
        "azure-native:location": ("AZURE_LOCATION", False),
        "photoshare:b2cTenantName": ("PHOTOSHARE_B2C_TENANT_NAME", False),
        "photoshare:b2cTenantId": ("PHOTOSHARE_B2C_TENANT_ID", False),
        "photoshare:b2cClientId": ("PHOTOSHARE_B2C_CLIENT_ID", False),
        "photoshare:b2cClientSecret": ("PHOTOSHARE_B2C_CLIENT_SECRET", True),
    },
    "externalId": {
        "azure-native:location": ("AZURE_LOCATION", False),
        "photoshare:externalIdTenantSubdomain": ("PHOTOSHARE_EXTERNAL_ID_TENANT_SUBDOMAIN", False),
        "photoshare:externalIdTenantId": ("PHOTOSHARE_EXTERNAL_ID_TENANT_ID", False),
        "photoshare:externalIdClientId": ("PHOTOSHARE_EXTERNAL_ID_CLIENT_ID", False),
        "photoshare:externalIdClientSecret": ("PHOTOSHARE_EXTERNAL_ID_CLIENT_SECRET", True),
    },
}

Fetch = Callable[[str], tuple[int, str]]
# Destroy as much as possible even if one resource fails, then forget the stack.
DESTROY_OPTIONS: dict[str, Any] = {
    "on_output": print,
    "color": "never",
    "show_secrets": False,
    "continue_on_error": True,
    "remove": True,
}


class SmokeTestFailed(RuntimeError):
    """The deployed site did not become healthy and ready in time."""


class AzureError(RuntimeError):
    """Azure Resource Manager refused or did not finish a call the script makes itself."""


ARM_ENDPOINT = "https://management.azure.com"
ARM_SCOPE = "https://management.azure.com/.default"
RESOURCES_API = "2021-04-01"
WEB_API = "2024-04-01"


class Azure:
    """The Resource Manager calls the script makes itself: restart the site, delete the stack's
    resource groups, list what is still tagged with the stack.

    `endpoint` and `token` are seams: tests point them at a local fake of these endpoints.
    """

    def __init__(
        self,
        *,
        subscription_id: str,
        token: Callable[[], str],
        endpoint: str = ARM_ENDPOINT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.subscription_id = subscription_id
        self.token = token
        self.endpoint = endpoint.rstrip("/")
        self.sleep = sleep
        self.clock = clock

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Azure:
        """Signed in as the Pulumi provider is: GitHub's OIDC token exchanged for each new token
        (it outlives no step, unlike a token taken at login), else the Azure CLI's sign-in."""
        from azure.identity import AzureCliCredential, ClientAssertionCredential

        subscription_id = env.get("ARM_SUBSCRIPTION_ID") or env.get("AZURE_SUBSCRIPTION_ID") or ""
        if not subscription_id:
            raise SystemExit("ARM_SUBSCRIPTION_ID is required to clean up the stack's resources")
        request_url = env.get("ACTIONS_ID_TOKEN_REQUEST_URL")
        credential: Any
        if env.get("ARM_USE_OIDC") == "true" and request_url:
            request_token = env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")

            def github_assertion() -> str:
                url = request_url + "&audience=" + urllib.parse.quote("api://AzureADTokenExchange")
                headers = {"Authorization": f"Bearer {request_token}"}
                request = urllib.request.Request(url, headers=headers)  # noqa: S310 - GitHub's https URL
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    return str(json.load(response)["value"])

            credential = ClientAssertionCredential(
                tenant_id=env["ARM_TENANT_ID"], client_id=env["ARM_CLIENT_ID"], func=github_assertion
            )
        else:
            credential = AzureCliCredential()
        return cls(subscription_id=subscription_id, token=lambda: credential.get_token(ARM_SCOPE).token)

    def _call(self, method: str, url: str) -> tuple[int, Any]:
        if not url.startswith(self.endpoint + "/"):
            url = self.endpoint + url
        headers = {"Authorization": f"Bearer {self.token()}"}
        request = urllib.request.Request(url, method=method, headers=headers)  # noqa: S310 - ARM's URL
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise AzureError(f"{method} {url}: {error}") from error
        try:
            return status, json.loads(body) if body else {}
        except json.JSONDecodeError:
            return status, {"raw": body[:500].decode(errors="replace")}

    def _expect(self, method: str, url: str, *ok: int) -> Any:
        status, body = self._call(method, url)
        if status not in ok:
            raise AzureError(f"{method} {url} answered {status}: {json.dumps(body)[:500]}")
        return body

    def _subscription(self, path: str, api_version: str, **query: str) -> str:
        query_string = urllib.parse.urlencode({**query, "api-version": api_version})
        return f"/subscriptions/{self.subscription_id}{path}?{query_string}"

    def _tagged(self, path: str, stack: str) -> list[dict[str, Any]]:
        """Everything under `path` tagged stack=<stack> and project=photoshare, every page."""
        url: str | None = self._subscription(
            path, RESOURCES_API, **{"$filter": f"tagName eq 'stack' and tagValue eq '{stack}'"}
        )
        found: list[dict[str, Any]] = []
        while url:
            body = self._expect("GET", url, 200)
            found.extend(
                item for item in body.get("value", []) if (item.get("tags") or {}).get("project") == PROJECT
            )
            url = body.get("nextLink")
        return found

    def restart_site(self, resource_group: str, site: str) -> None:
        path = f"/resourceGroups/{resource_group}/providers/Microsoft.Web/sites/{site}/restart"
        self._expect("POST", self._subscription(path, WEB_API), 200, 202, 204)

    def stack_groups(self, stack: str) -> list[str]:
        return [group["name"] for group in self._tagged("/resourcegroups", stack)]

    def delete_group(
        self, name: str, *, deadline_seconds: float = 1800, interval_seconds: float = 15
    ) -> None:
        """Delete a resource group and everything in it, and wait until it is gone."""
        url = self._subscription(f"/resourcegroups/{name}", RESOURCES_API)
        self._expect("DELETE", url, 200, 202, 204, 404)
        deadline = self.clock() + deadline_seconds
        while True:
            status, body = self._call("GET", url)
            if status == 404:
                return
            if self.clock() >= deadline:
                state = (body.get("properties") or {}).get("provisioningState", status)
                raise AzureError(
                    f"resource group {name} still exists ({state}) after {deadline_seconds:.0f}s"
                )
            self.sleep(interval_seconds)

    def leftovers(self, stack: str) -> list[str]:
        """Ids of resource groups and resources still tagged with the stack."""
        paths = ("/resourcegroups", "/resources")
        return [item["id"] for path in paths for item in self._tagged(path, stack)]


class StackLike(Protocol):
    """The part of `pulumi.automation.Stack` this script uses (tests pass a fake)."""

    def set_all_config(self, config: Any) -> None: ...
    def up(self, *, on_output: Any = ..., color: Any = ..., show_secrets: bool = ...) -> Any: ...
    def cancel(self) -> None: ...
    def destroy(
        self,
        *,
        on_output: Any = ...,
        color: Any = ...,
        show_secrets: bool = ...,
        continue_on_error: Any = ...,
        remove: Any = ...,
    ) -> Any: ...


def default_stack_name(env: Mapping[str, str]) -> str:
    """Unique per workflow run and attempt, so parallel runs never share a stack."""
    run_id = env.get("GITHUB_RUN_ID") or str(int(time.time()))
    return f"ci-{run_id}-{env.get('GITHUB_RUN_ATTEMPT', '1')}"


def stack_config(env: Mapping[str, str]) -> dict[str, Any]:
    """Stack config from the environment; the client secret is stored as a Pulumi secret."""
    from pulumi import automation as auto

    platform = env.get("PHOTOSHARE_IDENTITY_PLATFORM") or "b2c"
    if platform not in ENVIRONMENTS:
        raise SystemExit(
            f"PHOTOSHARE_IDENTITY_PLATFORM must be {' or '.join(ENVIRONMENTS)}, got {platform!r}"
        )
    environment = ENVIRONMENTS[platform]
    missing = [var for var, _ in environment.values() if not env.get(var)]
    if missing:
        raise SystemExit(f"missing environment variables: {', '.join(missing)}")
    config = {
        key: auto.ConfigValue(value=env[var], secret=secret) for key, (var, secret) in environment.items()
    }
    config["photoshare:identityPlatform"] = auto.ConfigValue(value=platform)
    config["photoshare:owner"] = auto.ConfigValue(value=env.get("GITHUB_REPOSITORY", "ci"))
    return config


def _fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - https site URL
            return response.status, response.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(2000).decode(errors="replace")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        return 0, str(error)


def smoke_test(
    base_url: str,
    *,
    restart: Callable[[], None] | None = None,
    deadline_seconds: float = 900,
    interval_seconds: float = 15,
    fetch: Fetch = _fetch,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait for GET /healthz then GET /readyz to answer 200 (a first start can take minutes).

    A site that is not ready by the deadline is restarted once and given the same time again: a
    start that raced the identity's role propagation keeps unresolved Key Vault references until
    the next restart (infra/README.md, "When something goes wrong").
    """
    try:
        _wait_ready(base_url, deadline_seconds, interval_seconds, fetch, sleep, clock)
    except SmokeTestFailed as first:
        if restart is None:
            raise
        print(f"{first}; restarting the site once", flush=True)
        restart()
        try:
            _wait_ready(base_url, deadline_seconds, interval_seconds, fetch, sleep, clock)
        except SmokeTestFailed as second:
            raise SmokeTestFailed(f"{second} (also before a restart: {first})") from second


def _wait_ready(
    base_url: str,
    deadline_seconds: float,
    interval_seconds: float,
    fetch: Fetch,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    deadline = clock() + deadline_seconds
    for path in ("/healthz", "/readyz"):
        url = base_url.rstrip("/") + path
        while True:
            status, body = fetch(url)
            print(f"GET {url} -> {status}", flush=True)
            if status == 200:
                break
            if clock() >= deadline:
                raise SmokeTestFailed(f"GET {url} answered {status}, not 200: {body[:500]}")
            sleep(interval_seconds)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


Smoke = Callable[..., None]  # smoke_test(url, restart=…)


def run(
    stack: StackLike,
    config: Mapping[str, Any],
    *,
    stack_name: str,
    azure: Azure | None = None,
    smoke: Smoke = smoke_test,
) -> int:
    """Up, smoke-test, and destroy whatever happened; 0 only if everything passed."""
    completed = False
    failure: BaseException | None = None
    try:
        stack.set_all_config(config)
        result = stack.up(on_output=print, color="never", show_secrets=False)
        completed = True
        outputs = {name: output.value for name, output in result.outputs.items()}
        restart = (
            (lambda: azure.restart_site(outputs["resourceGroupName"], outputs["webAppName"]))
            if azure is not None
            else None
        )
        smoke(outputs["siteUrl"], restart=restart)
        print("smoke test passed", flush=True)
    except BaseException as error:  # noqa: BLE001 - destroy below, then report
        failure = error
    finally:
        if not completed:
            try:
                stack.cancel()  # release the lock an interrupted update leaves behind
            except Exception as error:  # noqa: BLE001
                print(f"(no update to cancel: {error})", flush=True)
        destroyed = destroy(stack, stack_name=stack_name, azure=azure)
    if destroyed != 0:
        return destroyed
    if failure is not None:
        print(f"CI stack failed: {failure!r}", file=sys.stderr, flush=True)
        return 1
    return 0


def destroy(stack: StackLike, *, stack_name: str, azure: Azure | None) -> int:
    """`pulumi destroy`; when it fails, delete the stack's resource groups instead. Either way,
    0 only when it succeeded, 2 when it failed (the report says whether anything is left)."""
    try:
        stack.destroy(**DESTROY_OPTIONS)
    except Exception as error:  # noqa: BLE001 - fall back below
        print(f"pulumi destroy failed: {error}", file=sys.stderr, flush=True)
    else:
        return 0
    if azure is None:
        print("DESTROY FAILED, clean up by hand", file=sys.stderr, flush=True)
        return 2
    tag = stack_name.rsplit("/", 1)[-1]  # the program tags resources with the bare stack name
    try:
        for group in azure.stack_groups(tag):
            print(f"deleting resource group {group}", flush=True)
            azure.delete_group(group)
        left = azure.leftovers(tag)
    except AzureError as error:
        print(f"DESTROY FAILED, clean up by hand: {error}", file=sys.stderr, flush=True)
        return 2
    if left:
        print(
            f"DESTROY FAILED, still tagged stack={tag}, clean up by hand:\n  " + "\n  ".join(left),
            file=sys.stderr,
            flush=True,
        )
    else:
        print(
            f"pulumi destroy failed, but its resource groups are deleted and nothing tagged "
            f"stack={tag} remains; forget the stack with `pulumi stack rm --force {stack_name}`",
            file=sys.stderr,
            flush=True,
        )
    return 2


def _stack_name(args: argparse.Namespace) -> str:
    from pulumi import automation as auto

    name = args.stack or default_stack_name(os.environ)
    return auto.fully_qualified_stack_name(args.org, PROJECT, name) if args.org else name


def main(argv: list[str] | None = None) -> int:
    from pulumi import automation as auto

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("command", choices=("run", "destroy"), nargs="?", default="run")
    parser.add_argument("--stack", help="stack name (default ci-<run id>-<attempt>)")
    parser.add_argument("--org", default=os.environ.get("PULUMI_ORG"), help="Pulumi Cloud org")
    args = parser.parse_args(argv)
    name = _stack_name(args)
    print(f"stack {name}", flush=True)

    if args.command == "destroy":
        try:
            stack = auto.select_stack(stack_name=name, work_dir=str(REPO_ROOT))
        except auto.StackNotFoundError:
            print("already gone", flush=True)
            return 0
        with contextlib.suppress(auto.CommandError):
            stack.cancel()  # an update killed with its runner still holds the lock
        return destroy(stack, stack_name=name, azure=Azure.from_environment(os.environ))

    signal.signal(signal.SIGTERM, _raise_interrupt)  # a cancelled workflow still destroys
    config = stack_config(os.environ)
    azure = Azure.from_environment(os.environ)
    stack = auto.create_or_select_stack(stack_name=name, work_dir=str(REPO_ROOT))
    return run(stack, config, stack_name=name, azure=azure)


if __name__ == "__main__":
    sys.exit(main())
