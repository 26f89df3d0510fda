"""Structured logs: one JSON object per line on stdout, each carrying the request's id.

App Service's front end gives every request an id (`X-ARR-LOG-ID`); the app logs it with each
line and echoes it in `X-Request-ID`, so a user's report, the app's lines and the platform's
logs meet on one value. Messages never carry secrets or query strings (auth codes live there).
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from flask import Flask, Response, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter
from werkzeug.datastructures import Headers

# The front end's id first: it is the one App Service's own logs carry.
REQUEST_ID_HEADERS = ("X-ARR-LOG-ID", "X-Request-ID")
RESPONSE_HEADER = "X-Request-ID"
# A client chooses what it sends: accept only a short token, never text to inject into logs.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
# The SDKs log every HTTP request at INFO; their warnings are what matters here.
QUIET_LOGGERS = ("azure", "msal", "urllib3")


class JsonLineFormatter(JsonFormatter):
    """time, level, logger, message, then the record's extras (request_id) as one JSON line."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"], rename_fields={"levelname": "level", "name": "logger"}
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        super().add_fields(log_data, record, message_dict)


class AccessLogFormatter(JsonLineFormatter):
    """gunicorn's access lines as JSON, with the fields of its atoms: `path` is `%(U)s`, the path
    without the query string (/auth/callback's query carries the one-time auth code)."""

    ATOMS = {
        "remote": "h",
        "method": "m",
        "path": "U",
        "status": "s",
        "bytes": "B",
        "duration_ms": "M",
        "request_id": "{x-request-id}o",
    }

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        atoms = record.args if isinstance(record.args, Mapping) else {}
        for field, atom in self.ATOMS.items():
            if atom in atoms:
                value = atoms[atom]
                # gunicorn escapes quotes for its text format; JSON escapes them itself.
                log_data[field] = value.replace('\\"', '"') if isinstance(value, str) else value
        if isinstance(log_data.get("status"), str) and log_data["status"].isdigit():
            log_data["status"] = int(log_data["status"])


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to records logged while a request is served; others pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id()
        if request_id is not None:
            record.request_id = request_id
        return True


class _AppHandler(logging.StreamHandler):
    """The handler `configure_logging` owns, so configuring again replaces it and only it."""


def configure_logging(*, level: int = logging.INFO, stream: IO[str] | None = None) -> logging.Handler:
    """Send the root logger (and so the app's loggers) to `stream` as JSON lines.

    A handler of its own rather than `basicConfig`, which does nothing once any handler is on
    the root logger (Azure Monitor adds one); other handlers are left where they are.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _AppHandler)]:
        root.removeHandler(old)
    handler = _AppHandler(stream or sys.stdout)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # a library's warnings.warn() as a JSON line too, not bare text
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def current_request_id() -> str | None:
    """The id of the request being served, None outside a request (start-up, worker threads)."""
    if not has_request_context():
        return None
    return g.get("request_id")


def request_id_from(headers: Headers | Mapping[str, str]) -> str:
    """The first sane id the front end or client sent, else a new one."""
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value and _SANE_REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def init_app(app: Flask) -> None:
    """Give each request an id before anything else runs, and echo it in the response."""

    @app.before_request
    def take_request_id() -> None:
        g.request_id = request_id_from(request.headers)

    @app.after_request
    def echo_request_id(response: Response) -> Response:
        request_id = current_request_id()
        if request_id is not None:
            response.headers[RESPONSE_HEADER] = request_id
        return response
