"""Azurite (blob service only) as a local process, from the npm package pinned in package.json."""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from devstack.process import LOOPBACK, ManagedProcess, ServiceError, free_port, port_accepts

PROJECT_ROOT = Path(__file__).resolve().parents[1]

ACCOUNT_NAME = "devstoreaccount1"
# Public, documented by Microsoft for the storage emulator: not a secret.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

START_TIMEOUT = 30.0
_PORT_ATTEMPTS = 3


class Azurite:
    """Azurite blob endpoint on a loopback port, in memory, stopped and restartable on that port.

    Usable as a context manager. `stop()` loses the data (in-memory); `start()` brings an empty
    service back on the same port, which is what the recovery tests want.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        node_modules: Path | None = None,
        log_dir: Path | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.port = port
        self._auto_port = port == 0
        self._node_modules = node_modules or PROJECT_ROOT / "node_modules"
        self._own_dir = log_dir is None
        self._dir = log_dir or Path(tempfile.mkdtemp(prefix="photoshare-azurite-"))
        self._start_timeout = start_timeout
        self._proc: ManagedProcess | None = None
        self.startup_seconds: float | None = None
        self._started_once = False
        atexit.register(self._cleanup_at_exit)

    # -- what clients need -------------------------------------------------------------------
    @property
    def blob_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self._require_port()}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.running() else None

    @property
    def log_path(self) -> Path:
        return self._dir / "azurite.log"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Azurite:
        """Start (idempotent) and wait until the blob endpoint answers HTTP."""
        if self._proc is not None and self._proc.running():
            return self
        argv_head = self._command()
        for attempt in range(_PORT_ATTEMPTS):
            # Only an auto-picked port nobody has been told about yet may change.
            may_move = self._auto_port and not self._started_once
            if self.port == 0 or (attempt > 0 and may_move):
                self.port = free_port()
            try:
                self._launch(argv_head)
                self._started_once = True
                return self
            except ServiceError as exc:
                # Lost the race for an auto-picked port: pick another one.
                if not (may_move and "EADDRINUSE" in str(exc)) or attempt == _PORT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the process group; idempotent. Data is lost (in-memory persistence)."""
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def destroy(self) -> None:
        """Stop and remove the scratch directory if we created it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)
        atexit.unregister(self._cleanup_at_exit)

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    # -- internals ---------------------------------------------------------------------------
    def _command(self) -> list[str]:
        script = self._node_modules / ".bin" / "azurite-blob"
        if not script.exists():
            raise ServiceError(f"Azurite is not installed ({script} missing): run `npm ci` in {PROJECT_ROOT}")
        node = shutil.which("node")
        if node is None:
            raise ServiceError("Node.js is not on PATH: install Node 20+ to run Azurite locally")
        return [node, str(script.resolve())]

    def _launch(self, argv_head: list[str]) -> None:
        workspace = self._dir / "workspace"  # cwd: anything Azurite writes stays out of the repo
        workspace.mkdir(parents=True, exist_ok=True)
        argv = [
            *argv_head,
            "--blobHost", LOOPBACK,
            "--blobPort", str(self.port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",  # the SDK may be newer than the emulator
            "--disableProductStyleUrl",  # account from the path, never from the host name
            "--disableTelemetry",  # no network beyond loopback
            "--loose",
            "--silent",
        ]  # fmt: skip
        self.log_path.write_text("")  # each start gets its own log, so errors show this run
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZURITE_")}
        self._proc = ManagedProcess(
            argv,
            name=f"Azurite on port {self.port}",
            log_path=self.log_path,
            env=env,
            cwd=workspace,
        )
        self.startup_seconds = self._proc.wait_ready(self._answers, timeout=self._start_timeout)

    def _answers(self) -> bool:
        """Readiness: the port accepts and an HTTP request gets any HTTP response."""
        if not port_accepts(self.port):
            return False
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=2)
        try:
            conn.request("GET", f"/{ACCOUNT_NAME}?comp=list")
            conn.getresponse().read()
            return True
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _cleanup_at_exit(self) -> None:
        with contextlib.suppress(Exception):  # best effort at interpreter exit
            self.destroy()

    def _require_port(self) -> int:
        if self.port == 0:
            raise ServiceError("Azurite has no port yet: call start() first")
        return self.port
