"""`make dev`'s program: it serves the app on the local stack, and Ctrl-C leaves nothing."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.__main__ import _identity_settings
from devstack.appserver import PROJECT_ROOT
from devstack.process import free_port, port_is_free

REAL = {
    "AZURE_AD_B2C_TENANT_NAME": "tailspintoys",
    "AZURE_AD_B2C_TENANT_ID": "5f6e7d8c-1a2b-4c3d-9e8f-0a1b2c3d4e5f",
    "AZURE_AD_B2C_CLIENT_ID": "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9",
    "AZURE_AD_B2C_CLIENT_SECRET": "from-dotenv",
}


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args and str(os.getpid()) != cmdline.parent.name:
            found.append(f"{cmdline.parent.name}: {args}")
    return found


REAL_EXTERNAL = {
    "IDENTITY_PLATFORM": "external_id",
    "EXTERNAL_ID_TENANT_SUBDOMAIN": "tailspintoys",
    "EXTERNAL_ID_TENANT_ID": "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d",
    "EXTERNAL_ID_CLIENT_ID": "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9",
    "EXTERNAL_ID_CLIENT_SECRET": "from-dotenv",
}


@pytest.mark.parametrize(("platform", "real"), [("b2c", REAL), ("external_id", REAL_EXTERNAL)])
def test_real_tenant_settings_in_dotenv_replace_the_fake(tmp_path, monkeypatch, platform, real):
    for name in os.environ:
        if name.startswith(("AZURE_AD_B2C_", "EXTERNAL_ID_", "IDENTITY_PLATFORM")):
            monkeypatch.delenv(name)
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in real.items()) + "DATABASE_URL=postgresql://x/y\n")
    # Identity settings only: the local stack keeps its own database.
    assert _identity_settings(env_file) == (platform, real)
    first = next(iter(k for k in real if k != "IDENTITY_PLATFORM"))
    env_file.write_text(f"IDENTITY_PLATFORM={platform}\n{first}=tailspintoys\n")
    assert _identity_settings(env_file) == (platform, {})  # incomplete: the fake is used
    assert _identity_settings(tmp_path / "missing.env") == ("b2c", {})


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Where `make dev` keeps accounts and photos, reachable by the postgres user (pytest's
    base temp dir is 0700)."""
    parent = Path(tempfile.mkdtemp(prefix="photoshare-kept-"))
    parent.chmod(0o711)
    yield parent / "data"
    shutil.rmtree(parent)


@pytest.mark.parametrize("platform", ["b2c", "external_id"])
def test_dev_serves_the_app_and_ctrl_c_stops_everything(tmp_path, platform, data_dir):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AZURE_AD_B2C_", "EXTERNAL_ID_", "IDENTITY_"))
    }
    env["IDENTITY_PLATFORM"] = platform
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack",
            "--port",
            str(port),
            "--env-file",
            str(tmp_path / "none.env"),
            "--data-dir",
            str(data_dir),
        ],  # fmt: skip
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "Ctrl-C stops everything" in line or not line:
                break
        output = "".join(lines)
        assert f"photoshare is running at http://localhost:{port}" in output, output
        assert "using the fake " in output and "(no real tenant settings in none.env" in output, output
        base_dir = re.search(r"app log: (\S+)/app\.log", output).group(1)
        assert processes_mentioning(str(data_dir)), "PostgreSQL and Azurite should keep their data there"
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json()["status"] == "ready"
        login = requests.get(f"http://127.0.0.1:{port}/auth/login", allow_redirects=False, timeout=10)
        assert login.status_code == 302 and login.headers["Location"].startswith("https://localhost:")
        fake = re.search(r"fake (B2C|External ID)/Graph at (\S+):", output)
        assert fake and fake.group(1) == {"b2c": "B2C", "external_id": "External ID"}[platform], output
        assert login.headers["Location"].startswith(fake.group(2) + "/"), login.headers["Location"]
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert processes_mentioning(base_dir) == [] and processes_mentioning(str(data_dir)) == []
    assert port_is_free(port)
    assert not Path(base_dir).exists()
    assert (data_dir / "postgres" / "data" / "PG_VERSION").exists()
    assert (data_dir / "fake-identity.json").exists()


def run_dev(tmp_path: Path, *args: str, env_file: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """`make dev`'s program for a start that is refused before any service runs."""
    dotenv = tmp_path / ".env"
    dotenv.write_text(env_file)
    identity = ("AZURE_AD_B2C_", "EXTERNAL_ID_", "IDENTITY_")
    base = {k: v for k, v in os.environ.items() if not k.startswith(identity)}
    data = str(tmp_path / "d")
    return subprocess.run(
        [sys.executable, "-m", "devstack", "--env-file", str(dotenv), "--data-dir", data, *args],
        cwd=PROJECT_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_busy_port_is_named_with_the_way_out(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_dev(tmp_path, "--port", str(port))
    assert result.returncode == 2
    assert f"error: port {port} is already in use" in result.stderr
    assert f"PORT={port + 1} make dev" in result.stderr
    assert "Traceback" not in result.stderr and "gunicorn" not in result.stderr
    assert not (tmp_path / "d").exists()  # nothing started


def test_a_copied_sample_says_the_fake_is_used(tmp_path):
    """.env.sample as it is: placeholders and an empty secret. The fake runs, and says why."""
    sample = (PROJECT_ROOT / ".env.sample").read_text()
    with socket.socket() as busy:  # refused right after the note, before any service starts
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run_dev(tmp_path, "--port", str(busy.getsockname()[1]), env_file=sample)
    assert "note: AZURE_AD_B2C_CLIENT_SECRET not set, so the fake B2C tenant is used" in result.stderr
    assert "using the fake B2C tenant (some of its settings are missing in .env" in result.stdout


def test_placeholder_tenant_settings_are_refused_before_anything_starts(tmp_path):
    sample = (
        (PROJECT_ROOT / ".env.sample")
        .read_text()
        .replace("AZURE_AD_B2C_CLIENT_SECRET=", "AZURE_AD_B2C_CLIENT_SECRET=dummy")
    )
    result = run_dev(tmp_path, "--port", str(free_port()), env_file=sample)
    assert result.returncode == 2
    assert "error: the B2C settings in .env or the environment are not usable:" in result.stderr
    assert "AZURE_AD_B2C_TENANT_ID is still the sample's placeholder" in result.stderr
    assert "AZURE_AD_B2C_TENANT_NAME" in result.stderr  # contoso: the sample's tenant
    assert not (tmp_path / "d").exists()
