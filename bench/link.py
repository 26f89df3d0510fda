"""A slower link on loopback: a TCP relay that forwards what the client sends at a set rate.

Each chunk the client sends is passed on once the link would have carried it (its bytes at
`bits_per_second`, one after the other), so the server receives the body as it would from a
client on that link; answers come back unpaced (they are small). The app and the direct
upload each go through their own relay, so both see the same link.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

_CHUNK = 64 * 1024


class ThrottledLink:
    """`with ThrottledLink(port, rate) as link:` then connect to `link.port` on 127.0.0.1."""

    def __init__(self, target_port: int, bits_per_second: float) -> None:
        self.target_port = target_port
        self.bytes_per_second = bits_per_second / 8
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        self._accepting = threading.Thread(target=self._accept, name="link-accept", daemon=True)

    def __enter__(self) -> ThrottledLink:
        self._accepting.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (closing alone does not)
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in [self._accepting, *self._threads]:
            thread.join(timeout=5)

    def url(self, base_url: str) -> str:
        """`base_url` (http://127.0.0.1:<target_port>…) through the link."""
        return base_url.replace(f":{self.target_port}", f":{self.port}", 1)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._sockets.append(sock)
            for source, sink, paced in ((client, server, True), (server, client, False)):
                thread = threading.Thread(target=self._relay, args=(source, sink, paced), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _relay(self, source: socket.socket, sink: socket.socket, paced: bool) -> None:
        free_at = time.perf_counter()  # when the link has carried everything before
        try:
            while chunk := source.recv(_CHUNK):
                if paced:
                    free_at = max(free_at, time.perf_counter()) + len(chunk) / self.bytes_per_second
                    delay = free_at - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
