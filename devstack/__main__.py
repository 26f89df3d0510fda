"""`make dev`: start Azurite, PostgreSQL and the fake identity/Graph server, then serve the app.

`IDENTITY_PLATFORM` (environment or `.env`; `b2c` by default, or `external_id`) picks the
platform. With that platform's real tenant settings in the environment or `.env`, the real
tenant and Graph are used and the fake identity server is not started. Accounts, photos and
their rows are kept in `.devstack/data/` across runs (`--fresh` starts over). Ctrl-C (or
SIGTERM) stops everything.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from dotenv import dotenv_values

from app.settings import IdentitySettings, SettingsError
from devstack.appserver import PROJECT_ROOT, AppServer
from devstack.process import ServiceError, port_is_free
from devstack.stack import PLATFORMS, REAL_TENANT_SETTINGS, LocalStack

_IDENTITY_PREFIXES = ("AZURE_AD_B2C_", "EXTERNAL_ID_", "IDENTITY_PLATFORM", "AZURE_AUTHORITY", "GRAPH_")


def _identity_values(env_file: Path) -> dict[str, str]:
    """The non-empty values of .env, and the environment's identity settings over them."""
    values = {k: v for k, v in dotenv_values(env_file).items() if v} if env_file.exists() else {}
    values.update({k: v for k, v in os.environ.items() if k.startswith(_IDENTITY_PREFIXES) and v})
    return values


def _identity_settings(env_file: Path) -> tuple[str, dict[str, str]]:
    """The platform, and its real tenant's settings from .env / the environment: empty unless
    all four required ones are set."""
    values = _identity_values(env_file)
    platform = values.get("IDENTITY_PLATFORM", "b2c").strip().lower()
    if all(values.get(name) for name in REAL_TENANT_SETTINGS.get(platform, ())):
        return platform, {k: v for k, v in values.items() if k.startswith(_IDENTITY_PREFIXES)}
    return platform, {}


def _partly_set(env_file: Path, platform: str) -> list[str]:
    """The platform's required tenant settings .env / the environment leave empty, when some
    of them are set: a copied sample, say, which would otherwise fall back to the fake unsaid."""
    values = _identity_values(env_file)
    required = REAL_TENANT_SETTINGS.get(platform, ())
    missing = [name for name in required if not values.get(name)]
    return missing if len(missing) < len(required) else []


def _real_settings_problems(real: dict[str, str]) -> list[str]:
    """What the app would refuse in the real tenant's settings (placeholders, a GUID that is
    not one, the other platform's settings): said before anything starts."""
    try:
        IdentitySettings.from_env({**real, "APP_ENV": "development"})
    except SettingsError as exc:
        return exc.problems
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument("--env-file", type=Path, default=PROJECT_ROOT / ".env")
    kept = PROJECT_ROOT / ".devstack" / "data"
    parser.add_argument("--data-dir", type=Path, default=kept, help="where accounts and photos are kept")
    parser.add_argument("--fresh", action="store_true", help="forget the kept accounts and photos first")
    args = parser.parse_args(argv)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fake's per-request lines
    platform, real = _identity_settings(args.env_file)
    if platform not in PLATFORMS:
        print(f"error: IDENTITY_PLATFORM must be {' or '.join(PLATFORMS)}, got {platform!r}", file=sys.stderr)
        return 2
    name = "External ID" if platform == "external_id" else "B2C"
    if real and (problems := _real_settings_problems(real)):
        where = f"{args.env_file.name} or the environment"
        print(f"error: the {name} settings in {where} are not usable:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        print("  (remove them all to use the fake tenant instead)", file=sys.stderr)
        return 2
    missing = [] if real else _partly_set(args.env_file, platform)
    if missing:
        print(
            f"note: {', '.join(missing)} not set, so the fake {name} tenant is used; set "
            f"{'it' if len(missing) == 1 else 'them'} in {args.env_file.name} to use your real tenant",
            file=sys.stderr,
        )
    if real:
        print(f"using your real {name} tenant: its settings are in {args.env_file.name} or the environment")
    else:
        why = "some of its settings are missing" if missing else "no real tenant settings"
        print(f"using the fake {name} tenant ({why} in {args.env_file.name} or the environment)")
    if not port_is_free(args.port):
        print(
            f"error: port {args.port} is already in use (another `make dev`, or another server): "
            f"stop it, or choose another port: PORT={args.port + 1} make dev",
            file=sys.stderr,
        )
        return 2
    if args.fresh:
        shutil.rmtree(args.data_dir, ignore_errors=True)
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    stack = LocalStack(
        fake_identity=not real,
        tls_dir=PROJECT_ROOT / ".devstack" / "tls",
        platform=platform,
        data_dir=args.data_dir,
    )
    app: AppServer | None = None
    try:
        print("starting PostgreSQL, Azurite" + ("" if real else f" and the fake {name}/Graph server") + "…")
        stack.start()
        env = stack.app_env(None, **real)
        url = f"http://localhost:{args.port}"
        if stack.fake is not None:  # as an app registration lists them; the fake refuses others
            for base in (url, f"http://127.0.0.1:{args.port}"):
                stack.fake.register_redirect_uris([f"{base}/auth/callback", f"{base}/"])
        app = AppServer(env=env, port=args.port, log_dir=stack.base_dir).start()
        print()
        print(f"  photoshare is running at {url}")
        if real:
            tenant = real.get("AZURE_AD_B2C_TENANT_NAME") or real.get("EXTERNAL_ID_TENANT_SUBDOMAIN")
            print(f"  signing in with the real {name} tenant {tenant}")
            print(f"  (register {url}/auth/callback as a redirect URI of the app registration)")
        else:
            assert stack.fake is not None
            where = stack.fake.external_id_url if platform == "external_id" else stack.fake.base_url
            print(f"  fake {name}/Graph at {where}: sign up on its page with any email")
            print("  its certificate comes from a local throw-away CA: accept the browser's warning,")
            print(f"  or trust {stack.ca_pem} once (it is kept in .devstack/ across runs)")
        print(f"  accounts and photos are kept in {args.data_dir} (`make dev-reset` starts over)")
        print(f"  app log: {app.log_path}")
        print("  Ctrl-C stops everything.")
        print(flush=True)
        while not stop_requested:
            if not app.running():
                print("the app stopped; last lines of its log:\n" + app.log()[-3000:], file=sys.stderr)
                return 1
            time.sleep(0.5)
        print("\nstopping…", flush=True)
        return 0
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if app is not None:
            app.stop()
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
