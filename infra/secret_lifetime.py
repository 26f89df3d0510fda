"""When the client secret the program creates lapses: N months after its creation, fixed then.

A date computed on every `pulumi up` ("12 months from now") would change each run and replace the
password each time; azuread's `end_date_relative` is deprecated; a time provider (Terraform's
time_offset) would be another plugin to download at `pulumi up`. `SecretEndDate` is a dynamic
resource instead: its create reads the clock once and keeps the date in the stack's state, and only
a change of `months` replaces it, with a new date that rotates the secret.

Pulumi pickles the provider with the program, so this module imports nothing from the rest of
`infra` (infra/config.py takes its limits from here).
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

# Entra allows a client secret at most 24 months and recommends less than 12 (MicrosoftDocs/
# entra-docs docs/identity-platform/how-to-add-credentials.md, "Add a client secret"); 24 months
# is taken as 730 days, so a span over a 29 February never passes it.
DEFAULT_MONTHS = 12
MAX_MONTHS = 24
MAX_DAYS = 730


class SecretLifetimeError(ValueError):
    """The requested lifetime is not one Entra accepts; the message names the limit."""


def check_months(months: Any) -> int:
    """`months` as a whole number from 1 to MAX_MONTHS, or SecretLifetimeError saying why not.

    Pulumi hands a provider numbers as floats (12.0): a whole float counts as the number.
    """
    whole = isinstance(months, int) or (isinstance(months, float) and months.is_integer())
    if isinstance(months, bool) or not whole:
        raise SecretLifetimeError(
            f"the client secret's lifetime must be a whole number of months, got {months!r}"
        )
    months = int(months)
    if not 1 <= months <= MAX_MONTHS:
        raise SecretLifetimeError(
            f"the client secret's lifetime must be 1 to {MAX_MONTHS} months (Entra lets a client "
            f"secret live at most {MAX_MONTHS} months), got {months}"
        )
    return months


def add_months(start: datetime.datetime, months: int) -> datetime.datetime:
    """The same day and time `months` later; the month's last day when it has no such day
    (31 January + 1 month → 28 or 29 February)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def end_date(created: datetime.datetime, months: int) -> datetime.datetime:
    """`months` after `created`, never more than MAX_DAYS days after it."""
    return min(add_months(created, check_months(months)), created + datetime.timedelta(days=MAX_DAYS))


def rfc3339(moment: datetime.datetime) -> str:
    """`2027-05-02T10:31:07Z`: whole seconds, UTC, as azuread's `end_date` takes it."""
    return moment.astimezone(datetime.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class SecretEndDateProvider(ResourceProvider):
    """Create computes the date from the clock; a new `months` replaces it; nothing else changes it."""

    serialize_as_secret_always = False

    def __init__(self, clock: Callable[[], datetime.datetime] = _utc_now) -> None:
        self.clock = clock

    def create(self, props: dict[str, Any]) -> CreateResult:
        months = check_months(props.get("months"))
        created = self.clock().astimezone(datetime.UTC).replace(microsecond=0)
        outs = {"months": months, "created": rfc3339(created), "end_date": rfc3339(end_date(created, months))}
        return CreateResult(id_=f"secret-end-date-{outs['created']}", outs=outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        if olds.get("months") == news.get("months"):
            return DiffResult(changes=False, replaces=[], delete_before_replace=False)
        # Create the new date first: the password it feeds is replaced before the old one goes.
        return DiffResult(changes=True, replaces=["months"], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], _news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=olds)  # diff replaces on every change; nothing updates in place

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


class SecretEndDate(pulumi.dynamic.Resource):
    """The moment a created client secret lapses: `months` after this resource's creation."""

    end_date: pulumi.Output[str]  # RFC 3339, UTC
    created: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        months: int = DEFAULT_MONTHS,
        opts: pulumi.ResourceOptions | None = None,
        provider: SecretEndDateProvider | None = None,
    ) -> None:
        check_months(months)  # refused at preview already, before anything is created
        super().__init__(
            provider or SecretEndDateProvider(),
            name,
            {"months": months, "created": None, "end_date": None},
            opts,
        )
