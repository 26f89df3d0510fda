"""The package suite's story: infra builds the package, it is unzipped to a read-only wwwroot
and started the way App Service starts it, against the real services and the fake identity
server the integration suite uses (tests/conftest.py)."""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.appserver import Site
from devstack.fake_identity.server import FakeIdentityServer
from devstack.fake_identity.tls import TlsFiles
from devstack.stack import identity_env
from infra.package import REQUIREMENTS, build_app_package, write_zip
from tests.conftest import register_app
from tests.package.deployed import (
    VERSION,
    Deployment,
    Layout,
    build_venv,
    make_home,
    make_writable,
    readable_copy,
    runtime_interpreter,
    serve_package,
    site_settings,
    stack_config,
    unpack,
)
from tests.services import IMAGES_CONTAINER, Services

# As root the site drops to `nobody`, so the read-only mode of wwwroot binds it (root ignores it).
RUN_AS = "nobody" if os.geteuid() == 0 else None


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Build with infra's builder for this Python, write the zip, unpack it read-only, and build
    the virtual environment that runs it from the package's own requirements.

    The build dir is a fresh temp dir: every run exercises the whole build as a first `pulumi up`
    does, shares nothing with infra/.build, and uv's own cache keeps it to about a second.
    """
    if sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip("the package holds App Service's x86_64 Linux wheels, which cannot run here")
    # World-traversable, unlike pytest's temp root, so the site's user can reach wwwroot.
    site_dir = Path(tempfile.mkdtemp(prefix="photoshare-package-"))
    site_dir.chmod(0o755)
    try:
        interpreter = runtime_interpreter(RUN_AS)
        built = build_app_package(python_version=VERSION, build_dir=tmp_path_factory.mktemp("package-build"))
        zip_path = write_zip(built, site_dir / "package.zip")
        wwwroot = unpack(zip_path, site_dir / "wwwroot")
        python = build_venv(interpreter, wwwroot / REQUIREMENTS, site_dir / "antenv")
        home = make_home(site_dir / "home", RUN_AS)
        yield Deployment(
            built=built,
            zip_path=zip_path,
            site_dir=site_dir,
            layout=Layout(wwwroot=wwwroot, python=python, user=RUN_AS, home=home),
            python_version=VERSION,
        )
    finally:
        make_writable(site_dir)
        shutil.rmtree(site_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def trust_dir(deployment: Deployment) -> Path:
    """Files the site's user must read: the tests' CA (the platform's trust store stand-in)."""
    return deployment.site_dir / "trust"


@pytest.fixture(scope="session")
def site_env(
    deployment: Deployment, services: Services, identity: FakeIdentityServer, tls: TlsFiles, trust_dir: Path
) -> dict[str, str]:
    """The app settings infra would give the site, for the local services and the fake."""
    bundle = readable_copy(tls.bundle_pem, trust_dir, None)
    fake_settings = identity_env(identity, bundle)
    env = site_settings(
        stack_config(fake_settings, VERSION),
        resources={"storage_container": IMAGES_CONTAINER},
        vault={
            "b2c-client-secret": fake_settings["AZURE_AD_B2C_CLIENT_SECRET"],
            "database-url": services.database_url,
            "flask-secret-key": secrets.token_hex(32),
        },
        storage_connection_string=services.storage_connection_string,
    )
    env["REQUESTS_CA_BUNDLE"] = env["CURL_CA_BUNDLE"] = str(bundle)
    return env


@pytest.fixture(scope="session")
def packaged_site(
    deployment: Deployment,
    site_env: dict[str, str],
    identity: FakeIdentityServer,
    tls: TlsFiles,
    trust_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    """The package running from its wwwroot behind the TLS front end, for the whole session."""
    site = serve_package(
        deployment.layout,
        env=site_env,
        tls=tls,
        log_dir=tmp_path_factory.mktemp("packaged-site"),
        trust_dir=trust_dir,
    )
    register_app(identity, site.url)
    if site.proxy is None:
        warnings.warn("nginx not found: the package is served over gunicorn's own TLS", stacklevel=2)
    with site:
        yield site
