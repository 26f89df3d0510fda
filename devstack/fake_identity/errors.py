"""Error bodies in the exact shapes Entra ID (External ID included), Azure AD B2C and Microsoft
Graph return.

Client code parses these (MSAL returns the Entra body as a dict; apps grep for AADSTS codes),
so the structure matters as much as the wording.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from flask import Response, jsonify


class Rejected(Exception):
    """Stop handling a request with a ready-made error response (server.py answers with it)."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def entra_description(
    code: int, message: str, *, trace_id: str = "", correlation_id: str = "", ts: str = ""
) -> str:
    """Entra's error_description: the AADSTS code and message, then trace, correlation, time."""
    return (
        f"AADSTS{code}: {message}\r\nTrace ID: {trace_id or uuid.uuid4()}\r\n"
        f"Correlation ID: {correlation_id or uuid.uuid4()}\r\nTimestamp: {ts or _timestamp()}"
    )


def entra_error(status: int, error: str, code: int, message: str) -> Response:
    """An Entra ID v2 token/discovery error: AADSTS code + trace, correlation and timestamp."""
    trace_id, correlation_id, ts = str(uuid.uuid4()), str(uuid.uuid4()), _timestamp()
    body = {
        "error": error,
        "error_description": entra_description(
            code, message, trace_id=trace_id, correlation_id=correlation_id, ts=ts
        ),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    response = jsonify(body)
    response.status_code = status
    return response


def b2c_description(code: str, message: str) -> str:
    """B2C appends a correlation id and timestamp to every error_description."""
    return f"{code}: {message}\r\nCorrelation ID: {uuid.uuid4()}\r\nTimestamp: {_timestamp()}\r\n"


def b2c_error(status: int, error: str, code: str, message: str) -> Response:
    response = jsonify({"error": error, "error_description": b2c_description(code, message)})
    response.status_code = status
    return response


def missing_parameter(service: Literal["b2c", "entra"], parameter: str) -> Response:
    """A token request without a required parameter, in the words of the service asked."""
    if service == "b2c":
        return b2c_error(
            400, "invalid_request", "AADB2C90083", f"The request is missing required parameter: {parameter}."
        )
    return entra_error(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{parameter}'.",
    )


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """A Microsoft Graph error: {"error": {"code", "message", "innerError"}}."""
    request_id = str(uuid.uuid4())
    body: dict[str, Any] = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": request_id,
            },
        }
    }
    response = jsonify(body)
    response.status_code = status
    response.headers["request-id"] = request_id
    response.headers["client-request-id"] = request_id
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
