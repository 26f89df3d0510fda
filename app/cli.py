"""`photoshare` console script: what people run by hand or from CI.

- `photoshare migrate`: apply the schema (the app also applies it at start).
- `photoshare reconcile`: delete blobs that no photo row references, older than a grace period
  (what a crash between the blob write and the row insert can leave behind).
- `photoshare doctor`: diagnose the B2C and Graph settings, one line per check (app/doctor.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from dotenv import load_dotenv

from app import doctor
from app.db import Database
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
        help=doctor.HELP,
        description=doctor.DESCRIPTION,
        epilog=doctor.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor.add_arguments(doc)
    args = parser.parse_args(argv)

    load_dotenv(override=False)
    if args.command == "doctor":  # needs only the B2C/Graph settings, validated by the doctor itself
        return doctor.run(args, os.environ)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    db = Database(url=settings.database_url)
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
