"""`photoshare migrate` (the deployment step; gunicorn's master runs the same at start) and
`photoshare reconcile` against the real services."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid

import psycopg
from azure.storage.blob import BlobServiceClient

from app.db import Database
from tests.integration.client import AppClient, make_image


def test_instances_starting_together_apply_the_schema_once(services, fresh_database):
    """As the app's settings say (the owner migrates, then grants the app's role): the grants
    race too, and PostgreSQL refuses concurrent GRANTs on one table."""
    roles = services.app_database(fresh_database)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            database = Database(url=roles["DATABASE_URL"], owner_url=roles.get("DATABASE_OWNER_URL"))
            results.append(database.migrate())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(len(r) for r in results) == [0, 0, 0, 0, 0, 2]
    with psycopg.connect(fresh_database) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == ["0001_initial", "0002_sessions"]


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_migrate_command(app_env, services, fresh_database):
    env = {**app_env, **services.app_database(fresh_database)}
    first = run_cli(env, "migrate")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"applied": ["0001_initial", "0002_sessions"]}
    again = run_cli(env, "migrate")
    assert json.loads(again.stdout) == {"applied": []}


def test_migrate_command_names_a_bad_setting(app_env):
    result = run_cli({**app_env, "DATABASE_URL": "mysql://nope"}, "migrate")
    assert result.returncode == 2
    assert "DATABASE_URL must be a postgresql:// URL" in result.stderr


def test_reconcile_removes_only_orphan_blobs(signed_in: AppClient, app_env, services):
    photo = signed_in.upload(("kept.png", make_image("PNG"), "image/png")).json()["photos"][0]
    container = services.images()
    assert signed_in.user is not None  # the signed_in fixture signed in
    orphan = f"{signed_in.user['oid']}/{uuid.uuid4()}.png"  # a crash between blob and row
    container.upload_blob(orphan, make_image("PNG"))

    dry = run_cli(app_env, "reconcile", "--grace-minutes", "0", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["removed"] >= 1
    assert container.get_blob_client(orphan).exists()

    recent = run_cli(app_env, "reconcile")  # default grace: a fresh orphan may be an upload in flight
    assert json.loads(recent.stdout)["removed"] == 0
    assert container.get_blob_client(orphan).exists()

    result = run_cli(app_env, "reconcile", "--grace-minutes", "0")
    assert result.returncode == 0, result.stderr
    assert not container.get_blob_client(orphan).exists()
    names = {b.name for b in container.list_blobs(name_starts_with=signed_in.user["oid"])}
    assert names == {
        f"{signed_in.user['oid']}/{photo['id']}.png",
        f"{signed_in.user['oid']}/{photo['id']}.thumb.jpg",
    }
    assert signed_in.get(f"/photos/{photo['id']}").status_code == 302


def test_reconcile_before_any_upload_made_the_container(app_env, services):
    """The container is made by the first upload, not at start: until then there is nothing to
    reconcile, and reconcile does not make it."""
    name = f"none-{uuid.uuid4().hex[:12]}"
    result = run_cli({**app_env, "AZURE_STORAGE_CONTAINER": name}, "reconcile", "--grace-minutes", "0")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"checked": 0, "removed": 0}
    service = BlobServiceClient.from_connection_string(services.storage_connection_string)
    assert not service.get_container_client(name).exists()
