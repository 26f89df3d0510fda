"""Uploads taken in while they arrive.

The request body is parsed as it is read (werkzeug's `MultipartDecoder`, the parser behind
`request.files`, fed from `request.stream`, which keeps MAX_CONTENT_LENGTH). Each file goes into
a temporary file, and while the rest of the body is still coming, one thread validates that
file (app/images.py) and another sends its bytes to storage as uncommitted blocks
(app/storage.py). An upload then costs about the longest of receiving, validating and staging
instead of their sum, and a file that is refused is answered before the body ends.

The CSRF token is checked with Flask-WTF's `validate_csrf`: from the `X-CSRFToken` header before
the body is read, or from the `csrf_token` field, which the page's form sends before its files.
Nothing is validated or sent to storage before the token is found valid.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar, cast

from flask import abort, request
from flask_wtf.csrf import CSRFError, validate_csrf
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData
from wtforms.validators import ValidationError

from app.images import (
    FORMATS,
    CheckedImage,
    InvalidImage,
    check_filename,
    check_image,
    checked_as_it_arrives,
    decode_paused,
    may_be_stored_as_sent,
    sniff_format,
)
from app.settings import get_settings
from app.storage import StagedBlob, get_blobs

T = TypeVar("T")

FIELD = "file"
# Read from the body at a time: a few dozen reads for a large photo, and small enough that the
# validator and the stager see its bytes soon after they arrive.
CHUNK = 256 * 1024


class UploadAborted(Exception):
    """Raised to a reader of a file whose request failed: nothing more of it will arrive."""


class Spool:
    """One file of the request body as it arrives, in an unnamed temporary file: written by
    the request's thread, read meanwhile by others, each at its own position
    (`os.pread`), whose reads wait for bytes not yet received."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115  # closed by close()
        self._fd = self._file.fileno()
        self._size = 0
        self._complete = False
        self._aborted = False
        self._changed = threading.Condition()

    def write(self, data: bytes) -> None:
        view, offset = memoryview(data), self._size
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written
        with self._changed:
            self._size = offset
            self._changed.notify_all()

    def finish(self) -> None:
        with self._changed:
            self._complete = True
            self._changed.notify_all()

    def abort(self) -> None:
        """Wake every reader with UploadAborted, now and for any read after."""
        with self._changed:
            self._aborted = True
            self._changed.notify_all()

    def received(self, end: int, pause: Callable[[], AbstractContextManager[Any]] = nullcontext) -> int:
        """How many bytes of `[0, end)` are here, once all of them are or the file is complete.
        A wait runs inside `pause()` (a decode gives its slot back meanwhile)."""
        with self._changed:
            if self._ready(end):
                return self._here(end)
        with pause(), self._changed:
            self._changed.wait_for(lambda: self._ready(end))
            return self._here(end)

    def _ready(self, end: int) -> bool:
        return self._aborted or self._complete or self._size >= end

    def _here(self, end: int) -> int:
        if self._aborted:
            raise UploadAborted("the upload failed before this file arrived")
        return min(self._size, end)

    def length(self, pause: Callable[[], AbstractContextManager[Any]] = nullcontext) -> int:
        """The file's size, once it has all arrived (a wait runs inside `pause()`)."""
        with self._changed:
            if self._aborted or self._complete:
                return self._here(self._size)
        with pause(), self._changed:
            self._changed.wait_for(lambda: self._aborted or self._complete)
            return self._here(self._size)

    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self._fd, size, offset)

    def reader(self) -> SpoolReader:
        return SpoolReader(self)

    def close(self) -> None:
        self.abort()
        self._file.close()


class SpoolReader(io.RawIOBase):
    """A seekable reader of a `Spool`: a read waits for the bytes it asks for, a seek to the end
    for the whole file. `pause` is entered around each wait."""

    def __init__(self, spool: Spool) -> None:
        super().__init__()
        self._spool = spool
        self._position = 0
        self.pause: Callable[[], AbstractContextManager[Any]] = nullcontext

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        end = self._spool.length(self.pause) if size is None or size < 0 else self._position + size
        here = self._spool.received(end, self.pause)
        if here <= self._position:
            return b""
        data = self._spool.pread(here - self._position, self._position)
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._position = offset
        elif whence == io.SEEK_CUR:
            self._position += offset
        elif whence == io.SEEK_END:
            self._position = self._spool.length(self.pause) + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if self._position < 0:
            raise OSError("negative seek position")
        return self._position

    def tell(self) -> int:
        return self._position


@dataclass
class Pending:
    """A validated upload, not yet stored; its blocks may already be staged."""

    id: uuid.UUID
    filename: str
    image: CheckedImage
    staged: StagedBlob | None


def blob_name(oid: str, photo_id: uuid.UUID, extension: str) -> str:
    """Server-chosen, never the client's filename: `<owner oid>/<photo id>.<extension>`."""
    return f"{oid}/{photo_id}.{extension}"


def naming(filename: str | None, exc: InvalidImage) -> InvalidImage:
    """The same refusal with the file named first, so the answer to an upload of several files
    says which one was refused: "notes.jpg is not an image: only JPEG, … are accepted."."""
    name = filename if filename and filename.isprintable() else "A file"
    if exc.code == "unsupported_type":
        message = f"{name} is not an image: {exc.message[:1].lower()}{exc.message[1:]}"
    else:
        message = f"{name}: {exc.message}"
    return InvalidImage(exc.code, message)


@dataclass
class _Part:
    sent_name: str  # the client's filename, '' when the form's file input was left empty
    filename: str | None  # as it will be kept (check_filename)
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    spool: Spool = field(default_factory=Spool)
    checked: futures.Future[CheckedImage | None] | None = None
    staged: futures.Future[StagedBlob | None] | None = None
    # Per phase ("check", "stage"): time.perf_counter() when it ended, and the CPU-seconds of
    # its thread (staging's: the thread that reads and hands out the blocks).
    ended: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    def refusal(self) -> BaseException | None:
        """The validation's failure, if it has already failed."""
        if self.checked is not None and self.checked.done():
            return self.checked.exception()
        return None


class _Upload:
    """The state of one upload request while its body is read."""

    def __init__(self, oid: str, validator: futures.Executor, stager: futures.Executor) -> None:
        self.oid = oid
        self.parts: list[_Part] = []
        self.token_valid = False
        self._validator = validator
        self._stager = stager
        self._blobs = get_blobs()
        self._max_pixels = get_settings().max_image_pixels
        self._max_files = get_settings().max_files_per_upload

    def add_file(self, sent_name: str) -> _Part:
        if len(self.parts) == self._max_files:
            abort(400, description=f"At most {self._max_files} files per upload.")
        try:
            filename = check_filename(sent_name)
        except InvalidImage as exc:
            raise naming(sent_name, exc) from exc
        part = _Part(sent_name, filename)
        self.parts.append(part)
        if self.token_valid:
            self._start(part)
        return part

    def token(self, value: str | None) -> None:
        """Check the CSRF token; once valid, the files received so far start being checked."""
        try:
            validate_csrf(value)
        except ValidationError as exc:  # what CSRFProtect itself turns into CSRFError
            raise CSRFError(exc.args[0]) from exc
        self.token_valid = True
        for part in self.parts:
            self._start(part)

    def _start(self, part: _Part) -> None:
        if part.checked is None:
            part.checked = submit_in_context(self._validator, _timed, "check", self._check, part)
            part.staged = submit_in_context(self._stager, _timed, "stage", self._stage, part)

    def _check(self, part: _Part) -> CheckedImage | None:
        reader = part.spool.reader()
        stream = cast(IO[bytes], reader)
        if not part.sent_name and part.spool.length() == 0:
            return None  # a form posted with no file chosen sends an empty, unnamed part
        if checked_as_it_arrives(stream):
            reader.pause = decode_paused
        else:
            part.spool.length()  # the whole file first: its decode holds its pixels meanwhile
        try:
            return check_image(stream, max_pixels=self._max_pixels)
        except InvalidImage as exc:
            raise naming(part.filename or part.sent_name, exc) from exc

    def _stage(self, part: _Part) -> StagedBlob | None:
        reader = cast(IO[bytes], part.spool.reader())
        if not may_be_stored_as_sent(reader):
            return None
        reader.seek(0)
        fmt = sniff_format(reader.read(16))
        assert fmt is not None  # may_be_stored_as_sent sniffed one
        return self._blobs.stage(blob_name(self.oid, part.id, FORMATS[fmt][1]), reader)

    def results(self) -> list[Pending]:
        """Every file's check and staging, once done; raises the first refusal."""
        pending: list[Pending] = []
        for part in self.parts:
            assert part.checked is not None and part.staged is not None
            image, staged = part.checked.result(), part.staged.result()
            if image is None:
                continue
            pending.append(Pending(part.id, part.filename or f"image.{image.extension}", image, staged))
        return pending

    def abandon(self) -> None:
        """Wake and wait for every thread of this upload, and drop what it staged."""
        for part in self.parts:
            part.spool.abort()
        for part in self.parts:
            if part.checked is not None:
                futures.wait([part.checked])
            if part.staged is not None:
                with contextlib.suppress(BaseException):
                    staged = part.staged.result()
                    if staged is not None:
                        staged.abandon()


def submit_in_context(
    pool: futures.Executor, call: Callable[..., T], *args: Any, **kwargs: Any
) -> futures.Future[T]:
    """`call(*args, **kwargs)` in the pool, in a copy of this context (telemetry's current span)."""
    return pool.submit(contextvars.copy_context().run, call, *args, **kwargs)


def _timed(phase: str, call: Callable[[_Part], T], part: _Part) -> T:
    """`call(part)`, noting in the part when the phase ended and the CPU its thread spent."""
    cpu = time.thread_time()
    try:
        return call(part)
    finally:
        part.ended[phase], part.cpu[phase] = time.perf_counter(), time.thread_time() - cpu


@dataclass
class Received:
    """The files of one upload request, and when each phase ended (seconds after it began)."""

    files: list[Pending]
    body_read_s: float
    checked_s: float
    staged_s: float
    started: float = field(repr=False, default=0.0)
    cpu_s: dict[str, float] = field(default_factory=dict)  # receive, check, stage

    def phases_ms(self, stored_at: float) -> dict[str, float]:
        """What the log says of an upload: when the body was read, the checks and the staging
        ended, and the files were stored, in ms from the request's first byte of body; and the
        CPU time of receiving, checking and staging (its blocks' threads included)."""
        return {
            "body_read_ms": round(self.body_read_s * 1000, 1),
            "checked_ms": round(self.checked_s * 1000, 1),
            "staged_ms": round(self.staged_s * 1000, 1),
            "stored_ms": round((stored_at - self.started) * 1000, 1),
            **{f"{name}_cpu_ms": round(seconds * 1000, 1) for name, seconds in self.cpu_s.items()},
        }


@contextmanager
def received(oid: str) -> Iterator[Received]:
    """The files of this multipart request, validated and possibly staged, once the whole body
    has been read; refusals (InvalidImage named after its file, CSRFError, 400, 413) are raised
    as soon as they are known. The temporary files are removed when the block ends."""
    boundary = request.mimetype_params.get("boundary")
    if not boundary:
        abort(400, description="The multipart/form-data body names no boundary.")
    with (
        futures.ThreadPoolExecutor(1, thread_name_prefix="upload-check") as validator,
        futures.ThreadPoolExecutor(1, thread_name_prefix="upload-stage") as stager,
    ):
        upload = _Upload(oid, validator, stager)
        try:
            stream = request.stream  # 413 here for a Content-Length over MAX_UPLOAD_MB, unread
            header_token = request.headers.get("X-CSRFToken")
            if header_token:
                upload.token(header_token)
            started, receive_cpu = time.perf_counter(), time.thread_time()
            _read_body(upload, stream, boundary.encode("latin-1"))
            body_read, receive_cpu = time.perf_counter(), time.thread_time() - receive_cpu
            if not upload.token_valid:
                upload.token(None)  # raises: "The CSRF token is missing."
            pending = upload.results()
        except BaseException:
            upload.abandon()
            for part in upload.parts:
                part.spool.close()
            raise
    try:
        for item in pending:
            if item.staged is not None and not _stored_as_staged(item):
                item.staged.abandon()
                # The cleaned copy goes under a new name: the old one holds the dropped blocks,
                # which Azurite counts as an existing blob against an upload that never overwrites.
                item.staged, item.id = None, uuid.uuid4()
        yield Received(
            pending,
            body_read - started,
            max((part.ended.get("check", started) - started for part in upload.parts), default=0.0),
            max((part.ended.get("stage", started) - started for part in upload.parts), default=0.0),
            started,
            {
                "receive": receive_cpu,
                "check": sum(part.cpu.get("check", 0.0) for part in upload.parts),
                "stage": sum(part.cpu.get("stage", 0.0) for part in upload.parts)
                + sum(item.staged.cpu_seconds for item in pending if item.staged is not None),
            },
        )
    finally:
        for part in upload.parts:
            part.spool.close()


def _stored_as_staged(item: Pending) -> bool:
    """Whether what validation says to store is the upload as sent (then the staged blocks are
    it), not a copy cleaned of its location."""
    return isinstance(item.image.data, SpoolReader)


def _read_body(upload: _Upload, stream: IO[bytes], boundary: bytes) -> None:
    decoder = MultipartDecoder(boundary, max_parts=request.max_form_parts)
    max_field = request.max_form_memory_size
    field_name: str | None = None
    field_data = bytearray()
    part: _Part | None = None
    chunk = stream.read(CHUNK)
    if not chunk:
        return  # an empty body: no file
    while True:
        decoder.receive_data(chunk or None)  # None: the body's end
        event = _next_event(decoder)
        while not isinstance(event, (NeedData, Epilogue)):
            if isinstance(event, File):
                field_name, part = None, None
                if event.name == FIELD:
                    part = upload.add_file(event.filename)
            elif isinstance(event, Field):
                field_name, part = event.name, None
                field_data.clear()
            elif isinstance(event, Data):
                if part is not None:
                    part.spool.write(event.data)
                    if not event.more_data:
                        part.spool.finish()
                elif field_name is not None:
                    field_data += event.data
                    if max_field is not None and len(field_data) > max_field:
                        raise RequestEntityTooLarge()
                    if not event.more_data and field_name == "csrf_token" and not upload.token_valid:
                        upload.token(field_data.decode("utf-8", "replace"))
            event = _next_event(decoder)
        for file in upload.parts:
            refusal = file.refusal()
            if refusal is not None:
                raise refusal
        if isinstance(event, Epilogue) or not chunk:
            return
        chunk = stream.read(CHUNK)


def _next_event(decoder: MultipartDecoder) -> Any:
    try:
        return decoder.next_event()
    except ValueError:
        abort(400, description="The multipart/form-data body is malformed or ends early.")
