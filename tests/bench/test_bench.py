"""`python -m bench --quick` runs end to end and emits every figure, in the table and the JSON.

Timings are not checked (they are noisy, and tiny in quick mode); the full run is `make bench`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

FIGURES = {
    "upload_floor_noise": 1,
    "upload_floor_camera": 1,
    "upload_floor_camera_large": 1,
    "upload_floor_screenshot": 1,
    "upload_memory_small": 2,
    "upload_memory_large": 2,
    "gallery_latency_ratio": 3,
    "gallery_throughput_ratio": 4,
    "identity_tokens_graph_users": 5,
    "identity_graph_calls_graph_users": 5,
    "identity_tokens_claim_users": 5,
    "identity_graph_calls_claim_users": 5,
    "suite_seconds": 6,
    "session_check_p50_rise": 7,
    "crafted_worst_seconds": 8,
    "crafted_worst_peak": 8,
    "upload_link": 9,
    "upload_capacity": 10,
}
# The figures the benchmark holds to a target, with that target.
TARGETS = {
    "upload_floor_noise": ("≤ 1.2", "×"),
    "upload_floor_camera": ("≤ 1.2", "×"),
    "upload_floor_camera_large": ("≤ 1.2", "×"),
    "upload_floor_screenshot": ("≤ 1.2", "×"),
    "upload_link": ("≤ 1.05", "×"),
    "upload_capacity": ("≤ 1.3", "×"),
    "gallery_latency_ratio": ("≤ 2", "×"),
    "gallery_throughput_ratio": ("≥ 0.5", "×"),
    "session_check_p50_rise": ("≤ 1", "ms"),
    "crafted_worst_seconds": ("≤ 2", "s"),
    "crafted_worst_peak": ("≤ 250", "MB"),
}


def test_quick_run_emits_every_figure_in_the_table_and_the_json(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out), "--cache", str(tmp_path / "cache")],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    report = json.loads(out.read_text())
    assert report["mode"] == "quick"
    assert report["machine"]["cpus"] and report["machine"]["cpu_model"]
    figures = report["figures"]
    assert {key: f["measurement"] for key, f in figures.items()} == FIGURES
    for key, figure in figures.items():
        assert isinstance(figure["value"], int | float), key
        assert figure["beside"], f"{key} has nothing side by side"
        if figure["target"] is None:
            assert figure["pass"] is None, key
        else:
            assert isinstance(figure["pass"], bool), key
        assert figure["title"] in result.stdout, f"{key} missing from the printed table"
    assert str(out) in result.stdout

    # What holds at any size: one token per process, no Graph call when the ID token has the email.
    assert figures["identity_tokens_graph_users"]["value"] <= 1
    assert figures["identity_graph_calls_claim_users"]["value"] == 0

    for key, (target, unit) in TARGETS.items():
        assert (figures[key]["target"], figures[key]["unit"]) == (target, unit), key
    for key in (
        "upload_floor_noise",
        "upload_floor_camera",
        "upload_floor_camera_large",
        "upload_floor_screenshot",
    ):
        phases = figures[key]["beside"]
        assert 0 < phases["body read ms"] <= phases["stored ms"], key
        assert 0 < phases["checked ms"] <= phases["stored ms"] <= phases["app s"] * 1000, key
        assert phases["check cpu ms"] > 0 and phases["receive cpu ms"] > 0, key
    link = figures["upload_link"]["beside"]
    assert link["app s"] >= link["transfer alone s"] and link["direct s"] >= link["transfer alone s"]
    capacity = figures["upload_capacity"]["beside"]
    assert capacity["uploads"] == 2 and capacity["CPU-s per upload"] > 0 and capacity["check cpu ms"] > 0
    rise = figures["session_check_p50_rise"]["beside"]
    assert rise["every request queries p50 ms"] > 0 and rise["as shipped p50 ms"] > 0
    assert rise["check alone, uncached p50 ms"] > rise["check alone, cached p50 ms"]

    # Every crafted file is either accepted or refused with a message that names the limit.
    crafted = figures["crafted_worst_peak"]["detail"]
    assert crafted == figures["crafted_worst_seconds"]["detail"]
    assert any(not f["accepted"] for f in crafted.values())
    for name, outcome in crafted.items():
        assert outcome["code"] != "timeout", name
        if not outcome["accepted"]:
            assert outcome["code"] in {"too_many_pixels", "too_many_frames"}, name
            assert re.search(r"\d{1,3}(,\d{3})+", outcome["message"]), f"{name}: {outcome['message']}"
        assert outcome["message"] in result.stdout, name
