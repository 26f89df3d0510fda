"""`make dev` keeps what people made: an account on the fake's page, its photos' rows and blobs
are there again on the next run (LocalStack with a data dir)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from azure.storage.blob import BlobServiceClient

from app.db import Database
from devstack.fake_identity.client import FakeIdentityClient
from devstack.stack import LocalStack


@pytest.fixture
def data_dir() -> Iterator[Path]:
    parent = Path(tempfile.mkdtemp(prefix="photoshare-kept-"))
    parent.chmod(0o711)  # the postgres user must reach the cluster below
    yield parent / "data"
    shutil.rmtree(parent)


def test_accounts_rows_and_blobs_survive_a_restart(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with LocalStack(data_dir=data_dir, tls_dir=tmp_path / "tls") as first:
        assert first.fake is not None and first.roles is not None
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(first.bundle_pem))  # the CA is kept in tls_dir
        user = FakeIdentityClient(first.fake.base_url).add_user("kept@example.com", "Pw-123456789")
        Database(url=first.roles.app, owner_url=first.roles.owner).migrate()
        with psycopg.connect(first.postgres.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (oid text)")
            conn.execute("INSERT INTO kept VALUES (%s)", (user["oid"],))
        blobs = BlobServiceClient.from_connection_string(first.azurite.connection_string)
        blobs.create_container("images").upload_blob(f"{user['oid']}/a.jpg", b"photo bytes")
        tenant = first.fake.config.b2c_tenant_id

    with LocalStack(data_dir=data_dir, tls_dir=tmp_path / "tls") as again:
        assert again.fake is not None
        assert again.fake.config.b2c_tenant_id == tenant  # the same fake tenant
        found = FakeIdentityClient(again.fake.base_url).users()
        assert [(u["email"], u["oid"]) for u in found] == [("kept@example.com", user["oid"])]
        with psycopg.connect(again.postgres.url) as conn:
            assert conn.execute("SELECT oid FROM kept").fetchall() == [(user["oid"],)]
        images = BlobServiceClient.from_connection_string(again.azurite.connection_string)
        blob = images.get_container_client("images").download_blob(f"{user['oid']}/a.jpg")
        assert blob.readall() == b"photo bytes"
