"""A wait between creating role assignments and the first thing that relies on them.

Azure Resource Manager caches role assignments: a new one can take up to 10 minutes to take
effect (Troubleshoot Azure RBAC, "Role assignment changes are not being detected"). The site's
first start resolves its Key Vault references with the platform identity; an assignment not
yet seen there leaves them unresolved (app/settings.py then names that cause, and the site's
restart heals it). `Propagation` waits on `pulumi up` once per new
set of assignments, so a first start usually finds them in place.

Pulumi pickles the provider with the program, so this module imports nothing from the rest of
`infra`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

# Most assignments are seen within a minute or two; the documented worst case is 10.
DEFAULT_SECONDS = 120.0


class PropagationProvider(ResourceProvider):
    """Create (and a change of the assignments it follows) sleeps; nothing else does."""

    serialize_as_secret_always = False

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self.sleep = sleep

    def create(self, props: dict[str, Any]) -> CreateResult:
        self.sleep(float(props["seconds"]))
        return CreateResult(id_="propagation", outs=props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = sorted(olds.get("after") or []) != sorted(news.get("after") or [])
        return DiffResult(changes=changed, replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        self.sleep(float(news["seconds"]))
        return UpdateResult(outs=news)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class Propagation(pulumi.dynamic.Resource):
    """Waits `seconds` once the role assignments named by `after` (their ids) exist."""

    def __init__(
        self,
        name: str,
        *,
        after: Sequence[pulumi.Input[str]],
        seconds: float = DEFAULT_SECONDS,
        opts: pulumi.ResourceOptions | None = None,
        provider: PropagationProvider | None = None,
    ) -> None:
        super().__init__(
            provider or PropagationProvider(), name, {"after": list(after), "seconds": seconds}, opts
        )
