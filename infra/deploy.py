"""The app's zip deployed by `pulumi up` itself: OneDeploy on the site's SCM endpoint.

pulumi-azure-native has no zip-deploy resource (pulumi/pulumi-azure-native#3483), so `ZipDeploy`
is a dynamic resource: it POSTs the zip to `https://<site>.scm.azurewebsites.net/api/publish`
(`type=zip`) with a Microsoft Entra token of the deploying identity, the way the App Service
docs' Kudu API example does with basic authentication disabled, then polls the deployment until
Kudu reports success or failure; a failed build fails `pulumi up` with the build's log.

Pulumi pickles the provider with the program and unpickles it in a separate process, so this
module imports nothing from the rest of `infra` and opens no connection at import.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pulumi
import requests
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

# `az account get-access-token`'s default audience, which the docs' example sends to Kudu.
SCM_TOKEN_SCOPE = "https://management.azure.com/.default"  # noqa: S105 - a scope, not a secret
# Kudu's DeployStatus values.
PENDING, BUILDING, DEPLOYING, FAILED, SUCCESS = 0, 1, 2, 3, 4
STATUS_NAMES = {
    PENDING: "pending",
    BUILDING: "building",
    DEPLOYING: "deploying",
    FAILED: "failed",
    SUCCESS: "success",
}
# Oryx installs every dependency on the first build: minutes, not seconds.
DEFAULT_TIMEOUT_SECONDS = 1800.0
DEFAULT_POLL_SECONDS = 5.0
REQUEST_TIMEOUT_SECONDS = 300.0
# A property change that needs a new deployment; everything else is bookkeeping.
DEPLOYED_BY = ("scm_url", "digest", "zip_path")


class DeploymentFailed(Exception):
    """Kudu finished the deployment with a failure; the message carries its log."""


class TokenSource(Protocol):
    """azure-core's TokenCredential, as far as the deployment needs it."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


def default_credential() -> TokenSource:
    """The deploying identity: `az login`, environment variables, workload identity in CI."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


@dataclass
class KuduDeployment:
    """One ZIP deployment through OneDeploy, from upload to Kudu's final status."""

    scm_url: str
    credential: TokenSource
    verify: bool | str = True
    poll_seconds: float = DEFAULT_POLL_SECONDS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    sleep: Callable[[float], None] = time.sleep

    def _headers(self) -> dict[str, str]:
        # A fresh token per request: the first build can outlast a cached one.
        token = self.credential.get_token(SCM_TOKEN_SCOPE).token
        return {"Authorization": f"Bearer {token}"}

    def _get(self, session: requests.Session, url: str) -> requests.Response:
        response = session.get(
            url, headers=self._headers(), verify=self.verify, timeout=REQUEST_TIMEOUT_SECONDS
        )
        _raise_for(response, f"GET {url}")
        return response

    def run(self, zip_path: Path) -> dict[str, Any]:
        """Upload, wait, and return Kudu's final deployment record, or raise with the log."""
        with requests.Session() as session:
            # async: App Service's front end ends a request after about 230 s, a build takes longer.
            # clean: the zip's entries carry a constant date, and Kudu skips files whose date matches.
            deadline = time.monotonic() + self.timeout_seconds
            while True:
                response = session.post(
                    f"{self.scm_url}/api/publish",
                    params={"type": "zip", "async": "true", "clean": "true"},
                    data=zip_path.read_bytes(),
                    headers={**self._headers(), "Content-Type": "application/zip"},
                    verify=self.verify,
                    timeout=REQUEST_TIMEOUT_SECONDS,
                )
                # 409: Kudu runs one deployment at a time (another `pulumi up`, or a build still
                # going); this one waits its turn within the same deadline.
                if response.status_code != 409 or time.monotonic() >= deadline:
                    break
                self.sleep(self.poll_seconds)
            _raise_for(response, "uploading the package")
            status_url = response.headers.get("Location") or f"{self.scm_url}/api/deployments/latest"
            while True:
                record = self._get(session, status_url).json()
                status = record.get("status")
                if status == SUCCESS:
                    return dict(record)
                if status == FAILED:
                    raise DeploymentFailed(self._failure_message(session, record))
                if time.monotonic() >= deadline:
                    raise DeploymentFailed(
                        f"the deployment to {self.scm_url} was still {STATUS_NAMES.get(status, status)} "
                        f"after {self.timeout_seconds:.0f} s; see the site's Deployment Center log"
                    )
                self.sleep(self.poll_seconds)

    def _failure_message(self, session: requests.Session, record: Mapping[str, Any]) -> str:
        reason = record.get("status_text") or record.get("message") or ""
        lines = [f"the deployment to {self.scm_url} failed: {reason}"]
        log_url = record.get("log_url") or f"{self.scm_url}/api/deployments/{record.get('id')}/log"
        for entry in self._get(session, log_url).json():
            lines.append(f"  {entry.get('message', '')}")
            if entry.get("details_url"):
                lines += [
                    f"    {detail.get('message', '')}"
                    for detail in self._get(session, entry["details_url"]).json()
                ]
        return "\n".join(lines)


def _raise_for(response: requests.Response, what: str) -> None:
    if response.status_code in (401, 403):
        raise DeploymentFailed(
            f"{what}: the SCM endpoint answered {response.status_code}. The deploying identity needs "
            "Website Contributor (or Contributor) on the web app, and `az login` (or AZURE_* "
            "variables) must name it"
        )
    if response.status_code >= 400:
        raise DeploymentFailed(
            f"{what}: the SCM endpoint answered {response.status_code}: {response.text[:2000]}"
        )


class ZipDeployProvider(ResourceProvider):
    """Create and update deploy the zip; delete leaves the site's code to the site's deletion."""

    # It captures no secret (the token is fetched when it runs), so its state needs no encryption.
    serialize_as_secret_always = False

    def __init__(
        self,
        *,
        credential: Callable[[], TokenSource] = default_credential,
        verify: bool | str = True,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
    ) -> None:
        self.credential = credential
        self.verify = verify
        self.poll_seconds = poll_seconds

    def _deploy(self, props: dict[str, Any]) -> dict[str, Any]:
        deployment = KuduDeployment(
            scm_url=props["scm_url"],
            credential=self.credential(),
            verify=self.verify,
            poll_seconds=self.poll_seconds,
            timeout_seconds=float(props.get("timeout_seconds") or DEFAULT_TIMEOUT_SECONDS),
        )
        record = deployment.run(Path(props["zip_path"]))
        return {
            **props,
            "deployment_id": str(record.get("id", "")),
            "status_text": record.get("status_text") or "",
        }

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._deploy(props)
        return CreateResult(id_=f"{props['scm_url']}#{props['digest']}", outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [key for key in DEPLOYED_BY if olds.get(key) != news.get(key)]
        # A moved zip with the same digest holds the same bytes: no new deployment.
        if changed == ["zip_path"]:
            changed = []
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._deploy(news))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


@dataclass(kw_only=True)
class ZipDeployArgs:
    """Inputs of ZipDeploy: where to deploy, what, and the digest that decides redeploys."""

    scm_url: pulumi.Input[str]
    zip_path: str
    digest: str
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS


class ZipDeploy(pulumi.dynamic.Resource):
    """The package deployed to the site; a new digest is a new deployment."""

    deployment_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ZipDeployArgs,
        opts: pulumi.ResourceOptions | None = None,
        provider: ZipDeployProvider | None = None,
    ) -> None:
        super().__init__(
            provider or ZipDeployProvider(),
            name,
            {
                "scm_url": args.scm_url,
                "zip_path": args.zip_path,
                "digest": args.digest,
                "timeout_seconds": args.timeout_seconds,
                "deployment_id": None,
                "status_text": None,
            },
            opts,
        )


def scm_url(default_host_name: str) -> str:
    """`<app>.azurewebsites.net` → `https://<app>.scm.azurewebsites.net`, the site's Kudu."""
    app, _, domain = default_host_name.partition(".")
    return f"https://{app}.scm.{domain}"
