"""The deployment package: app code plus the locked requirements App Service builds from."""

from __future__ import annotations

import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pulumi
import pytest

from infra.package import REPO_ROOT, REQUIREMENTS, build_app_package, export_command, find_uv

pytestmark = pytest.mark.infra


class FakeUv:
    """Plays `uv export` by writing what it would write."""

    def __init__(self, requirements: str = "flask==3.1.3 --hash=sha256:abc\n") -> None:
        self.requirements = requirements
        self.commands: list[list[str]] = []

    def __call__(self, argv: Sequence[str], cwd: Path) -> None:
        argv = list(argv)
        self.commands.append(argv)
        assert argv[:2] == ["uv", "export"], f"the package needs no other command: {argv}"
        Path(argv[argv.index("--output-file") + 1]).write_text(self.requirements)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "app" / "__pycache__").mkdir(parents=True)
    (tmp_path / "app" / "__init__.py").write_text("def create_app(): ...\n")
    (tmp_path / "app" / "templates").mkdir()
    (tmp_path / "app" / "templates" / "index.html").write_text("<html></html>")
    (tmp_path / "app" / "__pycache__" / "settings.cpython-311.pyc").write_bytes(b"\0")
    return tmp_path


def build(repo: Path, uv: FakeUv, python_version: str = "3.11", build_dir: str = ".build"):
    return build_app_package(
        python_version=python_version, repo_root=repo, build_dir=repo / build_dir, run=uv, uv="uv"
    )


def test_package_holds_the_app_and_its_requirements(repo: Path) -> None:
    built = build(repo, FakeUv())
    assert isinstance(built.archive, pulumi.AssetArchive)
    assert set(built.archive.assets) == {"app", REQUIREMENTS}
    assert built.zip_path is not None and built.zip_path.name == f"photoshare-{built.digest}.zip"
    names = zipfile.ZipFile(built.zip_path).namelist()
    assert sorted(names) == ["app/__init__.py", "app/templates/index.html", REQUIREMENTS]
    assert zipfile.ZipFile(built.zip_path).read(REQUIREMENTS) == b"flask==3.1.3 --hash=sha256:abc\n"


def test_only_the_locked_runtime_dependencies_are_exported(repo: Path) -> None:
    uv = FakeUv()
    build(repo, uv)
    (export,) = uv.commands
    assert "--no-default-groups" in export and "--frozen" in export and "--no-emit-project" in export
    assert "--no-hashes" not in export


def test_the_same_inputs_give_the_same_zip_and_digest(repo: Path) -> None:
    first = build(repo, FakeUv())
    assert first.zip_path is not None
    first_bytes = first.zip_path.read_bytes()
    (repo / "app" / "__init__.py").touch()  # a new mtime, the same content
    again = build(repo, FakeUv(), build_dir=".build-again")
    assert again.digest == first.digest
    assert again.zip_path is not None and again.zip_path.read_bytes() == first_bytes


@pytest.mark.parametrize(
    "change",
    ["code", "requirements", "python"],
)
def test_a_change_of_code_requirements_or_python_changes_the_digest(repo: Path, change: str) -> None:
    before = build(repo, FakeUv())
    uv = FakeUv()
    python_version = "3.11"
    if change == "code":
        (repo / "app" / "views.py").write_text("# new\n")
    elif change == "requirements":
        uv.requirements += "pillow==12.0.0 --hash=sha256:def\n"
    else:
        python_version = "3.12"
    after = build(repo, uv, python_version=python_version)
    assert before.digest != after.digest and len(after.digest) == 16
    assert [p.name for p in (repo / ".build").glob("photoshare-*.zip")] == [f"photoshare-{after.digest}.zip"]


def test_uv_is_found_where_make_deps_puts_it(tmp_path: Path, monkeypatch) -> None:
    fake = tmp_path / ".tools" / "bin" / "uv"
    fake.parent.mkdir(parents=True)
    fake.write_text("")
    monkeypatch.delenv("UV", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_uv(tmp_path) == str(fake)
    fake.unlink()
    with pytest.raises(pulumi.RunError, match="make deps"):
        find_uv(tmp_path)


def test_the_real_export_leaves_out_infra_and_dev_dependencies(tmp_path: Path) -> None:
    """`uv export --frozen` only reads uv.lock: no network, so the real command runs here."""
    try:
        uv = find_uv(REPO_ROOT)
    except pulumi.RunError:
        pytest.skip("uv is not installed")
    requirements = tmp_path / "requirements.txt"
    subprocess.run(export_command(requirements, uv), cwd=REPO_ROOT, check=True, capture_output=True)
    pinned = {
        line.split("==")[0].lower()
        for line in requirements.read_text().splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    }
    assert {"flask", "gunicorn", "azure-storage-blob", "psycopg"} <= pinned
    assert not pinned & {"pulumi", "pulumi-azure-native", "pytest", "playwright", "testcontainers"}
    assert "--hash=sha256:" in requirements.read_text(), "Oryx's pip install checks the lock's hashes"
