"""A local App Service SCM (Kudu) endpoint: what `pulumi up`'s zip deployment talks to.

`POST /api/publish?type=zip&async=true` takes the zip and answers 202 with a `Location` to poll;
`GET /api/deployments/latest` (or `/api/deployments/<id>`) reports Kudu's status numbers
(0 pending, 1 building, 2 deploying, 3 failed, 4 success), one step further on each poll;
`GET /api/deployments/<id>/log` and its entries' `details_url` give the build log. Every request
needs `Authorization: Bearer <token>` for the management audience, as Kudu with basic
authentication disabled does (the token's claims are checked, its signature is not). The
server keeps every upload and counts refusals; `fail_next_build(log)` scripts a failed build.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from werkzeug.wrappers import Request, Response

from .fake_identity.tls import TlsFiles
from .https_thread import HttpsThread

# The audiences Kudu accepts: Azure Resource Manager's, with and without the trailing slash.
MANAGEMENT_AUDIENCES = frozenset(
    {"https://management.azure.com", "https://management.azure.com/", "https://management.core.windows.net/"}
)
PENDING, BUILDING, DEPLOYING, FAILED, SUCCESS = 0, 1, 2, 3, 4
SUCCESS_LOG = ("Updating submodules.", "Running oryx build...", "Build completed successfully.")


@dataclass
class Upload:
    """One accepted POST: its query parameters and the zip's bytes."""

    params: dict[str, str]
    body: bytes
    content_type: str


@dataclass
class _Deployment:
    id: str
    steps: list[int]
    log: tuple[str, ...]
    polls: int = 0
    received: float = field(default_factory=time.time)

    @property
    def status(self) -> int:
        return self.steps[min(self.polls, len(self.steps) - 1)]


class FakeKudu(HttpsThread):
    """HTTPS on a free loopback port; `base_url` stands in for `https://<app>.scm.azurewebsites.net`."""

    def __init__(self, *, tls: TlsFiles, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(name="fake-kudu", host=host, port=port, ssl_context=tls.server_context())
        self.tls = tls
        self._lock = threading.Lock()
        self._uploads: list[Upload] = []
        self._deployments: dict[str, _Deployment] = {}
        self._latest: str | None = None
        self._next_failure: tuple[str, ...] | None = None
        self.refused = 0
        self.conflicts = 0  # uploads answered 409 while a deployment was in progress

    def wsgi_app(self) -> Any:
        return self._wsgi

    @property
    def base_url(self) -> str:
        self._require_started()
        return f"https://{self.host}:{self.port}"

    # --- switches and counters ------------------------------------------------------------------

    def fail_next_build(self, log: tuple[str, ...]) -> None:
        """The next upload's build fails after building, with these log lines."""
        with self._lock:
            self._next_failure = log

    def uploads(self) -> list[Upload]:
        with self._lock:
            return list(self._uploads)

    def clear(self) -> None:
        with self._lock:
            self._uploads.clear()
            self._deployments.clear()
            self._latest = None
            self._next_failure = None
            self.refused = 0
            self.conflicts = 0

    # --- the protocol ---------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        try:
            claims = jwt.decode(token, options={"verify_signature": False, "verify_aud": False})
        except jwt.PyJWTError:
            return False
        return claims.get("aud") in MANAGEMENT_AUDIENCES and float(claims.get("exp", 0)) > time.time()

    def _record(self, deployment: _Deployment) -> dict[str, Any]:
        status = deployment.status
        base = self.base_url
        return {
            "id": deployment.id,
            "status": status,
            "status_text": {FAILED: "Build failed", SUCCESS: ""}.get(status, "Building and deploying"),
            "complete": status in (FAILED, SUCCESS),
            "active": status == SUCCESS,
            "deployer": "OneDeploy",
            "received_time": deployment.received,
            "url": f"{base}/api/deployments/{deployment.id}",
            "log_url": f"{base}/api/deployments/{deployment.id}/log",
        }

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._route(request)
        return response(environ, start_response)

    def _route(self, request: Request) -> Response:
        if not self._authorized(request):
            with self._lock:
                self.refused += 1
            return Response("Unauthorized", status=401, headers={"WWW-Authenticate": "Bearer"})
        parts = [p for p in request.path.split("/") if p]
        if request.method == "POST" and parts == ["api", "publish"]:
            return self._publish(request)
        if request.method == "GET" and parts[:2] == ["api", "deployments"] and len(parts) >= 3:
            return self._deployment(parts[2:])
        return Response("Not Found", status=404)

    def _publish(self, request: Request) -> Response:
        if request.args.get("type") != "zip":
            return Response("type must be zip here", status=400)
        body = request.get_data()
        with self._lock:
            running = self._deployments.get(self._latest or "")
            if running is not None and running.status not in (FAILED, SUCCESS):
                # Kudu takes one deployment at a time; the one in progress moves on meanwhile.
                running.polls += 1
                self.conflicts += 1
                return Response(
                    "There is a deployment currently in progress. Please try again when it completes.",
                    status=409,
                )
            failure, self._next_failure = self._next_failure, None
            deployment = _Deployment(
                id=uuid.uuid4().hex,
                steps=[PENDING, BUILDING, FAILED] if failure else [PENDING, BUILDING, DEPLOYING, SUCCESS],
                log=failure if failure else SUCCESS_LOG,
            )
            self._uploads.append(Upload(dict(request.args), body, request.content_type or ""))
            self._deployments[deployment.id] = deployment
            self._latest = deployment.id
        if request.args.get("async") == "true":
            return Response(status=202, headers={"Location": f"{self.base_url}/api/deployments/latest"})
        return Response(status=200)

    def _deployment(self, rest: list[str]) -> Response:
        with self._lock:
            key = self._latest if rest[0] == "latest" else rest[0]
            deployment = self._deployments.get(key or "")
            if deployment is None:
                return Response("Not Found", status=404)
            if len(rest) == 1:
                record = self._record(deployment)
                deployment.polls += 1
                return _json(record)
        base = f"{self.base_url}/api/deployments/{deployment.id}/log"
        if rest[1:] == ["log"]:
            entries = [{"log_time": deployment.received, "id": "build", "message": "Oryx build", "type": 0}]
            entries[0]["details_url"] = f"{base}/build"
            return _json(entries)
        if rest[1:] == ["log", "build"]:
            return _json(
                [
                    {"log_time": deployment.received, "id": str(i), "message": line, "type": 0}
                    for i, line in enumerate(deployment.log)
                ]
            )
        return Response("Not Found", status=404)


def _json(value: Any) -> Response:
    return Response(json.dumps(value), status=200, content_type="application/json")
