"""How `photoshare doctor` prints its results: one line per check for people, JSON for CI."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TextIO

from app.doctor import TITLES, CheckResult


def render_json(results: list[CheckResult]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False) + "\n"


def render_text(results: list[CheckResult], out: TextIO) -> str:
    """One line per check, ✓/✗/–, then the detail lines and the fix of every failure."""
    marks = {True: "✓", False: "✗", None: "–"}
    try:
        "✓✗–→".encode(getattr(out, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        marks = {True: "ok  ", False: "FAIL", None: "skip"}
    lines = []
    for number, r in enumerate(results, 1):
        first, *rest = r.detail.splitlines() or [""]
        if rest:  # several problems: one per line under the check
            first, rest = f"{len(rest) + 1} problems", [first, *rest]
        lines.append(f"{marks[r.ok]} {number}. {TITLES[r.name]}: {first}")
        lines.extend(f"     - {line}" for line in rest)
        if r.ok is False and r.fix:
            lines.append(f"     fix: {r.fix}")
    failed = sum(r.ok is False for r in results)
    passed = sum(r.ok is True for r in results)
    skipped = sum(r.ok is None for r in results)
    summary = f"{passed} passed, {failed} failed, {skipped} skipped"
    lines.append(f"photoshare doctor: {'all checks passed' if not failed else summary}")
    text = "\n".join(lines) + "\n"
    if marks[True] != "✓":
        text = text.replace("→", "->")
    return text
