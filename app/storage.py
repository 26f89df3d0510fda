"""Azure Blob Storage: uploads, deletes and short-lived read-only links.

In Azure the app authenticates with its managed identity (DefaultAzureCredential) and signs
links with a user-delegation key, cached until it nears expiry. With Azurite (development,
tests) it uses the connection string's account key.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import UTC, datetime, timedelta
from typing import IO, Any, TypeVar
from urllib.parse import quote, urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import (
    BlobBlock,
    BlobSasPermissions,
    BlobServiceClient,
    ContentSettings,
    LinearRetry,
    UserDelegationKey,
    generate_blob_sas,
)
from flask import Flask, current_app

from app.service_errors import ConfigurationError, ServiceError, ServiceUnavailable, raised_as_causes
from app.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Blocks of 4 MiB, two in flight: the upload streams from the file the request body is
# received into, and a worker's memory stays flat whatever the file size.
BLOCK_SIZE = 4 * 1024 * 1024
_UPLOAD_CONCURRENCY = 2
_CACHE_CONTROL = "private, max-age=86400, immutable"


class StorageUnavailable(ServiceUnavailable):
    """Blob Storage did not answer: connection refused, timeout, 5xx or throttling."""

    code = "storage_unavailable"
    messages = {"storage_unavailable": "Image storage is unavailable; try again shortly."}


class StorageConfigurationError(ConfigurationError):
    """Blob Storage answered and refused the app's credentials or its identity's role."""

    messages = {
        "storage_forbidden": (
            "The app's identity lacks the Storage Blob Data Contributor role on the storage account "
            "(a new role assignment takes a few minutes to apply)."
        ),
        "storage_auth_failed": (
            "Blob Storage did not accept the app's credentials: a wrong account key in "
            "AZURE_STORAGE_CONNECTION_STRING, or no managed identity (no token) for "
            "AZURE_STORAGE_ACCOUNT_URL."
        ),
    }


def storage_error(exc: AzureError, *, account_key: bool) -> ServiceError | None:
    """What an SDK error means for the app; None for the rest (a bug, not the service's state).

    With an account key, RBAC roles play no part, so a 401/403 means the key was refused
    (Azurite says AuthorizationFailure where Azure says AuthenticationFailed). With a token,
    AuthorizationPermissionMismatch/AuthorizationFailure mean the identity lacks its data role.
    """
    if isinstance(exc, ClientAuthenticationError):  # 401, AuthenticationFailed, no token at all
        return StorageConfigurationError(_detail(exc), code="storage_auth_failed")
    if isinstance(exc, (ServiceRequestError, ServiceResponseError, IncompleteReadError)):  # refused, timeouts
        return StorageUnavailable(_detail(exc))
    status = exc.status_code if isinstance(exc, HttpResponseError) else None
    if status in (401, 403):
        code = "storage_auth_failed" if account_key or status == 401 else "storage_forbidden"
        return StorageConfigurationError(_detail(exc), code=code)
    if status is not None and (status >= 500 or status in (408, 429)):
        return StorageUnavailable(_detail(exc))
    return None


def _container_missing(exc: ResourceNotFoundError) -> bool:
    return getattr(exc, "error_code", None) == "ContainerNotFound"


def _detail(exc: AzureError) -> str:
    """Status, error code and the first line of the service's words (no request ids or XML)."""
    code = getattr(exc, "error_code", None)
    parts = [type(exc).__name__, getattr(exc, "status_code", None), getattr(code, "value", code)]
    first_line = (exc.message.splitlines() or [""])[0]
    return " ".join(str(part) for part in parts if part) + f": {first_line}"


class BlobStore:
    """The images container; bound to Flask with `init_app`."""

    def __init__(
        self,
        *,
        container: str,
        connection_string: str | None = None,
        account_url: str | None = None,
        credential: Any = None,
        link_ttl: int = 900,
        clock: Callable[[], float] = time.time,
    ) -> None:
        options: dict[str, Any] = {
            # Fail fast when the service is down instead of the SDK's minute of back-off.
            # (The SDK annotates the delays as int; it computes with random.uniform, so floats work.)
            "retry_policy": LinearRetry(
                backoff=0.5,  # type: ignore[arg-type]
                retry_total=2,
                random_jitter_range=0.2,  # type: ignore[arg-type]
            ),
            "connection_timeout": 5,
            "read_timeout": 60,
            "max_block_size": BLOCK_SIZE,
            "max_single_put_size": BLOCK_SIZE,
        }
        if connection_string:
            self.client = BlobServiceClient.from_connection_string(connection_string, **options)
        elif account_url:
            if credential is None:
                from azure.identity import DefaultAzureCredential

                credential = DefaultAzureCredential()
            self.client = BlobServiceClient(account_url, credential=credential, **options)
        else:
            raise ValueError("a connection string or an account URL is required")
        self.container = self.client.get_container_client(container)
        self._account_key: str | None = getattr(self.client.credential, "account_key", None) or None
        self.link_ttl = timedelta(seconds=link_ttl)
        self._window = max(link_ttl // 2, 1)
        self._clock = clock
        self._signed_url = functools.lru_cache(maxsize=20_000)(self._sign)
        self._delegation_key: UserDelegationKey | None = None
        self._delegation_key_expiry = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStore:
        return cls(
            container=settings.storage_container,
            connection_string=settings.storage_connection_string,
            account_url=settings.storage_account_url,
            link_ttl=settings.link_ttl,
        )

    def init_app(self, app: Flask) -> None:
        app.extensions["blobs"] = self

    @property
    def origin(self) -> str:
        """scheme://host[:port] of the blob endpoint, for the page's Content-Security-Policy."""
        parts = urlsplit(self.client.url)
        return f"{parts.scheme}://{parts.netloc}"

    def errors(self) -> contextlib.AbstractContextManager[None]:
        """Raise the SDK's errors as their causes: StorageUnavailable for an outage,
        StorageConfigurationError for the app's credentials or role (see `storage_error`)."""
        return raised_as_causes(
            AzureError,
            lambda exc: storage_error(exc, account_key=self._account_key is not None),
        )

    def ensure_container(self) -> None:
        """Create the container unless it exists; `in_container` calls it when a call finds none."""
        with self.errors(), contextlib.suppress(ResourceExistsError):
            self.container.create_container()

    def ping(self) -> None:
        """The container answers, created first if missing: ready means uploads can be stored."""
        with self.errors():
            self.in_container(self.container.get_container_properties)

    def upload(self, name: str, data: IO[bytes] | bytes, *, length: int, content_type: str) -> None:
        """Write a new blob; never overwrites (names are server-chosen UUIDs)."""

        def write() -> None:
            if not isinstance(data, bytes):
                data.seek(0)
            self.container.upload_blob(
                name,
                data,
                length=length,
                overwrite=False,
                max_concurrency=_UPLOAD_CONCURRENCY,
                content_settings=ContentSettings(content_type=content_type, cache_control=_CACHE_CONTROL),
            )

        with self.errors():
            self.in_container(write)

    def stage(self, name: str, source: IO[bytes]) -> StagedBlob:
        """Send `source`'s bytes, read from its start a block at a time, as uncommitted blocks of
        blob `name`; return once all are sent or one failed. The source may be a file still
        arriving, whose reads wait for its bytes. The blob exists only once the returned
        `StagedBlob` is committed (which raises a block's failure)."""
        staged = StagedBlob(self, name)
        staged.send(source)
        return staged

    def in_container(self, call: Callable[[], T]) -> T:
        """Run `call`; if the container is missing, create it and run `call` once more.

        The container is made on first use, not at start, and an emptied storage account (an
        Azurite restart, a mistaken delete) heals without restarting the app.
        """
        try:
            return call()
        except ResourceNotFoundError as exc:
            if not _container_missing(exc):
                raise
        self.ensure_container()
        return call()

    def delete(self, name: str) -> None:
        with self.errors(), contextlib.suppress(ResourceNotFoundError):
            self.container.delete_blob(name, delete_snapshots="include")

    def list_names(self, *, older_than: datetime) -> Iterator[str]:
        """Names of the blobs older than `older_than`; none while the container does not exist."""
        with self.errors():
            try:
                for blob in self.container.list_blobs():
                    if blob.last_modified and blob.last_modified < older_than:
                        yield blob.name
            except ResourceNotFoundError as exc:
                if not _container_missing(exc):
                    raise

    def read_url(self, name: str, *, download_as: str | None = None) -> str:
        """A read-only link to one blob, valid for at least `link_ttl` from now; with
        `download_as`, Storage answers it as an attachment saved under that filename.

        Links are signed once per window of half the TTL and cached, so a gallery reload
        signs nothing and the URLs stay the same, which lets the browser cache the images.
        """
        disposition = attachment(download_as) if download_as is not None else None
        return self._signed_url(name, self.link_window(), disposition)

    def link_window(self) -> int:
        """The signing window now: every link read within one window is the same."""
        return int(self._clock() // self._window)

    def read_urls(self, window: int | None = None) -> Callable[[str], str]:
        """`read_url` (no download name) for the many links of one page, all in one window:
        now, or the `link_window()` given. The links and their cache are `read_url`'s."""
        at, signed = self.link_window() if window is None else window, self._signed_url
        return lambda name: signed(name, at, None)

    def _sign(self, name: str, window: int, disposition: str | None = None) -> str:
        window_start = datetime.fromtimestamp(window * self._window, UTC)
        expiry = window_start + timedelta(seconds=self._window) + self.link_ttl
        common: dict[str, Any] = {
            "account_name": self.client.account_name,
            "container_name": self.container.container_name,
            "blob_name": name,
            "permission": BlobSasPermissions(read=True),
            "expiry": expiry,
            "start": window_start - timedelta(minutes=5),  # clock skew between us and Storage
        }
        if disposition is not None:
            common["content_disposition"] = disposition
        if self._account_key:
            sas = generate_blob_sas(account_key=self._account_key, **common)
        else:
            sas = generate_blob_sas(user_delegation_key=self._user_delegation_key(expiry), **common)
        # What BlobClient.url builds, without building a BlobClient (a whole HTTP pipeline) per
        # link: that was 60% of the time of GET /api/photos, which signs two links per photo.
        return f"{self.container.url}/{quote(name, safe='~/')}?{sas}"

    def _user_delegation_key(self, needed_until: datetime) -> UserDelegationKey:
        """One key serves every link for hours; fetch a new one only when it nears expiry."""
        with self._lock:
            if self._delegation_key is None or self._delegation_key_expiry < needed_until:
                start = datetime.now(UTC) - timedelta(minutes=5)
                expiry = start + timedelta(hours=6)
                with self.errors():
                    self._delegation_key = self.client.get_user_delegation_key(start, expiry)
                self._delegation_key_expiry = expiry
            return self._delegation_key


def attachment(filename: str) -> str:
    """A Content-Disposition that saves under `filename` (RFC 6266): a quoted ASCII fallback,
    plus `filename*` in UTF-8 (RFC 5987) when the name is not plain printable ASCII."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename)
    if fallback == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class StagedBlob:
    """One blob's blocks, sent while the caller validates the same bytes.

    Staged blocks are invisible: no one can read them and there is no blob until `commit`, so
    a file that fails validation is never stored (Blob Storage discards uncommitted blocks
    after a week). Two blocks are sent at a time and a third is read meanwhile: 12 MiB in
    memory at most, whatever the file's size.
    """

    def __init__(self, store: BlobStore, name: str) -> None:
        self.name = name
        self._store = store
        self._blob = store.container.get_blob_client(name)
        self._lock = threading.Lock()
        self._stop = False
        self._block_ids: list[str] = []
        self._futures: list[futures.Future[None]] = []
        self._in_flight = threading.BoundedSemaphore(_UPLOAD_CONCURRENCY)
        self.cpu_seconds = 0.0  # of the threads that sent its blocks

    def send(self, source: IO[bytes]) -> None:
        """Stage `source` from its start, block after block, until it ends or `abandon` is
        called; waits for the blocks in flight before it returns or raises."""
        pool = futures.ThreadPoolExecutor(_UPLOAD_CONCURRENCY, thread_name_prefix="stage-block")
        try:
            source.seek(0)
            for index in itertools.count():
                data = source.read(BLOCK_SIZE)
                if not data:
                    break
                self._in_flight.acquire()
                with self._lock:
                    if self._stop:
                        self._in_flight.release()
                        break
                    block_id = base64.b64encode(f"{index:08d}".encode()).decode()  # same length for all
                    self._block_ids.append(block_id)
                    future = pool.submit(self._stage_block, block_id, data)
                    future.add_done_callback(lambda _: self._in_flight.release())
                    self._futures.append(future)
                del data
        finally:
            pool.shutdown(wait=True)

    def _stage_block(self, block_id: str, data: bytes) -> None:
        if self._stop:
            return
        cpu = time.thread_time()
        try:
            with self._store.errors():
                self._store.in_container(lambda: self._blob.stage_block(block_id, data, length=len(data)))
        finally:
            with self._lock:
                self.cpu_seconds += time.thread_time() - cpu

    def commit(self, *, content_type: str) -> None:
        """Make the blob from the blocks sent; raises the first block's failure; never overwrites."""
        for future in self._futures:
            future.result()
        with self._store.errors():
            self._blob.commit_block_list(
                [BlobBlock(block_id) for block_id in self._block_ids],
                content_settings=ContentSettings(content_type=content_type, cache_control=_CACHE_CONTROL),
                match_condition=MatchConditions.IfMissing,
            )

    def abandon(self) -> None:
        """Stage no more blocks and wait for those in flight, so no thread outlives the
        request; what was staged is never committed."""
        with self._lock:
            self._stop = True
            pending = list(self._futures)
        futures.wait(pending)


def get_blobs() -> BlobStore:
    return current_app.extensions["blobs"]
