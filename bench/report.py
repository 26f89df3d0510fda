"""Figures, their targets, the printed table and the JSON file: one record feeds both, so the
table and the JSON can never disagree."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Target:
    """`value <op> limit`; op is one of ≤, ≥, =."""

    op: str
    limit: float

    def met(self, value: float) -> bool:
        if self.op == "≤":
            return value <= self.limit
        if self.op == "≥":
            return value >= self.limit
        return value == self.limit

    def __str__(self) -> str:
        return f"{self.op} {self.limit:g}"


@dataclass
class Figure:
    """One measured number, what it is compared with (`beside`), and its target if any."""

    number: int  # the measurement (1-8) it belongs to
    key: str
    title: str
    value: float
    unit: str
    target: Target | None = None
    beside: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)  # the JSON only, not the table

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.target.met(self.value)

    def as_json(self) -> dict[str, Any]:
        return {
            "measurement": self.number,
            "title": self.title,
            "value": self.value,
            "unit": self.unit,
            "target": str(self.target) if self.target else None,
            "pass": self.passed,
            "beside": self.beside,
            "note": self.note,
            **({"detail": self.detail} if self.detail else {}),
        }


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def table(figures: list[Figure]) -> str:
    """A plain-text table, one line per figure, with the side-by-side numbers after it."""
    rows = [("#", "figure", "value", "target", "result", "side by side")]
    for f in figures:
        result = {True: "PASS", False: "FAIL", None: "info"}[f.passed]
        beside = ", ".join(f"{k} {fmt(v)}" for k, v in f.beside.items())
        rows.append(
            (
                str(f.number),
                f.title,
                f"{fmt(f.value)} {f.unit}".strip(),
                str(f.target) if f.target else "—",
                result,
                beside,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 12)
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Where the figures came from: they mean little without it."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def write_json(path: Path, figures: list[Figure], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {**meta, "figures": {f.key: f.as_json() for f in figures}}
    path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
