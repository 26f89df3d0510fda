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
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
import urllib.error
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
    deadline_seconds: float = 900,
    interval_seconds: float = 15,
    fetch: Fetch = _fetch,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait for GET /healthz then GET /readyz to answer 200 (a first start can take minutes)."""
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


def run(
    stack: StackLike,
    config: Mapping[str, Any],
    *,
    smoke: Callable[[str], None] = smoke_test,
) -> int:
    """Up, smoke-test, and destroy whatever happened; 0 only if everything passed."""
    completed = False
    failure: BaseException | None = None
    try:
        stack.set_all_config(config)
        result = stack.up(on_output=print, color="never", show_secrets=False)
        completed = True
        smoke(result.outputs["siteUrl"].value)
        print("smoke test passed", flush=True)
    except BaseException as error:  # noqa: BLE001 - destroy below, then report
        failure = error
    finally:
        if not completed:
            try:
                stack.cancel()  # release the lock an interrupted update leaves behind
            except Exception as error:  # noqa: BLE001
                print(f"(no update to cancel: {error})", flush=True)
        try:
            stack.destroy(**DESTROY_OPTIONS)
        except Exception as error:  # noqa: BLE001
            print(f"DESTROY FAILED, clean up by hand: {error}", file=sys.stderr, flush=True)
            return 2
    if failure is not None:
        print(f"CI stack failed: {failure!r}", file=sys.stderr, flush=True)
        return 1
    return 0


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
        stack.destroy(**DESTROY_OPTIONS)
        return 0

    signal.signal(signal.SIGTERM, _raise_interrupt)  # a cancelled workflow still destroys
    config = stack_config(os.environ)
    stack = auto.create_or_select_stack(stack_name=name, work_dir=str(REPO_ROOT))
    return run(stack, config)


if __name__ == "__main__":
    sys.exit(main())
