"""The deployment package boots and serves the whole flow, started as App Service starts it.

A module, template, static file, migration or requirement that the package misses (or an import
of something only the dev environment has, or a write to the read-only mount) fails here,
not after a `pulumi up`.
"""

from __future__ import annotations

import dataclasses
import json
import pwd
import shutil
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from devstack.appserver import Site
from devstack.fake_identity.client import FakeIdentityClient
from devstack.fake_identity.tls import TlsFiles
from devstack.process import ServiceError
from infra.package import REPO_ROOT, REQUIREMENTS
from tests.integration.client import AppClient, make_image
from tests.package.deployed import (
    Deployment,
    broken_copy,
    build_venv,
    error_lines,
    files_in,
    make_bare_venv,
    make_writable,
    package_problems,
    process_uid,
    run_python,
    runtime_interpreter,
    serve_package,
    writable_paths,
)
from tests.services import Services

pytestmark = pytest.mark.package


def test_the_zip_holds_the_app_and_its_requirements_and_nothing_else(deployment: Deployment) -> None:
    """What App Service's build installs from: `app/` and the locked runtime requirements, each
    pinned with its hashes (never the infra or dev groups)."""
    with zipfile.ZipFile(deployment.zip_path) as archive:
        names = set(archive.namelist())
        requirements = archive.read(REQUIREMENTS).decode()
    assert {n.split("/", 1)[0] for n in names} == {"app", REQUIREMENTS}
    source = {f"app/{n}" for n in files_in(REPO_ROOT / "app") if "__pycache__" not in n}
    assert {n for n in names if n.startswith("app/")} == source
    assert not [n for n in names if "__pycache__" in n]
    pinned = [line for line in requirements.splitlines() if line and not line.startswith((" ", "#"))]
    assert pinned and all("==" in line for line in pinned), pinned
    assert requirements.count("--hash=sha256:") >= len(pinned)
    assert not [line for line in pinned if line.startswith(("pulumi", "pytest", "ruff", "mypy"))]


def test_the_bare_interpreter_runs_only_the_packages_own_dependencies(
    deployment: Deployment, packaged_site: Site
) -> None:
    layout = deployment.layout
    path = packaged_site.env["PATH"]
    assert shutil.which("python", path=path) == str(layout.python), "the startup command's `python`"

    # Nothing but the package's environment provides the app's dependencies.
    bare_dir = deployment.site_dir / f"bare-{uuid.uuid4().hex}"
    bare_python = make_bare_venv(runtime_interpreter(layout.user), bare_dir)
    bare = run_python(bare_python, "import flask", env={"PATH": path}, user=layout.user, cwd=layout.wwwroot)
    assert bare.returncode != 0 and "No module named 'flask'" in bare.stderr, bare.stderr

    where = run_python(
        layout.python,
        "import json, sys, flask, gunicorn, psycopg, PIL.Image as image;"
        "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], 'prefix': sys.prefix,"
        " 'modules': [m.__file__ for m in (flask, gunicorn, psycopg, image.core)]}))",
        env={"PATH": path},
        user=layout.user,
        cwd=layout.wwwroot,
    )
    assert where.returncode == 0, where.stderr
    found = json.loads(where.stdout)
    assert found["version"] == deployment.python_version, "the wheels were chosen for another Python"
    assert Path(found["prefix"]) == layout.python.parent.parent
    modules = found["modules"]
    assert all(Path(m).is_relative_to(layout.python.parent.parent) for m in modules), modules


def test_the_site_runs_unprivileged_on_a_read_only_tree_and_logs_no_error(
    deployment: Deployment, packaged_site: Site
) -> None:
    assert packaged_site.pid is not None
    if deployment.layout.user is not None:
        assert process_uid(packaged_site.pid) == pwd.getpwnam(deployment.layout.user).pw_uid
    assert writable_paths(deployment.layout.wwwroot) == []
    assert error_lines(packaged_site.log()) == []


def test_the_package_serves_its_templates_static_files_and_migrations(
    packaged_site: Site, services: Services
) -> None:
    assert package_problems(packaged_site.url, services.database_url) == []


def test_a_new_user_signs_in_uploads_lists_downloads_and_deletes(
    packaged_site: Site,
    deployment: Deployment,
    fake: FakeIdentityClient,
    make_user: Callable[..., dict],
) -> None:
    client = AppClient(packaged_site.url, fake)
    assert client.base_url.startswith("https://")
    user = make_user()
    client.sign_in(user)
    assert client.get("/api/me/email").json() == {"email": user["email"], "source": "id_token"}

    image = make_image("JPEG", (64, 48))
    response = client.upload(("a.jpg", image, "image/jpeg"))
    assert response.status_code == 201, response.text
    [photo] = response.json()["photos"]
    assert [p["id"] for p in client.photos()["photos"]] == [photo["id"]]
    blob = requests.get(photo["url"], timeout=10)
    assert blob.status_code == 200
    assert blob.content == image

    assert client.delete(photo["id"]).status_code == 204
    assert client.photos()["photos"] == []
    assert client.get(f"/photos/{photo['id']}").status_code == 404
    # Nothing was written next to the code: no bytecode, no uploads, no logs.
    assert files_in(deployment.layout.wwwroot) == set(zipfile.ZipFile(deployment.zip_path).namelist())


def test_a_local_account_gets_its_email_from_graph(
    packaged_site: Site, fake: FakeIdentityClient, make_user: Callable[..., dict]
) -> None:
    client = AppClient(packaged_site.url, fake)
    user = make_user("local")
    client.sign_in(user)
    assert client.get("/api/me/email").json() == {"email": user["email"], "source": "graph"}
    assert fake.counters()["graph"] == 1


@pytest.mark.parametrize(
    ("removed", "caught_as"),
    [
        ("app/templates/landing.html", "template"),
        ("app/static/app.js", "static"),
        ("app/migrations/0001_initial.sql", "migrations"),
    ],
)
def test_a_package_missing_a_file_is_caught(
    removed: str,
    caught_as: str,
    deployment: Deployment,
    site_env: dict[str, str],
    fresh_database: str,
    tls: TlsFiles,
    trust_dir: Path,
    tmp_path: Path,
) -> None:
    broken = deployment.site_dir / f"broken-{uuid.uuid4().hex}"
    wwwroot = broken_copy(deployment.layout.wwwroot, broken, removed)
    layout = dataclasses.replace(deployment.layout, wwwroot=wwwroot)
    env = {**site_env, "DATABASE_URL": fresh_database}
    site = serve_package(layout, env=env, tls=tls, log_dir=tmp_path, trust_dir=trust_dir)
    try:
        with site:
            problems = package_problems(site.url, fresh_database)
    except ServiceError as exc:
        problems = [f"boot: {exc}"]
    finally:
        make_writable(wwwroot)
        shutil.rmtree(wwwroot)
    assert {p.split(":", 1)[0] for p in problems} == {caught_as}, problems


def test_a_requirement_missing_from_the_package_is_caught(
    deployment: Deployment, site_env: dict[str, str], tls: TlsFiles, trust_dir: Path, tmp_path: Path
) -> None:
    """The site's environment is built from the package's requirements only: one left out of
    them fails the start, as it would on App Service."""
    site_dir = deployment.site_dir / f"without-msal-{uuid.uuid4().hex}"
    site_dir.mkdir()
    kept = (deployment.layout.wwwroot / REQUIREMENTS).read_text().split("\n")
    start = next(i for i, line in enumerate(kept) if line.startswith("msal=="))
    end = next(i for i in range(start + 1, len(kept)) if not kept[i].startswith(" "))
    requirements = site_dir / REQUIREMENTS
    requirements.write_text("\n".join(kept[:start] + kept[end:]))
    python = build_venv(runtime_interpreter(deployment.layout.user), requirements, site_dir / "antenv")
    layout = dataclasses.replace(deployment.layout, python=python)
    site = serve_package(layout, env=site_env, tls=tls, log_dir=tmp_path, trust_dir=trust_dir)
    with pytest.raises(ServiceError, match="No module named 'msal'"), site:
        pass
