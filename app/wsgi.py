"""A request body the app did not read is drained, within bounds, after the answer is sent.

When the app answers before reading the body (413 for an upload over MAX_UPLOAD_MB, 401 for a
signed-out upload, a CSRF refusal), closing the connection with unread data makes the kernel
send a TCP reset, and a client still sending usually loses the answer with it. So the answer
goes first, then up to `limit` bytes of the rest are read and thrown away, for at most
`seconds`, and the connection is closed; a client that sends more than that is cut off, so
nobody can make the server read without end.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterable
from typing import IO, Any

from werkzeug.wsgi import ClosingIterator

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


class _CountingInput:
    """wsgi.input that counts what the app read, and whether it met the body's end."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.consumed = 0
        self.ended = False

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._count(data, size)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._stream.readline(size)
        self._count(data, size)
        return data

    def _count(self, data: bytes, size: int) -> None:
        self.consumed += len(data)
        if not data and size != 0:
            self.ended = True

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class DrainUnreadBody:
    """WSGI middleware, outermost: drains what the app left unread of each request body."""

    def __init__(self, app: Callable[..., Iterable[bytes]], *, limit: int, seconds: float = 10.0) -> None:
        self.app = app
        self.limit = limit
        self.seconds = seconds

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        counted = _CountingInput(environ["wsgi.input"])
        environ["wsgi.input"] = counted
        return ClosingIterator(self.app(environ, start_response), lambda: self._drain(environ, counted))

    def _drain(self, environ: dict[str, Any], counted: _CountingInput) -> None:
        length = _content_length(environ)
        if counted.ended or length == 0 or (length is None and not _chunked(environ)):
            return
        remaining = None if length is None else length - counted.consumed
        if remaining is not None and remaining <= 0:
            return
        sock: socket.socket | None = environ.get("gunicorn.socket")
        deadline = time.monotonic() + self.seconds
        budget = self.limit
        finished = False
        previous_timeout = sock.gettimeout() if sock is not None else None
        try:
            while budget > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if sock is not None:
                    sock.settimeout(left)
                want = min(_CHUNK, budget, remaining if remaining is not None else _CHUNK)
                data = counted.read(want)
                if not data:
                    finished = True
                    break
                budget -= len(data)
                if remaining is not None:
                    remaining -= len(data)
                    if remaining <= 0:
                        finished = True
                        break
        except (OSError, ValueError) as exc:
            log.info("stopped discarding an unread request body: %s", type(exc).__name__)
        finally:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.settimeout(previous_timeout)
        discarded = self.limit - budget
        if finished:
            log.info("discarded %d unread bytes of a request body: connection closed", discarded)
        else:
            log.warning(
                "discarded %d unread bytes of a request body, the most it reads: connection closed",
                discarded,
            )
        # Closed either way: the app cannot tell its server's keep-alive to stop (gunicorn drops
        # an app's Connection: close), and a request sent right behind the body, read with its
        # tail, would wait unseen until the keep-alive timeout.
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = environ.get("CONTENT_LENGTH")
    if not raw:
        return None
    try:
        return max(int(raw), 0)
    except ValueError:
        return None


def _chunked(environ: dict[str, Any]) -> bool:
    return "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
