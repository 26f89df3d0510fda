"""The file Pulumi actually runs (`main: infra/`) imports the program and exports its outputs."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest

from infra import program
from tests.infra.conftest import BASE_CONFIG, RecordingMocks, tiny_package

pytestmark = pytest.mark.infra

REPO = Path(__file__).resolve().parents[2]


def test_pulumi_yaml_points_at_the_program() -> None:
    project = (REPO / "Pulumi.yaml").read_text()
    assert "name: photoshare" in project
    assert "main: infra/" in project
    assert (REPO / "infra" / "__main__.py").exists()


def test_the_entry_point_exports_the_documented_outputs(monkeypatch) -> None:
    exported: dict[str, Any] = {}
    monkeypatch.setattr(program, "default_packager", tiny_package)
    monkeypatch.setattr(pulumi, "export", lambda name, value: exported.__setitem__(name, value))
    monkeypatch.setattr(sys, "path", list(sys.path))  # the entry point rearranges it
    pulumi.runtime.set_mocks(
        RecordingMocks("11111111-2222-4333-8444-555555555555"),
        project="photoshare",
        stack="dev",
        preview=False,
    )
    pulumi.runtime.set_all_config(BASE_CONFIG, ["photoshare:b2cClientSecret"])

    @pulumi.runtime.test
    def run_entry_point() -> None:
        # What Pulumi's Python language host does with `main: infra/`.
        runpy.run_path(str(REPO / "infra"), run_name="__main__")

    run_entry_point()
    assert {
        "siteUrl",
        "redirectUri",
        "postLogoutRedirectUri",
        "storageAccountName",
        "postgresServerFqdn",
        "resourceGroupName",
    } <= set(exported)
    assert str(REPO / "infra") not in sys.path
