"""`make dev`: start Azurite, PostgreSQL and the fake B2C/Graph server, then serve the app.

With real B2C settings in the environment or `.env`, the real tenant and Graph are used and
the fake identity server is not started. Ctrl-C (or SIGTERM) stops everything.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from dotenv import dotenv_values

from devstack.appserver import PROJECT_ROOT, AppServer
from devstack.process import ServiceError
from devstack.stack import REAL_B2C_SETTINGS, LocalStack


def _real_b2c_settings(env_file: Path) -> dict[str, str]:
    """B2C settings from .env / the environment; empty unless all four required ones are set."""
    values = {k: v for k, v in dotenv_values(env_file).items() if v} if env_file.exists() else {}
    values.update({k: v for k, v in os.environ.items() if k.startswith(("AZURE_", "GRAPH_")) and v})
    if all(values.get(name) for name in REAL_B2C_SETTINGS):
        return {
            k: v for k, v in values.items() if k.startswith(("AZURE_AD_B2C_", "AZURE_AUTHORITY", "GRAPH_"))
        }
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument("--env-file", type=Path, default=PROJECT_ROOT / ".env")
    args = parser.parse_args(argv)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fake's per-request lines
    real_b2c = _real_b2c_settings(args.env_file)
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    stack = LocalStack(fake_identity=not real_b2c, tls_dir=PROJECT_ROOT / ".devstack" / "tls")
    app: AppServer | None = None
    try:
        print("starting PostgreSQL, Azurite" + ("" if real_b2c else " and the fake B2C/Graph server") + "…")
        stack.start()
        env = stack.app_env(None, **real_b2c)
        app = AppServer(env=env, port=args.port, log_dir=stack.base_dir).start()
        url = f"http://localhost:{args.port}"
        print()
        print(f"  photoshare is running at {url}")
        if real_b2c:
            print(f"  signing in with the real B2C tenant {real_b2c['AZURE_AD_B2C_TENANT_NAME']}")
            print(f"  (register {url}/auth/callback as a redirect URI of the app registration)")
        else:
            assert stack.fake is not None
            print(f"  fake B2C/Graph at {stack.fake.base_url}: sign up on its page with any email")
            print("  its certificate comes from a local throw-away CA: accept the browser's warning,")
            print(f"  or trust {stack.ca_pem} once (it is kept in .devstack/ across runs)")
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
