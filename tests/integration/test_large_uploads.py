"""Large JPEGs: their blocks go to Blob Storage while Pillow validates them, and become a blob
only when the file is valid and stored as sent."""

from __future__ import annotations

import hashlib
import io
import threading
import uuid

import pytest
import requests
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient
from PIL import Image

from app.storage import BLOCK_SIZE, BlobStore
from tests.integration.client import AppClient, noise_jpeg


@pytest.fixture(scope="module")
def large_jpeg() -> bytes:
    data = noise_jpeg()
    assert len(data) > BLOCK_SIZE
    return data


def with_location(jpeg: bytes) -> bytes:
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 0.0), 3: "E", 4: (4.0, 53.0, 0.0)}
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(out, "JPEG", quality="keep", exif=exif.tobytes())
    return out.getvalue()


@pytest.fixture
def container(services) -> ContainerClient:
    return services.images()


def staging_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("stage-block")]


def test_a_large_jpeg_is_stored_byte_for_byte_from_its_staged_blocks(
    signed_in: AppClient, container: ContainerClient, large_jpeg: bytes
):
    response = signed_in.upload(("big.jpg", large_jpeg, "image/jpeg"))
    assert response.status_code == 201, response.text
    photo = response.json()["photos"][0]
    blob = requests.get(photo["url"], timeout=30)
    assert hashlib.sha256(blob.content).digest() == hashlib.sha256(large_jpeg).digest()
    assert blob.headers["Content-Type"] == "image/jpeg"
    assert signed_in.user is not None  # the signed_in fixture signed in
    name = f"{signed_in.user['oid']}/{photo['id']}.jpg"
    committed, _ = container.get_blob_client(name).get_block_list("committed")
    assert len(committed) == -(-len(large_jpeg) // BLOCK_SIZE)


def test_several_large_jpegs_in_one_request_are_all_stored(signed_in: AppClient, large_jpeg: bytes):
    other = noise_jpeg(1100)
    response = signed_in.upload(("one.jpg", large_jpeg, "image/jpeg"), ("two.jpg", other, "image/jpeg"))
    assert response.status_code == 201, response.text
    stored = [requests.get(p["url"], timeout=30).content for p in response.json()["photos"]]
    assert stored == [large_jpeg, other]


def test_a_truncated_large_jpeg_is_refused_and_nothing_is_committed(
    signed_in: AppClient, services, large_jpeg: bytes
):
    response = signed_in.upload(("cut.jpg", large_jpeg[: len(large_jpeg) - 500_000], "image/jpeg"))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_image"
    assert signed_in.user is not None  # the signed_in fixture signed in
    assert services.blobs_of(signed_in.user["oid"]) == set()
    assert signed_in.photos()["photos"] == []


def test_a_bad_file_after_a_large_good_one_stores_neither(signed_in: AppClient, services, large_jpeg: bytes):
    response = signed_in.upload(
        ("good.jpg", large_jpeg, "image/jpeg"),
        ("bad.jpg", large_jpeg[:-500_000], "image/jpeg"),
    )
    assert response.status_code == 400, response.text
    assert signed_in.user is not None  # the signed_in fixture signed in
    assert services.blobs_of(signed_in.user["oid"]) == set()
    assert signed_in.photos()["photos"] == []


def test_a_large_jpeg_with_a_location_is_stored_without_it(signed_in: AppClient, large_jpeg: bytes):
    located = with_location(large_jpeg)
    assert 0x8825 in Image.open(io.BytesIO(located)).getexif()
    response = signed_in.upload(("where.jpg", located, "image/jpeg"))
    assert response.status_code == 201, response.text
    stored = requests.get(response.json()["photos"][0]["url"], timeout=30).content
    assert stored != located
    assert 0x8825 not in Image.open(io.BytesIO(stored)).getexif()


def test_staged_blocks_commit_once_never_overwrite_and_abandon_cleanly(
    services, container: ContainerClient, large_jpeg: bytes, tmp_path
):
    store = BlobStore(container="images", connection_string=services.storage_connection_string)
    source = tmp_path / "upload.jpg"
    source.write_bytes(large_jpeg)
    name = f"staged-{uuid.uuid4()}/a.jpg"
    with open(source, "rb") as stream:
        store.stage(name, stream).commit(content_type="image/jpeg")
        assert container.download_blob(name).readall() == large_jpeg
        with pytest.raises(ResourceExistsError):
            store.stage(name, stream).commit(content_type="image/jpeg")

        abandoned = f"staged-{uuid.uuid4()}/b.jpg"
        store.stage(abandoned, stream).abandon()
        assert staging_threads() == []
        assert not container.get_blob_client(abandoned).exists()
    assert container.download_blob(name).readall() == large_jpeg
    container.delete_blob(name)


def test_staging_into_a_missing_container_creates_it(services, large_jpeg: bytes, tmp_path):
    missing = f"gone-{uuid.uuid4().hex[:12]}"
    store = BlobStore(container=missing, connection_string=services.storage_connection_string)
    assert not store.container.exists()
    source = tmp_path / "upload.jpg"
    source.write_bytes(large_jpeg)
    with open(source, "rb") as stream:
        store.stage("a.jpg", stream).commit(content_type="image/jpeg")
    try:
        assert store.container.download_blob("a.jpg").readall() == large_jpeg
    finally:
        store.container.delete_container()
