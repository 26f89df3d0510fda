"""The zip deployment `pulumi up` runs: the provider against a local Kudu, the resource under mocks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dill
import jwt
import pytest

from devstack.fake_identity.tls import TlsFiles
from devstack.fake_kudu import FakeKudu
from infra import deploy
from infra.deploy import DeploymentFailed, ZipDeployProvider, scm_url
from tests.infra.conftest import Deployment

pytestmark = pytest.mark.infra


@dataclass
class AccessToken:
    token: str
    expires_on: int


class StaticCredential:
    """A TokenCredential issuing a token for the requested scope's audience, or a fixed one."""

    def __init__(self, audience: str | None = None) -> None:
        self.audience = audience
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **_kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        audience = self.audience or scopes[0].removesuffix("/.default")
        expires = int(time.time()) + 3600
        claims = {"aud": audience, "exp": expires, "oid": "deployer-object"}
        return AccessToken(
            jwt.encode(claims, "test-signing-key-of-32-bytes-or-more", algorithm="HS256"), expires
        )


@pytest.fixture(scope="module")
def kudu(tls: TlsFiles) -> Iterator[FakeKudu]:
    with FakeKudu(tls=tls) as server:
        yield server


@pytest.fixture
def fresh_kudu(kudu: FakeKudu) -> FakeKudu:
    kudu.clear()
    return kudu


@pytest.fixture
def package_zip(tmp_path: Path) -> Path:
    path = tmp_path / "photoshare-0123456789abcdef.zip"
    path.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    return path


def provider(tls: TlsFiles, credential: StaticCredential | None = None) -> ZipDeployProvider:
    source = credential or StaticCredential()
    return ZipDeployProvider(credential=lambda: source, verify=str(tls.ca_pem), poll_seconds=0.001)


def props(kudu: FakeKudu, zip_path: Path, digest: str = "0123456789abcdef") -> dict[str, Any]:
    return {"scm_url": kudu.base_url, "zip_path": str(zip_path), "digest": digest, "timeout_seconds": 5}


def test_create_uploads_the_zip_with_a_management_token_and_waits_for_success(
    fresh_kudu: FakeKudu, package_zip: Path, tls: TlsFiles
) -> None:
    credential = StaticCredential()
    outs = provider(tls, credential).create(props(fresh_kudu, package_zip)).outs or {}
    (upload,) = fresh_kudu.uploads()
    assert upload.body == package_zip.read_bytes()
    assert upload.params == {"type": "zip", "async": "true", "clean": "true"}
    assert upload.content_type == "application/zip"
    assert set(credential.scopes) == {"https://management.azure.com/.default"}
    assert outs["deployment_id"] and outs["digest"] == "0123456789abcdef"
    assert fresh_kudu.refused == 0


def test_a_failed_build_fails_with_the_build_log(
    fresh_kudu: FakeKudu, package_zip: Path, tls: TlsFiles
) -> None:
    fresh_kudu.fail_next_build(
        ("Running pip install...", "ERROR: Could not find a version that satisfies the requirement flask==99")
    )
    with pytest.raises(DeploymentFailed) as failed:
        provider(tls).create(props(fresh_kudu, package_zip))
    message = str(failed.value)
    assert "Build failed" in message
    assert "ERROR: Could not find a version that satisfies the requirement flask==99" in message


def test_a_token_for_another_audience_is_refused_with_the_fix(
    fresh_kudu: FakeKudu, package_zip: Path, tls: TlsFiles
) -> None:
    with pytest.raises(DeploymentFailed, match="answered 401.*Website Contributor"):
        provider(tls, StaticCredential(audience="https://storage.azure.com")).create(
            props(fresh_kudu, package_zip)
        )
    assert fresh_kudu.refused == 1 and not fresh_kudu.uploads()


def test_a_deployment_still_building_at_the_deadline_fails(
    fresh_kudu: FakeKudu, package_zip: Path, tls: TlsFiles
) -> None:
    deployment = deploy.KuduDeployment(
        scm_url=fresh_kudu.base_url,
        credential=StaticCredential(),
        verify=str(tls.ca_pem),
        poll_seconds=0,
        timeout_seconds=0,
    )
    with pytest.raises(DeploymentFailed, match="still pending"):
        deployment.run(package_zip)


def test_a_deployment_in_progress_is_waited_for(
    fresh_kudu: FakeKudu, package_zip: Path, tls: TlsFiles
) -> None:
    """Kudu answers 409 while another deployment runs (a second `pulumi up`, a build still
    going): the upload waits its turn, then deploys."""

    def deployment(timeout: float) -> deploy.KuduDeployment:
        return deploy.KuduDeployment(
            scm_url=fresh_kudu.base_url,
            credential=StaticCredential(),
            verify=str(tls.ca_pem),
            poll_seconds=0,
            timeout_seconds=timeout,
        )

    with pytest.raises(DeploymentFailed, match="still pending"):
        deployment(0).run(package_zip)  # leaves one in progress
    record = deployment(5).run(package_zip)
    assert record["status"] == deploy.SUCCESS
    assert fresh_kudu.conflicts >= 1
    assert len(fresh_kudu.uploads()) == 2


def test_only_a_new_digest_or_site_redeploys(fresh_kudu: FakeKudu, package_zip: Path, tls: TlsFiles) -> None:
    zip_deploy = provider(tls)
    olds = zip_deploy.create(props(fresh_kudu, package_zip)).outs
    assert olds is not None
    assert not zip_deploy.diff("id", olds, props(fresh_kudu, package_zip)).changes
    moved = props(fresh_kudu, package_zip.with_name("elsewhere.zip"))
    assert not zip_deploy.diff("id", olds, moved).changes, "the same digest is the same bytes"
    new_code = props(fresh_kudu, package_zip, digest="fedcba9876543210")
    assert zip_deploy.diff("id", olds, new_code).changes
    assert zip_deploy.diff("id", olds, {**olds, "scm_url": "https://other.scm.azurewebsites.net"}).changes
    assert not zip_deploy.diff("id", olds, new_code).replaces, "a redeployment, never a replacement"
    zip_deploy.update("id", olds, new_code)
    assert len(fresh_kudu.uploads()) == 2


def test_the_provider_survives_pulumis_pickling() -> None:
    """Pulumi serializes the provider with dill and loads it in its own process."""
    restored = dill.loads(dill.dumps(ZipDeployProvider(), recurse=True))
    assert isinstance(restored, ZipDeployProvider) and restored.credential is deploy.default_credential
    source = Path(deploy.__file__).read_text()
    assert "from infra" not in source and "import infra" not in source


def test_the_scm_host_is_the_sites_with_scm_inserted() -> None:
    assert (
        scm_url("app-photoshare-dev-1a2b.azurewebsites.net")
        == "https://app-photoshare-dev-1a2b.scm.azurewebsites.net"
    )


# --- the program, under mocks ------------------------------------------------------------------

CODE = "pulumi-python:dynamic:Resource"


def code_of(deployment: Deployment) -> Any:
    found = [r for r in deployment.resources if r.typ == CODE and r.name == "web-code"]
    assert len(found) == 1, [r.name for r in deployment.resources if r.typ == CODE]
    return found[0]


def test_the_site_builds_from_the_zip_instead_of_mounting_it(default: Deployment) -> None:
    settings = default.app_settings
    assert settings["SCM_DO_BUILD_DURING_DEPLOYMENT"] == "true"
    assert not {k for k in settings if k.startswith("WEBSITE_RUN_FROM_PACKAGE")}
    assert "PYTHONPATH" not in settings


def test_the_code_is_deployed_to_the_sites_scm_endpoint_after_basic_auth_is_off(default: Deployment) -> None:
    code = code_of(default)
    site = default.one("azure-native:web:WebApp")
    assert default.depends_on(code, site)
    assert default.depends_on(code, default.named("web-scm-basic-auth"))
    assert default.depends_on(code, default.named("web-ftp-basic-auth"))
    inputs = code.plain
    assert inputs["scm_url"] == scm_url(f"{site.plain['name']}.azurewebsites.net")
    assert inputs["digest"] == "0123456789abcdef"
    assert Path(inputs["zip_path"]).name == "photoshare-0123456789abcdef.zip"


def test_a_new_package_digest_changes_the_deployments_inputs(deploy: Callable[..., Deployment]) -> None:
    from tests.infra.conftest import tiny_package

    def changed(cfg: Any) -> Any:
        package = tiny_package(cfg)
        return type(package)(archive=package.archive, digest="fedcba9876543210")

    assert code_of(deploy(packager=changed)).plain["digest"] == "fedcba9876543210"
