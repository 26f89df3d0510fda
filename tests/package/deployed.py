"""The deployment package laid out and started the way App Service runs it.

The zip infra deploys is unpacked to a read-only `wwwroot`, and a virtual environment is built
from its own `requirements.txt` (hashes required, wheels only) on a fresh interpreter, as App
Service's build automation (Oryx) builds `antenv`. The site starts from wwwroot with infra's own
startup command, with the app settings infra's plan gives, as an unprivileged user, behind the
TLS front end.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

from app.settings import SETTINGS_BY_NAME
from devstack.appserver import Site
from devstack.fake_identity.tls import TlsFiles
from devstack.process import LOOPBACK, ServiceError, free_port, run_as
from infra import appsettings
from infra.config import B2CConfig, DatabaseConfig, StackConfig, WebConfig
from infra.package import REPO_ROOT, REQUIREMENTS, BuiltPackage, find_uv
from infra.webapp import STARTUP_COMMAND

VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
START_TIMEOUT = 60.0


# --- the layout ----------------------------------------------------------------------------


def unpack(zip_path: Path, wwwroot: Path) -> Path:
    """Extract the zip and make the tree read-only, as the package mount is."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(wwwroot)
    make_read_only(wwwroot)
    return wwwroot


def make_read_only(tree: Path) -> None:
    """Readable by everyone, writable by no one (chmod -R a-w on a world-readable tree)."""
    for folder, _dirs, files in os.walk(tree):
        for path in (Path(folder, name) for name in files):
            if not path.is_symlink():  # a link's target keeps its own mode
                path.chmod(0o444)
        os.chmod(folder, 0o555)


def make_writable(tree: Path) -> None:
    """Undo `make_read_only` so the tree can be removed by a non-root owner."""
    for folder, _dirs, _files in os.walk(tree):
        os.chmod(folder, 0o755)


def files_in(tree: Path) -> set[str]:
    """Every file below `tree`, relative and in zip notation."""
    return {
        Path(folder, name).relative_to(tree).as_posix()
        for folder, _dirs, names in os.walk(tree)
        for name in names
    }


def writable_paths(tree: Path) -> list[str]:
    """Paths below `tree` (itself included) that have any write bit set."""
    found = []
    for folder, _dirs, names in os.walk(tree):
        for path in (Path(folder), *(Path(folder, n) for n in names)):
            if not path.is_symlink() and path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
                found.append(str(path))
    return found


# --- the interpreter -----------------------------------------------------------------------


def runtime_interpreter(user: str | None) -> Path:
    """A base interpreter of this Python's major.minor that `user` can run.

    This venv's base interpreter first; as root dropping to `nobody` it may sit under /root
    (pyenv), so the system's python{VERSION} of the same minor version is the fallback.
    """
    candidates = [
        getattr(sys, "_base_executable", sys.executable),
        shutil.which(f"python{VERSION}", path=os.defpath),
        f"/usr/local/bin/python{VERSION}",
        f"/usr/bin/python{VERSION}",
    ]
    tried = []
    for candidate in dict.fromkeys(c for c in candidates if c and Path(c).is_file()):
        try:
            result = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                env={"PATH": os.defpath},
                capture_output=True,
                text=True,
                check=False,
                **run_as(user),
            )
        except OSError as exc:  # e.g. under root's private home
            tried.append(f"{candidate}: {exc.strerror}")
            continue
        if result.returncode == 0 and result.stdout.strip() == VERSION:
            return Path(candidate)
        tried.append(f"{candidate}: {(result.stderr or result.stdout).strip()[-200:]}")
    raise ServiceError(
        f"no Python {VERSION} that {user or 'this user'} can run (tried: {'; '.join(tried)}); "
        f"install python{VERSION} system-wide or run the tests as a normal user"
    )


def make_bare_venv(interpreter: Path, dest: Path) -> Path:
    """A fresh venv without pip or any package: only the package's own dependencies can load."""
    subprocess.run(
        [str(interpreter), "-m", "venv", "--without-pip", str(dest)],
        env={"PATH": os.defpath},
        check=True,
        capture_output=True,
    )
    return dest / "bin" / "python"


def build_venv(interpreter: Path, requirements: Path, dest: Path) -> Path:
    """The site's virtual environment, from the package's own requirements only (with their
    hashes, binary wheels), as the build on App Service installs it. From uv's cache: the
    suites never reach an index."""
    python = make_bare_venv(interpreter, dest)
    argv = [
        find_uv(REPO_ROOT), "pip", "install", "--quiet", "--offline", "--python", str(python),
        "--require-hashes", "--no-deps", "--only-binary", ":all:", "--requirement", str(requirements),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise ServiceError(f"installing {requirements} failed: {(done.stderr or done.stdout)[-2000:]}")
    make_read_only(dest)
    return python


def run_python(
    python: Path, code: str, *, env: Mapping[str, str], user: str | None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run a snippet on the bare interpreter as the site's user."""
    return subprocess.run(
        [str(python), "-c", code],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        **run_as(user),
    )


# --- the app settings ----------------------------------------------------------------------


def stack_config(identity: Mapping[str, str], python_version: str) -> StackConfig:
    """A stack configured for the fake identity server, as `Pulumi.<stack>.yaml` would be."""

    def default(name: str) -> str:
        return SETTINGS_BY_NAME[name].default or ""

    return StackConfig(
        project="photoshare",
        stack="package",
        location="westeurope",
        owner=None,
        b2c=B2CConfig(
            tenant_name=identity["AZURE_AD_B2C_TENANT_NAME"],
            tenant_id=identity["AZURE_AD_B2C_TENANT_ID"],
            client_id=identity["AZURE_AD_B2C_CLIENT_ID"],
            client_secret=None,  # a Key Vault secret: filled in below like the vault would
            signup_signin_policy=default("AZURE_AD_B2C_SIGNUP_SIGNIN_POLICY"),
            password_reset_policy=default("AZURE_AD_B2C_PASSWORD_RESET_POLICY"),
            profile_edit_policy=default("AZURE_AD_B2C_PROFILE_EDIT_POLICY"),
            authority_host=identity["AZURE_AD_B2C_AUTHORITY_HOST"],
            create_app=False,
        ),
        database=DatabaseConfig(
            version="16",
            sku_name="Standard_B1ms",
            sku_tier="Burstable",
            storage_gb=32,
            backup_retention_days=7,
            high_availability=False,
            network="vnet",
            firewall_rules=(),
            app_ip_slots=16,
            # Locally the services take passwords: the app's side of Entra sign-in is
            # tests/integration/test_database_entra.py's.
            auth="password",
        ),
        web=WebConfig(sku="B1", capacity=1, python_version=python_version),
        storage_allow_shared_key=False,
        blob_soft_delete_days=7,
        monitoring=False,
        log_retention_days=30,
        authority_host=identity["AZURE_AUTHORITY_HOST"],
        graph_endpoint=identity["GRAPH_ENDPOINT"],
        vnet_address_space="10.20.0.0/16",
        app_settings={},
        environment="development",
    )


def site_settings(
    cfg: StackConfig,
    *,
    resources: Mapping[str, str],
    vault: Mapping[str, str],
    storage_connection_string: str,
) -> dict[str, str]:
    """The app settings infra's plan() gives the site, with local stand-ins for Azure's values.

    A resource output or Key Vault secret with no stand-in here fails, so a setting infra adds
    is either served locally or named. Azurite has no managed identity: the blob endpoint is
    replaced by its connection string.
    """
    sources = appsettings.plan(cfg)
    appsettings.check(sources)
    env: dict[str, str] = {}
    for name, source in sources.items():
        if isinstance(source, appsettings.Fixed) and source.value:
            env[name] = source.value
        elif isinstance(source, appsettings.FromResource):
            if source.key == "storage_account_url":
                env["AZURE_STORAGE_CONNECTION_STRING"] = storage_connection_string
            elif source.key in resources:
                env[name] = resources[source.key]
            else:
                raise KeyError(f"{name}: no local stand-in for resource output {source.key!r}")
        elif isinstance(source, appsettings.FromKeyVault):
            if source.secret_name not in vault:
                raise KeyError(f"{name}: no local stand-in for Key Vault secret {source.secret_name!r}")
            env[name] = vault[source.secret_name]
    return env


# --- the running site ----------------------------------------------------------------------


def startup_argv(port: int) -> list[str]:
    """infra's STARTUP_COMMAND as App Service runs it; only the bind address is changed, to a
    free loopback port (App Service binds 0.0.0.0:8000 inside its container)."""
    argv = shlex.split(STARTUP_COMMAND)
    binds = [i for i, arg in enumerate(argv) if arg.startswith("--bind=")]
    assert len(binds) == 1, f"STARTUP_COMMAND should bind once: {STARTUP_COMMAND}"
    argv[binds[0]] = f"--bind={LOOPBACK}:{port}"
    return argv


@dataclass
class Layout:
    """A package on disk: its wwwroot, the bare interpreter to run it with, the user to run it
    as, and that user's writable HOME (App Service's is /home)."""

    wwwroot: Path
    python: Path
    user: str | None
    home: Path


def make_home(path: Path, user: str | None) -> Path:
    """A writable HOME for the site's user: gunicorn keeps its control socket there."""
    path.mkdir(mode=0o700)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


@dataclass
class Deployment:
    """The built package, its zip, and the site directory it is unpacked in."""

    built: BuiltPackage
    zip_path: Path
    site_dir: Path
    layout: Layout
    python_version: str  # what the wheels were chosen for


def serve_package(
    layout: Layout, *, env: Mapping[str, str], tls: TlsFiles, log_dir: Path, trust_dir: Path
) -> Site:
    """The package served from its wwwroot behind nginx, as App Service's front end serves it:
    devstack's `Site` running infra's startup command from wwwroot, as the layout's user, with
    gunicorn's own configuration deciding workers and threads. Without nginx, gunicorn
    terminates TLS itself (`--certfile/--keyfile` added: the only other change to the command).
    """
    port = free_port()
    return Site(
        # `python` is found on PATH, as App Service's shell finds its own: here the bare venv's.
        env={**env, "PATH": f"{layout.python.parent}{os.pathsep}{os.defpath}", "HOME": str(layout.home)},
        tls=readable_tls(tls, trust_dir, layout.user),
        log_dir=log_dir,
        port=port,
        argv=startup_argv(port),
        cwd=layout.wwwroot,
        user=layout.user,
        workers=None,
        threads=None,
        name="packaged app",
        start_timeout=START_TIMEOUT,
    )


def readable_tls(tls: TlsFiles, folder: Path, user: str | None) -> TlsFiles:
    """The tests' TLS files, copied where the site's user can read them."""
    return TlsFiles(
        ca_pem=readable_copy(tls.ca_pem, folder, user),
        cert_pem=readable_copy(tls.cert_pem, folder, user),
        key_pem=readable_copy(tls.key_pem, folder, user),
        bundle_pem=readable_copy(tls.bundle_pem, folder, user),
    )


def readable_copy(source: Path, folder: Path, user: str | None) -> Path:
    """A copy the site's user can read (the tests' own files live in pytest's private temp dir)."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / source.name
    shutil.copyfile(source, dest)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(dest, entry.pw_uid, entry.pw_gid)
    dest.chmod(0o400 if user is not None else 0o644)
    return dest


def error_lines(log: str) -> list[str]:
    """Log lines at ERROR or above: JSON records by their level, other lines by their text."""
    found = []
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            if str(record.get("level", "")).upper() in ("ERROR", "CRITICAL"):
                found.append(line)
        elif re.search(r"\b(ERROR|CRITICAL)\b|^Traceback", line):
            found.append(line)
    return found


def process_uid(pid: int) -> int:
    """The real uid of a running process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Uid line for process {pid}")


# --- what a missing file breaks ------------------------------------------------------------


def package_problems(url: str, database_url: str) -> list[str]:
    """What a package missing a template, a static file or a migration breaks, one line each,
    prefixed by the kind of file; the repo's app/ says what should be there."""
    problems = []
    http = requests.Session()
    http.headers["Accept"] = "text/html"

    def get(path: str) -> requests.Response:
        return http.get(f"{url}{path}", timeout=30, allow_redirects=False)

    landing = get("/")
    if landing.status_code != 200 or "/auth/login" not in landing.text:
        problems.append(f"template: GET / (the landing page) answered {landing.status_code}")
    missing_page = get("/no-such-page")
    if missing_page.status_code != 404 or not missing_page.headers.get("Content-Type", "").startswith(
        "text/html"
    ):
        problems.append(f"template: the HTML 404 page answered {missing_page.status_code}")

    static_root = REPO_ROOT / "app" / "static"
    for source in sorted(p for p in static_root.rglob("*") if p.is_file()):
        name = source.relative_to(static_root).as_posix()
        served = get(f"/static/{name}")
        if served.status_code != 200 or served.content != source.read_bytes():
            problems.append(f"static: /static/{name} answered {served.status_code} or other bytes")

    ready = get("/readyz")
    if ready.status_code != 200:
        problems.append(f"ready: /readyz answered {ready.status_code}: {ready.text[:300]}")

    shipped = {p.stem for p in (REPO_ROOT / "app" / "migrations").glob("*.sql")}
    try:
        with psycopg.connect(database_url, connect_timeout=10) as conn:
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    except psycopg.Error as exc:
        applied = set()
        problems.append(f"migrations: no schema_migrations table ({type(exc).__name__})")
    if shipped - applied:
        problems.append(f"migrations: not applied at start: {sorted(shipped - applied)}")
    return problems


def broken_copy(wwwroot: Path, dest: Path, remove: str) -> Path:
    """A copy of the layout without one file or folder, the named path left out."""
    dest.mkdir(parents=True)
    shutil.copytree(wwwroot / "app", dest / "app")
    shutil.copyfile(wwwroot / REQUIREMENTS, dest / REQUIREMENTS)
    make_writable(dest)
    target = dest / remove
    assert target.exists() or target.is_symlink(), f"{remove} is not in the package"
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink()
    make_read_only(dest)
    return dest
