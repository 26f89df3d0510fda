"""The deployment package: app code plus Linux wheels, built without touching the network here."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pulumi
import pytest

from infra.package import (
    DEPENDENCY_DIR,
    PLATFORM,
    REPO_ROOT,
    build_app_package,
    export_command,
    find_uv,
    install_command,
)

pytestmark = pytest.mark.infra


class FakeUv:
    """Plays `uv export` and `uv pip install --target` by writing what they would write."""

    def __init__(self, requirements: str = "flask==3.1.3 --hash=sha256:abc\n") -> None:
        self.requirements = requirements
        self.commands: list[list[str]] = []

    def __call__(self, argv: Sequence[str], cwd: Path) -> None:
        argv = list(argv)
        self.commands.append(argv)
        if argv[:2] == ["uv", "export"]:
            Path(argv[argv.index("--output-file") + 1]).write_text(self.requirements)
        elif argv[:3] == ["uv", "pip", "install"]:
            target = Path(argv[argv.index("--target") + 1])
            (target / "flask").mkdir(parents=True)
            (target / "flask" / "__init__.py").write_text("")
            (target / "bin").mkdir()
            (target / "bin" / "flask").write_text("#!/home/builder/.venv/bin/python\n")

    @property
    def installs(self) -> int:
        return sum(1 for c in self.commands if c[:3] == ["uv", "pip", "install"])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "app" / "__pycache__").mkdir(parents=True)
    (tmp_path / "app" / "__init__.py").write_text("def create_app(): ...\n")
    (tmp_path / "app" / "templates").mkdir()
    (tmp_path / "app" / "templates" / "index.html").write_text("<html></html>")
    (tmp_path / "app" / "__pycache__" / "settings.cpython-311.pyc").write_bytes(b"\0")
    return tmp_path


def test_package_holds_the_app_and_linux_dependencies(repo: Path) -> None:
    uv = FakeUv()
    built = build_app_package(
        python_version="3.11", repo_root=repo, build_dir=repo / ".build", run=uv, uv="uv"
    )
    assert isinstance(built.archive, pulumi.AssetArchive)
    assert set(built.archive.assets) == {"app", DEPENDENCY_DIR}
    app_archive = built.archive.assets["app"]
    assert isinstance(app_archive, pulumi.FileArchive)
    staged = Path(app_archive.path)
    assert (staged / "__init__.py").exists() and (staged / "templates" / "index.html").exists()
    assert not (staged / "__pycache__").exists()
    deps_archive = built.archive.assets[DEPENDENCY_DIR]
    assert isinstance(deps_archive, pulumi.FileArchive)
    deps = Path(deps_archive.path)
    assert (deps / "flask" / "__init__.py").exists()
    assert not (deps / "bin").exists(), "console scripts point at the build machine's Python"


def test_only_runtime_dependencies_for_app_services_platform_are_installed(repo: Path) -> None:
    uv = FakeUv()
    build_app_package(python_version="3.12", repo_root=repo, build_dir=repo / ".build", run=uv, uv="uv")
    export, install = uv.commands
    assert "--no-default-groups" in export and "--frozen" in export and "--no-emit-project" in export
    assert install[install.index("--python-platform") + 1] == PLATFORM
    assert install[install.index("--python-version") + 1] == "3.12"
    assert install[install.index("--only-binary") + 1] == ":all:"
    assert "--require-hashes" in install


def test_dependencies_are_cached_until_the_lock_or_python_changes(repo: Path) -> None:
    uv = FakeUv()
    first = build_app_package(
        python_version="3.11", repo_root=repo, build_dir=repo / ".build", run=uv, uv="uv"
    )
    again = build_app_package(
        python_version="3.11", repo_root=repo, build_dir=repo / ".build", run=uv, uv="uv"
    )
    assert uv.installs == 1 and again.digest == first.digest
    build_app_package(python_version="3.12", repo_root=repo, build_dir=repo / ".build", run=uv, uv="uv")
    assert uv.installs == 2
    uv.requirements += "pillow==12.0.0 --hash=sha256:def\n"
    build_app_package(python_version="3.12", repo_root=repo, build_dir=repo / ".build", run=uv, uv="uv")
    assert uv.installs == 3
    assert len(list((repo / ".build").glob("deps-*"))) == 1


def test_a_code_change_changes_the_digest_that_names_the_blob(repo: Path) -> None:
    uv = FakeUv()
    before = build_app_package(
        python_version="3.11", repo_root=repo, build_dir=repo / ".build", run=uv, uv="uv"
    )
    (repo / "app" / "views.py").write_text("# new\n")
    after = build_app_package(
        python_version="3.11", repo_root=repo, build_dir=repo / ".build", run=uv, uv="uv"
    )
    assert before.digest != after.digest
    assert len(after.digest) == 16


def test_install_command_targets_the_package_directory() -> None:
    argv = install_command(Path("req.txt"), Path("out"), "3.11")
    assert argv[:3] == ["uv", "pip", "install"]
    assert argv[argv.index("--target") + 1] == "out"


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
