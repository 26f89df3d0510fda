"""The app's code as App Service's build automation expects it: `app/` plus `requirements.txt`.

App Service does not run Python apps from a package mount (its build automation cannot write to
a read-only wwwroot), so the zip is deployed with OneDeploy (infra/deploy.py) and Oryx builds
the virtual environment on the site from `requirements.txt`: the locked runtime dependencies,
with hashes, exported from `uv.lock`. `write_zip()` writes the same bytes for the same inputs,
and `digest` names them, so an unchanged package never redeploys.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO_ROOT / "infra" / ".build"
REQUIREMENTS = "requirements.txt"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".DS_Store")

Runner = Callable[[Sequence[str], Path], None]


def _run(argv: Sequence[str], cwd: Path) -> None:
    """Run a build command, failing the deployment with its output when it fails."""
    result = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise pulumi.RunError(
            f"building the app package failed: {' '.join(argv)}\n{result.stdout}\n{result.stderr}"
        )


@dataclass(frozen=True)
class BuiltPackage:
    """The deployable archive, a digest of its content, and its zip once written."""

    archive: pulumi.Archive
    digest: str
    zip_path: Path | None = None


def find_uv(repo_root: Path) -> str:
    """uv from $UV, the PATH, or where `make deps` bootstraps it (.tools/bin/uv)."""
    for candidate in (os.environ.get("UV"), shutil.which("uv"), repo_root / ".tools" / "bin" / "uv"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise pulumi.RunError("building the app package needs uv: run `make deps` (or install uv) and try again")


def export_command(requirements: Path, uv: str = "uv") -> list[str]:
    """The app's runtime dependencies only: no infra, no dev group, hashes kept."""
    return [
        uv,
        "export",
        "--frozen",
        "--no-default-groups",
        "--no-emit-project",
        "--format",
        "requirements-txt",
        "--output-file",
        str(requirements),
    ]


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_app_package(
    *,
    python_version: str,
    repo_root: Path = REPO_ROOT,
    build_dir: Path | None = None,
    run: Runner = _run,
    uv: str | None = None,
) -> BuiltPackage:
    """Stage `app/` and the exported `requirements.txt`, and write their zip.

    Runs on every preview/up; `uv export --frozen` only reads `uv.lock`. The Python version is
    part of the digest: Oryx builds the virtual environment for it, so a new one redeploys.
    """
    build_dir = build_dir or repo_root / "infra" / ".build"
    uv = uv or find_uv(repo_root)
    build_dir.mkdir(parents=True, exist_ok=True)

    staged_app = build_dir / "app"
    shutil.rmtree(staged_app, ignore_errors=True)
    shutil.copytree(repo_root / "app", staged_app, ignore=_IGNORED)

    requirements = build_dir / REQUIREMENTS
    run(export_command(requirements, uv), repo_root)

    digest = hashlib.sha256(
        f"{_tree_digest(staged_app)}\0{hashlib.sha256(requirements.read_bytes()).hexdigest()}"
        f"\0{python_version}".encode()
    ).hexdigest()[:16]
    archive = pulumi.AssetArchive(
        {
            "app": pulumi.FileArchive(str(staged_app)),
            REQUIREMENTS: pulumi.FileAsset(str(requirements)),
        }
    )
    package = BuiltPackage(archive=archive, digest=digest)
    zip_path = build_dir / f"photoshare-{digest}.zip"
    for stale in build_dir.glob("photoshare-*.zip"):
        if stale != zip_path:
            stale.unlink()
    return BuiltPackage(archive=archive, digest=digest, zip_path=write_zip(package, zip_path))


# Like Pulumi's own zip of an archive: a constant date (App Service cannot extract some without
# one), deflated, no directory entries, no `.pulumi` folders, symlinks to directories left out.
# The fastest compression level: the files inside are what matters, not the zip's size.
_ZIP_DATE = (1990, 1, 1, 0, 0, 0)


def write_zip(package: BuiltPackage, dest: Path) -> Path:
    """Write the archive as the zip OneDeploy receives, each directory archive under its name.

    The same inputs give the same bytes (sorted entries, constant dates), and the tests open
    exactly what the site unpacks without a deployment.
    """
    archive = package.archive
    if not isinstance(archive, pulumi.AssetArchive):
        raise TypeError(f"write_zip expects an AssetArchive, got {type(archive).__name__}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w") as zf:

        def add(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=1)

        for name, item in sorted(archive.assets.items()):
            if isinstance(item, pulumi.FileArchive):
                root = Path(item.path)
                files = []
                for folder, dirs, names in os.walk(root):
                    dirs[:] = [d for d in dirs if d != ".pulumi"]
                    files += [Path(folder, n) for n in names if n != ".pulumi"]
                for path in sorted(files, key=lambda p: p.relative_to(root).parts):
                    add(f"{name}/{path.relative_to(root).as_posix()}", path.read_bytes())
            elif isinstance(item, pulumi.FileAsset):
                add(name, Path(item.path).read_bytes())
            elif isinstance(item, pulumi.StringAsset):
                add(name, item.text.encode())
            else:
                raise TypeError(f"write_zip cannot write {type(item).__name__} {name!r}")
    return dest
