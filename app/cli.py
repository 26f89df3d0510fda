"""`photoshare` console script: what people run by hand or from CI.

- `photoshare migrate`: apply the schema, as a deployment step (gunicorn's master also applies
  it at start: app/gunicorn_conf.py).
- `photoshare reconcile`: delete blobs that no photo row references, older than a grace period
  (what a crash between the blob write and the row insert can leave behind).
- `photoshare doctor`: diagnose the identity and Graph settings, one line per check (the checks in
  app/doctor.py, their rendering in app/doctor_report.py, the arguments here).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TextIO

from dotenv import load_dotenv

from app.db import Database
from app.doctor import Doctor
from app.doctor_report import render_json, render_text
from app.service_errors import ServiceError
from app.settings import Settings, SettingsError
from app.storage import BlobStore


def reconcile(db: Database, blobs: BlobStore, *, grace: timedelta, dry_run: bool = False) -> dict[str, int]:
    """Remove orphan blobs; the grace period spares uploads whose row is still being written."""
    cutoff = datetime.now(UTC) - grace
    checked = removed = 0
    names = blobs.list_names(older_than=cutoff)
    while batch := list(itertools.islice(names, 500)):
        referenced = db.referenced_blob_names(batch)
        for name in batch:
            checked += 1
            if name not in referenced:
                removed += 1
                if not dry_run:
                    blobs.delete(name)
    return {"checked": checked, "removed": removed}


DOCTOR_HELP = (
    "diagnose the identity and Graph settings (sign-in metadata, app-only token, permissions, Graph)"
)
DOCTOR_DESCRIPTION = """\
Check the sign-in (B2C or External ID) and Microsoft Graph settings the app uses, in order,
one line per check (✓ passed, ! passed but needs action soon, ✗ failed with the fix,
– skipped because an earlier one failed or a permission is not granted):
  1. settings present and well-formed      5. Graph GET /users?$top=1 and a sample email
  2. sign-in metadata and its issuer       6. the client secret's expiry: a warning within
  3. app-only token from that tenant          30 days (needs Application.Read.All, optional)
  4. the token's tenant (tid), Graph roles 7. with --user: that user's email and its source
"""
DOCTOR_EPILOG = """\
Settings come from these flags, else the environment, else .env; a flag sets the setting of
the IDENTITY_PLATFORM in force. The client secret (AZURE_AD_B2C_CLIENT_SECRET or
EXTERNAL_ID_CLIENT_SECRET) is read only from the environment or .env, never from a flag, so it
stays out of shell history and process lists; it is never printed.

Exit status: 0 every check passed (warnings included), 1 a check failed, 2 usage error.
"""
# The doctor's flags and the setting each overrides, per IDENTITY_PLATFORM; no flag for secrets.
DOCTOR_FLAGS: dict[str, tuple[str, str, dict[str, str]]] = {
    "--platform": ("b2c|external_id", "identity platform", {"b2c": "IDENTITY_PLATFORM"}),
    "--tenant-name": (
        "NAME",
        "tenant short name",
        {"b2c": "AZURE_AD_B2C_TENANT_NAME", "external_id": "EXTERNAL_ID_TENANT_SUBDOMAIN"},
    ),
    "--tenant-id": (
        "GUID",
        "the identity tenant's id",
        {"b2c": "AZURE_AD_B2C_TENANT_ID", "external_id": "EXTERNAL_ID_TENANT_ID"},
    ),
    "--client-id": (
        "GUID",
        "app registration's client id",
        {"b2c": "AZURE_AD_B2C_CLIENT_ID", "external_id": "EXTERNAL_ID_CLIENT_ID"},
    ),
    "--b2c-authority-host": ("HOST", "host serving the user flows", {"b2c": "AZURE_AD_B2C_AUTHORITY_HOST"}),
    "--authority": ("URL", "External ID OIDC authority", {"external_id": "EXTERNAL_ID_AUTHORITY"}),
    "--authority-host": ("HOST", "Entra host for the app-only token", {"b2c": "AZURE_AUTHORITY_HOST"}),
    "--graph-endpoint": ("URL", "Microsoft Graph base URL", {"b2c": "GRAPH_ENDPOINT"}),
}
SECRETS = ("AZURE_AD_B2C_CLIENT_SECRET", "EXTERNAL_ID_CLIENT_SECRET")


def _doctor_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, (metavar, help_text, variables) in DOCTOR_FLAGS.items():
        names = " or ".join(dict.fromkeys(variables.values()))
        parser.add_argument(flag, metavar=metavar, help=f"{help_text} ({names})")
    parser.add_argument(
        "--user", metavar="OBJECT_ID", help="also resolve this user's email and show which field it came from"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON, for CI")
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_seconds,
        default=10.0,
        help="seconds per network call (default 10)",
    )


def _doctor_environ(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with the flags applied, each to the setting of the platform in force."""
    env = dict(environ)
    if getattr(args, "platform", None) is not None:
        env["IDENTITY_PLATFORM"] = args.platform
    platform = env.get("IDENTITY_PLATFORM", "").strip().lower() or "b2c"
    for flag, (_, _, variables) in DOCTOR_FLAGS.items():
        value = getattr(args, flag.removeprefix("--").replace("-", "_"), None)
        if value is None or flag == "--platform":
            continue
        variable = variables.get(platform) or variables.get("b2c")
        if variable is None or (platform not in variables and variable.startswith("AZURE_AD_B2C")):
            print(
                f"photoshare doctor: {flag} does not apply to IDENTITY_PLATFORM={platform}", file=sys.stderr
            )
            raise SystemExit(2)
        env[variable] = value
    return env


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 300:
        raise argparse.ArgumentTypeError(f"must be a number of seconds between 0 and 300, got {value!r}")
    return seconds


def doctor(args: argparse.Namespace, environ: Mapping[str, str], *, out: TextIO | None = None) -> int:
    """Run the checks with the flags applied over `environ`; print them; return the exit status."""
    out = out or sys.stdout
    env = _doctor_environ(args, environ)
    results = Doctor(environ=env, user=args.user, timeout=args.timeout).run()
    text = render_json(results) if args.json else render_text(results, out)
    for secret in filter(None, (env.get(name, "").strip() for name in SECRETS)):
        text = text.replace(secret, "***")  # belt and braces: no message should contain it
    out.write(text)
    out.flush()
    return 0 if all(r.ok is not False for r in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="photoshare", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply pending schema migrations")
    rec = commands.add_parser("reconcile", help="delete blobs that no photo row references")
    rec.add_argument(
        "--grace-minutes", type=int, default=60, help="only blobs older than this are considered (default 60)"
    )
    rec.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    doc = commands.add_parser(
        "doctor",
        help=DOCTOR_HELP,
        description=DOCTOR_DESCRIPTION,
        epilog=DOCTOR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _doctor_arguments(doc)
    args = parser.parse_args(argv)

    load_dotenv(override=False)
    if args.command == "doctor":  # needs only the identity settings, validated by the doctor itself
        return doctor(args, os.environ)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    db = Database.from_settings(settings)
    try:
        if args.command == "migrate":
            applied = db.migrate()
            print(json.dumps({"applied": applied}))
            return 0
        if args.grace_minutes < 0:
            parser.error("--grace-minutes must be 0 or more")
        db.open()
        try:
            result = reconcile(
                db,
                BlobStore.from_settings(settings),
                grace=timedelta(minutes=args.grace_minutes),
                dry_run=args.dry_run,
            )
        finally:
            db.close()
    except ServiceError as exc:  # an outage or a configuration error, named by its cause
        print(f"photoshare {args.command}: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
