"""Why PostgreSQL or Blob Storage failed: an outage (retry later) or the app's configuration
(a missing role, a wrong key), which no retry fixes and which must not be reported as an outage.

    ServiceError
    ├── ServiceUnavailable       DatabaseUnavailable, StorageUnavailable (app/db.py, app/storage.py)
    └── ConfigurationError       DatabaseConfigurationError, StorageConfigurationError
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import ClassVar, TypeVar


class ServiceError(Exception):
    """A backing service failed. `code` and `message` are safe to show anyone; `detail` (the
    service's own words, which may name hosts and roles) is for the log only."""

    code: str
    messages: ClassVar[Mapping[str, str]]  # code → the sentence users see: one catalogue per store

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        if code is not None:
            self.code = code
        if self.code not in self.messages:
            raise ValueError(f"{type(self).__name__} has no message for code {self.code!r}")
        self.detail = " ".join(detail.split())  # one log line

    @property
    def message(self) -> str:
        return self.messages[self.code]

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class ServiceUnavailable(ServiceError):
    """The service did not answer (refused, timed out, 5xx): it may answer again by itself."""


class ConfigurationError(ServiceError):
    """The service answered and refused the app as configured: someone has to fix a setting,
    a role or a grant."""


E = TypeVar("E", bound=Exception)


@contextlib.contextmanager
def raised_as_causes(library_error: type[E], classify: Callable[[E], ServiceError | None]) -> Iterator[None]:
    """Re-raise a client library's errors as what they mean (`classify`); an error it does not
    recognise (a bug, not the service's state) passes unchanged."""
    try:
        yield
    except library_error as exc:
        cause = classify(exc)
        if cause is None:
            raise
        raise cause from exc
