"""Measurement 6: wall time of the integration suite, run as `make test` would run it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping

from bench.report import Figure
from devstack.appserver import PROJECT_ROOT

_SUMMARY = re.compile(r"^=* ?(\d+ (?:passed|failed|errors?|skipped).*?) in [\d.]+s", re.MULTILINE)


class SuiteRun:
    """pytest in a subprocess with the caller's original environment.

    Started apart from `result()` so that quick mode can overlap it with the other measurements
    (its time is not read there). Stopping it sends SIGINT, so pytest's teardown stops the services
    it started, then SIGTERM (devstack's safety net), then SIGKILL.
    """

    def __init__(
        self, targets: tuple[str, ...], *, env: Mapping[str, str], timeout: float, quick: bool
    ) -> None:
        self.targets = targets
        self.env = dict(env)
        self.timeout = timeout
        self.quick = quick
        self._proc: subprocess.Popen[bytes] | None = None
        self._output = tempfile.TemporaryFile()  # noqa: SIM115  # a file, not a pipe: never fills up
        self._started = 0.0

    def start(self) -> None:
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *self.targets]
        self._started = time.perf_counter()
        self._proc = subprocess.Popen(  # noqa: S603  # our own interpreter and test paths
            argv, cwd=PROJECT_ROOT, env=self.env, stdout=self._output, stderr=subprocess.STDOUT
        )

    def result(self) -> list[Figure]:
        assert self._proc is not None, "start() first"
        remaining = self.timeout - (time.perf_counter() - self._started)
        try:
            self._proc.wait(timeout=max(1.0, remaining))
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(f"pytest {' '.join(self.targets)} ran past {self.timeout:.0f} s") from None
        elapsed = time.perf_counter() - self._started
        self._output.seek(0)
        output = self._output.read().decode(errors="replace")
        summary = _SUMMARY.findall(output)
        return [
            Figure(
                6,
                "suite_seconds",
                f"wall time of pytest {' '.join(self.targets)}"
                + (" (quick mode: a tiny subset, run alongside the rest)" if self.quick else ""),
                elapsed,
                "s",
                None,
                {
                    "exit code": self._proc.returncode,
                    "result": summary[-1] if summary else output.strip()[-200:],
                },
                note="reported, no target; the suite starts its own services (TEST_SERVICES=auto)",
            )
        ]

    def stop(self) -> None:
        """Idempotent: a finished run is left alone, a running one is stopped and reaped."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._output.close()
            return
        for stop in (lambda: proc.send_signal(signal.SIGINT), proc.terminate, proc.kill):
            stop()  # SIGINT first: pytest then runs its fixtures' teardown
            try:
                proc.wait(timeout=30)
                break
            except subprocess.TimeoutExpired:
                continue
        self._output.close()
