"""`make dev`'s program: it serves the app on the local stack, and Ctrl-C leaves nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
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


@pytest.mark.parametrize("platform", ["b2c", "external_id"])
def test_dev_serves_the_app_and_ctrl_c_stops_everything(tmp_path, platform):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AZURE_AD_B2C_", "EXTERNAL_ID_", "IDENTITY_"))
    }
    env["IDENTITY_PLATFORM"] = platform
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack", "--port", str(port), "--env-file", str(tmp_path / "none.env")],
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
        base_dir = re.search(r"app log: (\S+)/app\.log", output).group(1)
        assert processes_mentioning(base_dir), "the services should be running under the stack's folder"
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
    assert processes_mentioning(base_dir) == []
    assert port_is_free(port)
    assert not Path(base_dir).exists()
