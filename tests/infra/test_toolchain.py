"""Pulumi finds the uv that `Pulumi.yaml` names, on the PATH the READMEs' deploy steps produce."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
READMES = {
    "README.md": "## Deploy to Azure",
    "infra/README.md": "## Deploy your own stack",
}


def deploy_section(readme: str, heading: str) -> str:
    text = (ROOT / readme).read_text()
    start = text.index(heading + "\n")
    following = text.find("\n## ", start + len(heading))
    return text[start : following if following != -1 else None]


def test_pulumi_runs_the_program_with_uv() -> None:
    assert re.search(r"^\s+toolchain: uv$", (ROOT / "Pulumi.yaml").read_text(), re.MULTILINE)


@pytest.mark.parametrize(("readme", "heading"), READMES.items())
def test_the_deploy_steps_put_an_executable_uv_on_path(readme: str, heading: str) -> None:
    exports = re.findall(r"^\s*export PATH=.*$", deploy_section(readme, heading), re.MULTILINE)
    assert exports, f"{readme} ({heading}) never sets PATH before `pulumi` runs"
    # The steps' own lines, run by a shell from the repository root, as a reader runs them.
    script = "\n".join(line.strip() for line in exports) + '\nprintf %s "$PATH"'
    path = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, check=True
    ).stdout
    uv = shutil.which("uv", path=path)  # the lookup Pulumi makes
    assert uv is not None, f"no uv on the PATH {readme} produces; run `make deps` first"
    assert os.access(uv, os.X_OK)
    version = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("uv ")


def test_make_deps_installs_uv_only_where_the_steps_look() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)" in makefile
    for readme, heading in READMES.items():
        assert 'export PATH="$PWD/.tools/bin:$PATH"' in deploy_section(readme, heading), readme
