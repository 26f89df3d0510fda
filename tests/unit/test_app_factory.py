"""Building the app connects to nothing: `create_app` takes its clients or builds them from the
settings, and the services are reached on first use. So `flask --app app routes` runs with
nothing listening, and /readyz names each service as down rather than the app failing to start."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from app import InvalidSettings, create_app
from app.db import Database
from app.settings import Settings, SettingsError
from app.storage import BlobStore
from devstack.appserver import PROJECT_ROOT
from devstack.azurite import ACCOUNT_KEY, ACCOUNT_NAME
from devstack.process import LOOPBACK, free_port

TENANT_ID = "5f6e7d8c-1a2b-4c3d-9e8f-0a1b2c3d4e5f"
CLIENT_ID = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"


def offline_environment(port: int | None = None, **overrides: str) -> dict[str, str]:
    """A complete production configuration whose every service is one loopback port, by default
    one nothing listens on: whatever the app tries to reach is refused at once, and nothing
    leaves the host."""
    host = f"{LOOPBACK}:{port or free_port()}"
    env = {
        "APP_ENV": "production",
        "SECRET_KEY": "k" * 64,
        "AZURE_AD_B2C_TENANT_NAME": "tailspintoys",
        "AZURE_AD_B2C_TENANT_ID": TENANT_ID,
        "AZURE_AD_B2C_CLIENT_ID": CLIENT_ID,
        "AZURE_AD_B2C_CLIENT_SECRET": "not-a-real-secret",
        "AZURE_AD_B2C_AUTHORITY_HOST": host,
        "AZURE_AUTHORITY_HOST": host,
        "GRAPH_ENDPOINT": f"https://{host}",
        "AZURE_STORAGE_CONNECTION_STRING": (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://{host}/{ACCOUNT_NAME};"
        ),
        "DATABASE_URL": f"postgresql://photoshare@{host}/photoshare",
    }
    env.update(overrides)
    return env


def bare_environment(**settings: str) -> dict[str, str]:
    """What a subprocess needs to run Python, and none of this process's settings; Flask's CLI
    is told not to read a developer's .env."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    return {**{k: v for k, v in os.environ.items() if k in keep}, "FLASK_SKIP_DOTENV": "1", **settings}


def test_flask_routes_lists_the_routes_with_nothing_listening() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "routes"],
        env=bare_environment(**offline_environment()),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 15  # importing the app; no connection waits for a timeout
    rules = {line.split()[-1] for line in result.stdout.splitlines()[2:] if line.strip()}
    assert {
        "/",
        "/api/photos",
        "/photos",
        "/photos/<photo_id>",
        "/readyz",
        "/healthz",
        "/auth/login",
    } <= rules


def test_flask_routes_without_settings_names_them_without_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "routes"],
        env=bare_environment(),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Error: Invalid configuration:" in result.stderr
    assert "DATABASE_URL is required" in result.stderr


def test_invalid_settings_are_still_a_settings_error() -> None:
    """What create_app raises for a bad environment is caught as the SettingsError it is."""
    assert issubclass(InvalidSettings, SettingsError)


# The app is imported and built in a process whose audit hook records every socket connect and
# name lookup made from Python (https://docs.python.org/3/library/audit_events.html); libpq
# connects from C, so every service also points at a listening port whose backlog shows any
# connection made at all.
_BUILD_AND_COUNT = """
import json, sys
attempts = []
sys.addaudithook(
    lambda event, args: attempts.append([event, repr(args)[:200]])
    if event.startswith(("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"))
    else None
)
from app import create_app
app = create_app()
print(json.dumps({"attempts": attempts, "rules": len(list(app.url_map.iter_rules()))}))
"""


def test_importing_and_building_the_app_connects_to_nothing() -> None:
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(16)
        listener.setblocking(False)
        result = subprocess.run(
            [sys.executable, "-c", _BUILD_AND_COUNT],
            env=bare_environment(**offline_environment(listener.getsockname()[1])),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        built = json.loads(result.stdout.splitlines()[-1])
        assert built["attempts"] == []
        assert built["rules"] > 10
        with pytest.raises(BlockingIOError):  # nothing in the backlog: no connection was made
            listener.accept()


def test_with_nothing_listening_the_app_is_alive_and_names_each_service_down() -> None:
    settings = Settings.from_env(offline_environment())
    db = Database(url=settings.database_url, connect_timeout=1)
    app = create_app(settings, db=db, blobs=BlobStore.from_settings(settings))
    client = app.test_client()

    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json is not None
    assert ready.json["error"] == "not_ready"
    assert ready.json["checks"] == {"database": "down", "storage": "down"}
    assert app.extensions["db"] is db  # the client given, not one built from the settings
