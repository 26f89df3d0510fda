"""Azurite (blob service only) as a local process, from the npm package pinned in package.json."""

from __future__ import annotations

import http.client
import os
import shutil
from pathlib import Path

from devstack.process import LOOPBACK, LocalService, ManagedProcess, ServiceError, port_accepts

PROJECT_ROOT = Path(__file__).resolve().parents[1]

ACCOUNT_NAME = "devstoreaccount1"
# Public, documented by Microsoft for the storage emulator: not a secret.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

START_TIMEOUT = 30.0


class Azurite(LocalService):
    """Azurite blob endpoint on a loopback port, in memory, stopped and restartable on that port.

    `stop()` loses the data (in-memory); `start()` brings an empty service back on the same port,
    which is what the recovery tests want.
    """

    label = "Azurite"
    log_name = "azurite.log"

    def __init__(
        self,
        *,
        port: int = 0,
        node_modules: Path | None = None,
        log_dir: Path | None = None,
        start_timeout: float = START_TIMEOUT,
        data_dir: Path | None = None,
    ) -> None:
        super().__init__(
            port=port, base_dir=log_dir, temp_prefix="photoshare-azurite-", start_timeout=start_timeout
        )
        self._node_modules = node_modules or PROJECT_ROOT / "node_modules"
        self._argv_head: list[str] = []
        # Blobs kept on disk there (across starts), or in memory only.
        self.data_dir = data_dir

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

    # -- the service -------------------------------------------------------------------------
    def _prepare(self) -> None:
        script = self._node_modules / ".bin" / "azurite-blob"
        if not script.exists():
            raise ServiceError(f"Azurite is not installed ({script} missing): run `npm ci` in {PROJECT_ROOT}")
        node = shutil.which("node")
        if node is None:
            raise ServiceError("Node.js is not on PATH: install Node 20+ to run Azurite locally")
        self._argv_head = [node, str(script.resolve())]

    def _launch(self) -> ManagedProcess:
        workspace = self.base_dir / "workspace"  # cwd: anything Azurite writes stays out of the repo
        workspace.mkdir(parents=True, exist_ok=True)
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            *self._argv_head,
            "--blobHost", LOOPBACK,
            "--blobPort", str(self.port),
            *(("--location", str(self.data_dir)) if self.data_dir else ("--inMemoryPersistence",)),
            "--skipApiVersionCheck",  # the SDK may be newer than the emulator
            "--disableProductStyleUrl",  # account from the path, never from the host name
            "--disableTelemetry",  # no network beyond loopback
            "--loose",
            "--silent",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("AZURITE_")}
        return ManagedProcess(
            argv,
            name=f"Azurite on port {self.port}",
            log_path=self.log_path,
            env=env,
            cwd=workspace,
        )

    def _ready(self) -> bool:
        """The port accepts and an HTTP request gets any HTTP response."""
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
