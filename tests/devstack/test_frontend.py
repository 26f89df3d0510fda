"""nginx as App Service's front end: TLS with the tests' CA, the forwarded headers App Service
sends, bodies streamed unbuffered, and nothing left running after a stop."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from devstack.fake_identity.tls import TlsFiles, make_tls
from devstack.frontend import FrontEnd, find_nginx
from devstack.process import ServiceError, port_is_free
from tests.devstack.helpers import assert_gone

pytestmark = pytest.mark.skipif(find_nginx() is None, reason="nginx is not installed (make test installs it)")


class Echo(BaseHTTPRequestHandler):
    """Answers with the request line, headers and body length it received."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = json.dumps({"path": self.path, "headers": dict(self.headers), "body": len(body)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def front_end(upstream: ThreadingHTTPServer, tls: TlsFiles, tmp_path_factory) -> Iterator[FrontEnd]:
    with FrontEnd(
        upstream_port=upstream.server_address[1], tls=tls, log_dir=tmp_path_factory.mktemp("fe")
    ) as fe:
        yield fe


def echo(front_end: FrontEnd, tls: TlsFiles, method: str = "GET", **kwargs) -> dict:
    response = requests.request(
        method, f"{front_end.url}/a/b?x=1", verify=str(tls.ca_pem), timeout=10, **kwargs
    )
    assert response.status_code == 200
    return response.json()


def test_terminates_tls_and_forwards_what_app_service_forwards(front_end: FrontEnd, tls: TlsFiles) -> None:
    seen = echo(front_end, tls)
    headers = seen["headers"]
    assert seen["path"] == "/a/b?x=1"
    assert headers["Host"] == f"127.0.0.1:{front_end.port}"  # the client's Host, kept
    assert headers["X-Forwarded-Host"] == f"127.0.0.1:{front_end.port}"
    assert headers["X-Forwarded-Proto"] == "https"
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert len(headers["X-ARR-LOG-ID"]) == 32  # a request id per request


def test_forged_forwarded_headers_are_overwritten_or_come_first(front_end: FrontEnd, tls: TlsFiles) -> None:
    headers = echo(front_end, tls, headers={"X-Forwarded-Proto": "http", "X-Forwarded-For": "203.0.113.7"})[
        "headers"
    ]
    assert headers["X-Forwarded-Proto"] == "https"
    # The front end appends the address it saw: one trusted hop means the last entry.
    assert headers["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"


def test_large_bodies_pass_with_no_limit_of_its_own(front_end: FrontEnd, tls: TlsFiles) -> None:
    assert echo(front_end, tls, "POST", data=b"x" * (3 * 1024 * 1024))["body"] == 3 * 1024 * 1024


def test_plain_http_to_the_tls_port_is_refused(front_end: FrontEnd) -> None:
    assert requests.get(f"http://127.0.0.1:{front_end.port}/", timeout=5).status_code == 400


def test_stop_leaves_nothing_running(upstream: ThreadingHTTPServer, tls: TlsFiles, tmp_path: Path) -> None:
    fe = FrontEnd(upstream_port=upstream.server_address[1], tls=tls, log_dir=tmp_path).start()
    pid = fe._proc.pid  # type: ignore[union-attr]
    fe.stop()
    assert_gone(pid)
    assert port_is_free(fe.port)


def test_a_missing_nginx_is_named(tls: TlsFiles, tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="nginx"):
        FrontEnd(upstream_port=1, tls=tls, log_dir=tmp_path, nginx=str(tmp_path / "no-nginx")).start()
