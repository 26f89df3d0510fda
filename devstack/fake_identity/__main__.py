"""Run the fake in the foreground: `python -m devstack.fake_identity --config run.json ...`.

Once both listeners are up it prints two lines and flushes:

    fake identity server ready at https://localhost:N
    fake identity server external id ready at https://localhost:M

the first (unchanged) naming the main listener (Entra, B2C, Graph, control), the second the
ciamlogin.com stand-in (External ID). Exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .config import FakeConfig
from .server import FakeIdentityServer
from .tls import server_context

EXTERNAL_ID_READY = "fake identity server external id ready at"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.fake_identity",
        description="Fake Entra ID / Azure AD B2C / External ID / Microsoft Graph server (HTTPS).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--external-id-port",
        type=int,
        default=0,
        help="port of the External ID (ciamlogin.com) listener; 0 picks a free one",
    )
    parser.add_argument("--config", required=True, help="FakeConfig JSON file")
    parser.add_argument("--certfile", required=True, help="PEM certificate (chain) to serve")
    parser.add_argument("--keyfile", required=True, help="PEM private key of --certfile")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = FakeConfig.from_json_file(args.config)
        context = server_context(args.certfile, args.keyfile)
    except (OSError, ValueError, TypeError) as exc:  # JSON, dataclass and TLS errors
        print(f"fake identity server: cannot start: {exc}", file=sys.stderr)
        return 2
    server = FakeIdentityServer(
        config,
        host=args.host,
        port=args.port,
        external_id_port=args.external_id_port,
        ssl_context=context,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server.start()
    print(f"fake identity server ready at {server.base_url}", flush=True)
    print(f"{EXTERNAL_ID_READY} {server.external_id_url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
