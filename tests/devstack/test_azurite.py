"""Azurite from node_modules: a real blob round trip, restart on the same port, clean stop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from devstack.azurite import ACCOUNT_KEY, Azurite
from devstack.process import ServiceError, port_accepts, port_is_free
from tests.devstack.helpers import assert_gone


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    with Azurite() as service:
        yield service


def test_connection_string_is_the_well_known_one_on_a_loopback_port(azurite: Azurite) -> None:
    endpoint = f"http://127.0.0.1:{azurite.port}/devstoreaccount1"
    assert azurite.blob_endpoint == endpoint
    assert azurite.connection_string == (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={ACCOUNT_KEY};BlobEndpoint={endpoint};"
    )


def test_blob_round_trip(azurite: Azurite) -> None:
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = client.create_container("roundtrip")
    container.upload_blob("a/photo.jpg", b"\xff\xd8 not really a jpeg")

    blob = container.get_blob_client("a/photo.jpg")
    assert blob.download_blob().readall() == b"\xff\xd8 not really a jpeg"
    assert blob.url == f"{azurite.blob_endpoint}/roundtrip/a/photo.jpg"


def test_stop_leaves_nothing_and_start_answers_on_the_same_port(azurite: Azurite) -> None:
    pid, port = azurite.pid, azurite.port
    assert pid is not None

    azurite.stop()

    assert azurite.pid is None
    assert_gone(pid)
    assert not port_accepts(port)
    assert port_is_free(port)

    azurite.start()

    assert azurite.port == port
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    assert [c.name for c in client.list_containers()] == []  # in memory: data is gone
    client.create_container("after-restart")


def test_destroy_removes_the_scratch_dir() -> None:
    service = Azurite().start()
    pid, scratch = service.pid, service.log_path.parent
    assert pid is not None and scratch.is_dir()

    service.destroy()

    assert_gone(pid)
    assert not scratch.exists()


def test_missing_node_modules_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match=r"Azurite is not installed .*run `npm ci`"):
        Azurite(node_modules=tmp_path, log_dir=tmp_path).start()
