"""TLS material, the in-process server's lifecycle, and the CLI `python -m devstack.fake_identity`."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import certifi
import pytest
import requests

from devstack.fake_identity import FakeConfig, FakeIdentityServer, make_tls

REPO_ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"^fake identity server ready at https://localhost:(\d+)$")
EXTERNAL_ID_READY = re.compile(r"^fake identity server external id ready at (https://localhost:\d+)$")


def test_make_tls_bundle_is_system_roots_plus_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    tls = make_tls(tmp_path)
    bundle = tls.bundle_pem.read_text()
    assert bundle.startswith(Path(certifi.where()).read_text().rstrip("\n"))
    assert bundle.rstrip().endswith(tls.ca_pem.read_text().rstrip())
    assert oct(tls.key_pem.stat().st_mode & 0o777) == "0o600"


def test_make_tls_builds_on_an_existing_requests_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = make_tls(tmp_path / "first")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(first.bundle_pem))
    second = make_tls(tmp_path / "second")
    bundle = second.bundle_pem.read_text()
    assert first.ca_pem.read_text() in bundle and second.ca_pem.read_text() in bundle


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_certificate_is_valid_for_localhost_and_loopback(tmp_path: Path, host: str) -> None:
    tls = make_tls(tmp_path)
    with FakeIdentityServer(FakeConfig.random(), tls=tls) as server:
        external_port = server.external_id_url.rsplit(":", 1)[1]
        for port in (server.port, external_port):  # both listeners serve the same certificate
            url = f"https://{host}:{port}/_fake/health"
            assert requests.get(url, verify=str(tls.bundle_pem), timeout=10).status_code == 200
            with pytest.raises(requests.exceptions.SSLError):
                requests.get(url, verify=certifi.where(), timeout=10)


def test_server_without_tls_makes_its_own_and_stops_cleanly() -> None:
    server = FakeIdentityServer(FakeConfig.random())
    with pytest.raises(RuntimeError):
        _ = server.base_url
    with pytest.raises(RuntimeError):
        _ = server.external_id_url
    server.start()
    assert server.tls is not None
    urls = [f"{server.base_url}/_fake/health", f"{server.external_id_url}/_fake/health"]
    assert urls[0] != urls[1]
    for url in urls:
        assert requests.get(url, verify=str(server.tls.ca_pem), timeout=10).ok
    server.stop()
    for url in urls:
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, verify=False, timeout=2)
    server.stop()  # idempotent


def test_both_listeners_share_one_state(tmp_path: Path) -> None:
    tls = make_tls(tmp_path)
    config = FakeConfig.random()
    with FakeIdentityServer(config, tls=tls) as server:
        verify = str(tls.bundle_pem)
        requests.get(
            f"{server.external_id_url}/{config.external_tenant_id}/v2.0/.well-known/openid-configuration",
            verify=verify,
            timeout=10,
        )
        counters = requests.get(f"{server.base_url}/_fake/counters", verify=verify, timeout=10).json()
        assert counters["external_metadata"] == 1 and counters["metadata"] == 0


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "devstack.fake_identity", *args]


def test_cli_prints_ready_line_serves_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    config = FakeConfig.random()
    config.write_json(tmp_path / "fake.json")
    command = _cli(
        "--host", "127.0.0.1", "--port", "0", "--config", str(tmp_path / "fake.json"),
        "--certfile", str(tls.cert_pem), "--keyfile", str(tls.key_pem),
    )  # fmt: skip
    with subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        assert process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            ready = READY.match(lines.get(timeout=30))
            assert ready, "no ready line"
            external_ready = EXTERNAL_ID_READY.match(lines.get(timeout=10))
            assert external_ready, "no External ID line after the ready line"
            base, external = f"https://localhost:{ready.group(1)}", external_ready.group(1)
            assert external != base
            verify = str(tls.bundle_pem)
            assert requests.get(f"{base}/_fake/health", verify=verify, timeout=10).ok
            metadata = requests.get(
                f"{base}/{config.b2c_tenant_id}/v2.0/.well-known/openid-configuration",
                verify=verify,
                timeout=10,
            ).json()
            assert metadata["token_endpoint"].startswith(f"{base}/{config.b2c_tenant_id}/")
            ciam = requests.get(
                f"{external}/{config.external_domain}/v2.0/.well-known/openid-configuration",
                verify=verify,
                timeout=10,
            ).json()
            tenant_id = config.external_tenant_id
            assert ciam["issuer"] == f"https://{tenant_id}.ciamlogin.com/{tenant_id}/v2.0"
            assert ciam["token_endpoint"] == f"{external}/{tenant_id}/oauth2/v2.0/token"

            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            reader.join(timeout=5)


def test_cli_rejects_a_bad_config(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"b2c_tenant_name": "x"}')
    tls = make_tls(tmp_path)
    result = subprocess.run(
        _cli(
            "--config",
            str(tmp_path / "bad.json"),
            "--certfile",
            str(tls.cert_pem),
            "--keyfile",
            str(tls.key_pem),
        ),  # fmt: skip
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "cannot start" in result.stderr and result.stdout == ""
