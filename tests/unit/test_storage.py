"""Read-only links: signed per time window, always valid for at least the TTL. The container:
made by the first call that needs it, not at start. Failures: a refused key or role is the
configuration, a closed port or a 503 an outage."""

import base64
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.credentials import AzureSasCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from app.service_errors import ConfigurationError, ServiceUnavailable
from app.storage import (
    BLOCK_SIZE,
    BlobStore,
    StorageConfigurationError,
    StorageUnavailable,
    storage_error,
)
from devstack.azurite import ACCOUNT_KEY, ACCOUNT_NAME, Azurite

AZURITE = (
    f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{ACCOUNT_NAME};"
)


def store(now: list[float]) -> BlobStore:
    return BlobStore(container="images", connection_string=AZURITE, link_ttl=900, clock=lambda: now[0])


def expiry(url: str) -> datetime:
    return datetime.fromisoformat(parse_qs(urlsplit(url).query)["se"][0].replace("Z", "+00:00"))


def test_links_are_stable_within_a_window_and_always_valid_for_the_ttl():
    now = [1_800_000_000.0]  # a window boundary (multiple of 450 s)
    blobs = store(now)
    first = blobs.read_url("oid/a b.png")
    assert urlsplit(first).path == "/devstoreaccount1/images/oid/a%20b.png"
    assert parse_qs(urlsplit(first).query)["sp"] == ["r"]
    for offset in (0, 1, 200, 449):
        now[0] = 1_800_000_000.0 + offset
        url = blobs.read_url("oid/a b.png")
        assert url == first
        remaining = expiry(url) - datetime.fromtimestamp(now[0], UTC)
        assert timedelta(seconds=900) <= remaining <= timedelta(seconds=1350)
    now[0] = 1_800_000_450.0
    assert blobs.read_url("oid/a b.png") != first
    assert blobs.read_url("oid/other.png") != blobs.read_url("oid/a b.png")


def test_a_pages_links_are_read_urls_links_in_one_window():
    now = [1_800_000_449.0]
    blobs = store(now)
    window = blobs.link_window()
    link = blobs.read_urls()
    assert link("oid/a.png") == blobs.read_url("oid/a.png")
    now[0] += 1  # the next window: links read for the page stay in the window it was read in
    assert link("oid/b.png") == blobs.read_urls(window)("oid/b.png") != blobs.read_url("oid/b.png")
    assert blobs.read_urls()("oid/b.png") == blobs.read_url("oid/b.png")


# --- what a failure means, against a real Azurite ----------------------------------------------


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    with Azurite() as service:
        BlobStore(container="images", connection_string=service.connection_string).ensure_container()
        yield service


def every_call(blobs: BlobStore) -> dict[str, Callable[[], object]]:
    """Each BlobStore/StagedBlob method that talks to Blob Storage."""

    def staged() -> None:
        data = os.urandom(BLOCK_SIZE + 10)  # two blocks
        with tempfile.TemporaryFile() as source:
            source.write(data)
            blobs.stage("oid/staged.jpg", source).commit(content_type="image/jpeg")

    return {
        "ensure_container": blobs.ensure_container,
        "ping": blobs.ping,
        "upload": lambda: blobs.upload("oid/a.png", b"png", length=3, content_type="image/png"),
        "stage+commit": staged,
        "delete": lambda: blobs.delete("oid/a.png"),
        "list_names": lambda: list(blobs.list_names(older_than=datetime.now(UTC))),
    }


@pytest.mark.parametrize("name", ["ensure_container", "ping", "upload", "stage+commit"])
def test_a_missing_container_is_made_by_the_first_call_that_needs_it(azurite: Azurite, name: str):
    """No container at start (a new account, an emptied Azurite): the call makes it and succeeds."""
    blobs = BlobStore(container=f"fresh-{uuid.uuid4().hex[:12]}", connection_string=azurite.connection_string)
    assert not blobs.container.exists()
    every_call(blobs)[name]()
    assert blobs.container.exists()
    blobs.container.delete_container()


@pytest.mark.parametrize("name", ["delete", "list_names"])
def test_calls_that_need_no_container_do_not_make_one(azurite: Azurite, name: str):
    """Deleting from or listing a container that does not exist: nothing to do, nothing made."""
    blobs = BlobStore(container=f"fresh-{uuid.uuid4().hex[:12]}", connection_string=azurite.connection_string)
    result = every_call(blobs)[name]()
    assert result in (None, [])
    assert not blobs.container.exists()


def test_a_wrong_account_key_is_an_authentication_failure(azurite: Azurite):
    wrong_key = base64.b64encode(os.urandom(64)).decode()
    blobs = BlobStore(
        container="images", connection_string=azurite.connection_string.replace(ACCOUNT_KEY, wrong_key)
    )
    for name, call in every_call(blobs).items():
        with pytest.raises(StorageConfigurationError) as caught:
            call()
        exc = caught.value
        assert isinstance(exc, ConfigurationError), name
        assert exc.code == "storage_auth_failed", name
        assert "account key" in exc.message
        assert wrong_key not in exc.message and wrong_key not in str(exc)
        assert "403" in exc.detail  # the real answer, for the log


def test_a_credential_without_write_permission_is_forbidden(azurite: Azurite):
    """A read-only SAS gets the same real 403 AuthorizationPermissionMismatch that a managed
    identity without Storage Blob Data Contributor gets from Azure."""
    sas = generate_container_sas(
        ACCOUNT_NAME,
        "images",
        account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    credential = AzureSasCredential(sas)
    blobs = BlobStore(container="images", account_url=azurite.blob_endpoint, credential=credential)
    for name in ("upload", "stage+commit", "delete"):
        with pytest.raises(StorageConfigurationError) as caught:
            every_call(blobs)[name]()
        assert caught.value.code == "storage_forbidden", name
        assert "Storage Blob Data Contributor" in caught.value.message
        assert "AuthorizationPermissionMismatch" in caught.value.detail


def test_a_closed_port_is_an_outage():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    blobs = BlobStore(container="images", connection_string=AZURITE.replace("10000", str(port)))
    for name, call in every_call(blobs).items():
        with pytest.raises(StorageUnavailable) as caught:
            call()
        assert isinstance(caught.value, ServiceUnavailable), name
        assert not isinstance(caught.value, ConfigurationError), name
        assert caught.value.code == "storage_unavailable"
        assert "refused" in caught.value.detail.lower(), caught.value.detail


def test_a_busy_service_is_an_outage():
    """A server answering every request 503 ServerBusy, as Storage does when throttling."""

    class Busy(BaseHTTPRequestHandler):
        def do_any(self) -> None:
            self.send_response(503)
            self.send_header("x-ms-error-code", "ServerBusy")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_PUT = do_DELETE = do_HEAD = do_any

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        blobs = BlobStore(
            container="images", connection_string=AZURITE.replace("10000", str(server.server_address[1]))
        )
        with pytest.raises(StorageUnavailable) as caught:
            blobs.ping()
        assert "503" in caught.value.detail
    finally:
        server.shutdown()
        server.server_close()


def test_other_errors_stay_what_they_are(azurite: Azurite):
    """A missing blob is a bug in the caller, not the state of the service."""
    blobs = BlobStore(container="images", connection_string=azurite.connection_string)
    with pytest.raises(ResourceNotFoundError) as caught:
        blobs.container.get_blob_client("oid/missing.png").get_blob_properties()
    assert storage_error(caught.value, account_key=True) is None
