"""The created client secret's end date: fixed once at creation, N months ahead (default 12),
replaced only when N changes, unless an explicit photoshare:appSecretEndDate is configured."""

from __future__ import annotations

import base64
import datetime
from typing import Any

import dill
import pytest

from infra.secret_lifetime import (
    MAX_DAYS,
    SecretEndDateProvider,
    SecretLifetimeError,
    add_months,
    check_months,
    end_date,
)
from tests.infra.conftest import SECRET_CREATED, create_app, secret_end_date

pytestmark = pytest.mark.infra

PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
DYNAMIC = "pulumi-python:dynamic:Resource"


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def created(provider: SecretEndDateProvider, props: dict[str, Any]) -> dict[str, Any]:
    """What create stores in the stack's state."""
    outs = provider.create(props).outs
    assert outs is not None
    return outs


# --- The provider -------------------------------------------------------------------------------


def test_create_reads_the_clock_once_and_keeps_the_date() -> None:
    readings: list[datetime.datetime] = []

    def clock() -> datetime.datetime:
        readings.append(datetime.datetime(2026, 5, 2, 10, 31, 7, 123456, tzinfo=datetime.UTC))
        return readings[-1]

    provider = SecretEndDateProvider(clock=clock)
    result = provider.create({"months": 12.0, "created": None, "end_date": None})  # numbers arrive as floats
    assert result.outs == {
        "months": 12,
        "created": "2026-05-02T10:31:07Z",
        "end_date": "2027-05-02T10:31:07Z",
    }
    assert len(readings) == 1
    # A later `pulumi up` with the same months: no change, so the stored date stays.
    news = {"months": 12.0, "created": None, "end_date": None}
    assert provider.diff(result.id, result.outs, news).changes is False
    assert len(readings) == 1


def test_another_number_of_months_replaces_it_with_a_new_date() -> None:
    provider = SecretEndDateProvider(clock=lambda: SECRET_CREATED)
    olds = created(provider, {"months": 12})
    diff = provider.diff("id", olds, {"months": 6.0, "created": None, "end_date": None})
    assert diff.changes is True
    assert diff.replaces == ["months"]
    assert diff.delete_before_replace is False  # the new date (and password) first
    later = SecretEndDateProvider(clock=lambda: SECRET_CREATED + datetime.timedelta(days=40))
    assert created(later, {"months": 6})["end_date"] == "2026-11-10T09:15:42Z"  # 10 May + 6 months


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        ("2026-01-31T08:00:00Z", 1, "2026-02-28T08:00:00Z"),  # no 31 February: its last day
        ("2027-12-31T08:00:00Z", 2, "2028-02-29T08:00:00Z"),
        ("2026-11-15T08:00:00Z", 3, "2027-02-15T08:00:00Z"),  # across the year
        ("2026-03-31T09:15:42Z", 12, "2027-03-31T09:15:42Z"),
    ],
)
def test_months_are_calendar_months(start, months, expected) -> None:
    assert add_months(at(start), months) == at(expected)


def test_24_months_never_exceed_730_days() -> None:
    """Over a 29 February, 24 calendar months are 731 days."""
    start = at("2026-03-31T09:15:42Z")
    assert add_months(start, 24) - start == datetime.timedelta(days=731)
    assert end_date(start, 24) == start + datetime.timedelta(days=MAX_DAYS)
    assert end_date(at("2029-03-01T00:00:00Z"), 24) == at("2031-03-01T00:00:00Z")  # 730 days exactly


@pytest.mark.parametrize("months", [0, 25, -1, 1.5, "12", True, None])
def test_a_lifetime_entra_refuses_is_refused_naming_the_limit(months) -> None:
    with pytest.raises(SecretLifetimeError, match="whole number of months|1 to 24 months"):
        check_months(months)
    with pytest.raises(SecretLifetimeError):
        SecretEndDateProvider(clock=lambda: SECRET_CREATED).create({"months": months})


def test_the_limit_is_entras_24_months() -> None:
    assert check_months(24) == 24 and check_months(1.0) == 1
    with pytest.raises(SecretLifetimeError, match="at most 24 months"):
        check_months(25)


def test_delete_and_update_touch_nothing() -> None:
    provider = SecretEndDateProvider(clock=lambda: SECRET_CREATED)
    outs = created(provider, {"months": 12})
    assert provider.update("id", outs, {"months": 12}).outs == outs
    provider.delete("id", outs)  # nothing to delete: the password goes with its own resource


# --- Wiring, under mocks ------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["b2c", "external_id"])
def test_by_default_the_created_secret_lapses_12_months_after_its_creation(deploy, platform) -> None:
    deployment = deploy(create_app(platform), platform=platform)
    [lifetime] = [r for r in deployment.of_type(DYNAMIC) if r.name.endswith("-secret-end-date")]
    assert lifetime.plain["months"] == 12
    password = deployment.one(PASSWORD)
    assert password.plain["endDate"] == "2027-03-31T09:15:42Z"  # SECRET_CREATED + 12 months
    assert "endDateRelative" not in password.plain
    assert lifetime.urn in password.dependencies
    assert deployment.outputs["appSecretEndDate"] == "2027-03-31T09:15:42Z"
    assert "appSecretEndDate" not in deployment.secret_outputs


def test_app_secret_months_sets_the_lifetime(deploy) -> None:
    deployment = deploy({**create_app("b2c"), "photoshare:appSecretMonths": 24})
    assert deployment.one(PASSWORD).plain["endDate"] == "2028-03-30T09:15:42Z"  # 730 days, not 731
    deployment = deploy({**create_app("b2c"), "photoshare:appSecretMonths": 6})
    assert deployment.one(PASSWORD).plain["endDate"] == "2026-09-30T09:15:42Z"


def test_an_explicit_end_date_wins(deploy) -> None:
    end = secret_end_date(200)
    deployment = deploy(
        {**create_app("b2c"), "photoshare:appSecretEndDate": end, "photoshare:appSecretMonths": 3}
    )
    assert deployment.one(PASSWORD).plain["endDate"] == f"{end}T00:00:00Z"
    assert not [r for r in deployment.of_type(DYNAMIC) if r.name.endswith("-secret-end-date")]


def test_the_provider_the_program_ships_computes_from_the_real_clock(deploy) -> None:
    """What Pulumi stores in `__provider` unpickles, in another process, to a working provider."""
    deployment = deploy(create_app("b2c"))
    [lifetime] = [r for r in deployment.of_type(DYNAMIC) if r.name.endswith("-secret-end-date")]
    provider = dill.loads(base64.b64decode(lifetime.plain["__provider"]))
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    outs = provider.create({"months": 12.0}).outs
    after = datetime.datetime.now(datetime.UTC)
    assert before <= at(outs["created"]) <= after
    assert at(outs["end_date"]) == add_months(at(outs["created"]), 12)
