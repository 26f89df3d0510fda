"""How `photoshare doctor` prints its results: one line per check for people, JSON for CI."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TextIO

from app.doctor import TITLES, CheckResult


def render_json(results: list[CheckResult]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False) + "\n"


def render_text(results: list[CheckResult], out: TextIO) -> str:
    """One line per check, ✓/!/✗/–, then the detail lines and the fix of every failure and
    warning (for a skipped check with a fix, how to enable it)."""
    marks: dict[bool | None | str, str] = {True: "✓", False: "✗", None: "–", "warning": "!"}
    try:
        "✓✗–→".encode(getattr(out, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        marks = {True: "ok  ", False: "FAIL", None: "skip", "warning": "warn"}
    lines = []
    for number, r in enumerate(results, 1):
        first, *rest = r.detail.splitlines() or [""]
        if rest:  # several problems: one per line under the check
            first, rest = f"{len(rest) + 1} problems", [first, *rest]
        lines.append(f"{marks['warning' if r.warning else r.ok]} {number}. {TITLES[r.name]}: {first}")
        lines.extend(f"     - {line}" for line in rest)
        if r.fix and (r.ok is False or r.warning):
            lines.append(f"     fix: {r.fix}")
        elif r.fix and r.ok is None:
            lines.append(f"     to enable: {r.fix}")
    failed = sum(r.ok is False for r in results)
    passed = sum(r.ok is True for r in results)
    skipped = sum(r.ok is None for r in results)
    warned = sum(r.warning for r in results)
    warnings = f", {warned} warning{'' if warned == 1 else 's'}" if warned else ""
    summary = f"{passed} passed, {failed} failed, {skipped} skipped{warnings}"
    lines.append(f"photoshare doctor: {f'all checks passed{warnings}' if not failed else summary}")
    text = "\n".join(lines) + "\n"
    if marks[True] != "✓":
        text = text.replace("→", "->")
    return text
