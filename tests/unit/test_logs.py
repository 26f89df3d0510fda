"""JSON log lines with the request's id: taken from App Service's front end or the client when
sane, made up otherwise, echoed in X-Request-ID; lines outside a request still written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from flask import Flask
from gunicorn.glogging import SafeAtoms

from app import logs
from app.gunicorn_conf import access_log_format

log = logging.getLogger("app.test_logs")


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """configure_logging writing to a buffer; the root logger as it was afterwards."""
    root = logging.getLogger()
    saved_level = root.level
    saved_quiet = {name: logging.getLogger(name).level for name in logs.QUIET_LOGGERS}
    stream = io.StringIO()
    handler = logs.configure_logging(stream=stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(saved_level)
    for name, level in saved_quiet.items():
        logging.getLogger(name).setLevel(level)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    logs.init_app(app)

    @app.get("/work")
    def work() -> dict:
        log.info("working on %s", "it")
        return {"request_id": logs.current_request_id()}

    @app.get("/fail")
    def fail() -> str:
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("it failed")
        return "handled"

    return app


def test_each_line_is_one_json_object_with_time_level_logger_and_message(output):
    log.warning("disk at %d%%", 91)
    [line] = lines(output)
    assert line["level"] == "WARNING"
    assert line["logger"] == "app.test_logs"
    assert line["message"] == "disk at 91%"
    assert line["time"].endswith("+00:00")
    assert "request_id" not in line  # not inside a request


def test_the_front_ends_id_is_logged_and_echoed(app, output):
    arr_id = "6a3f2c0e-1b7d-4e5f-9a8b-0c1d2e3f4a5b"
    response = app.test_client().get("/work", headers={"X-ARR-LOG-ID": arr_id, "X-Request-ID": "other"})
    assert response.headers["X-Request-ID"] == arr_id
    assert response.json == {"request_id": arr_id}
    [line] = lines(output)
    assert line["message"] == "working on it" and line["request_id"] == arr_id


def test_the_clients_id_is_used_without_the_front_ends(app, output):
    response = app.test_client().get("/work", headers={"X-Request-ID": "client.id:42_a-b"})
    assert response.headers["X-Request-ID"] == "client.id:42_a-b"
    assert lines(output)[0]["request_id"] == "client.id:42_a-b"


def test_without_an_id_each_request_gets_a_new_one(app, output):
    client = app.test_client()
    first = client.get("/work").headers["X-Request-ID"]
    second = client.get("/work").headers["X-Request-ID"]
    assert len(first) == 32 and int(first, 16) >= 0
    assert first != second
    assert [line["request_id"] for line in lines(output)] == [first, second]


@pytest.mark.parametrize(
    "insane",
    [
        "a" * 129,
        "two words",
        'quote"d',
        "line\\nbreak",
        "<script>",
        "semi;colon",
        "ünïcode",
    ],
)
def test_an_insane_id_is_refused(app, output, insane):
    response = app.test_client().get("/work", headers={"X-ARR-LOG-ID": insane})
    made_up = response.headers["X-Request-ID"]
    assert made_up != insane and len(made_up) == 32
    assert lines(output)[0]["request_id"] == made_up
    assert insane not in output.getvalue()


def test_an_insane_front_end_id_falls_back_to_a_sane_client_id(app, output):
    response = app.test_client().get("/work", headers={"X-ARR-LOG-ID": "bad id", "X-Request-ID": "good-id"})
    assert response.headers["X-Request-ID"] == "good-id"
    assert lines(output)[0]["request_id"] == "good-id"


def test_the_longest_sane_id_is_kept(app, output):
    longest = "x" * 128
    response = app.test_client().get("/work", headers={"X-Request-ID": longest})
    assert response.headers["X-Request-ID"] == longest
    assert lines(output)[0]["request_id"] == longest


def test_an_exception_is_logged_with_its_traceback_and_request_id(app, output):
    response = app.test_client().get("/fail", headers={"X-Request-ID": "r1"})
    assert response.data == b"handled"
    [line] = lines(output)
    assert line["request_id"] == "r1" and line["message"] == "it failed"
    assert "ValueError: boom" in line["exc_info"]


def test_outside_a_request_lines_are_written_without_an_id(app, output):
    with app.app_context():
        log.info("in an app context, no request")
        assert logs.current_request_id() is None
    log.info("no context at all")
    assert [(line["message"], "request_id" in line) for line in lines(output)] == [
        ("in an app context, no request", False),
        ("no context at all", False),
    ]


def test_configuring_again_replaces_only_its_own_handler(output):
    """Another handler on the root logger (Azure Monitor's) neither stops nor doubles our lines."""
    root = logging.getLogger()
    other = logging.Handler()
    seen: list[str] = []
    other.emit = lambda record: seen.append(record.getMessage())
    root.addHandler(other)
    try:
        again = io.StringIO()
        handler = logs.configure_logging(stream=again)
        log.info("once")
        assert [line["message"] for line in lines(again)] == ["once"]
        assert output.getvalue() == ""  # the first handler is gone
        assert seen == ["once"]
        assert [h for h in root.handlers if isinstance(h, type(handler))] == [handler]
    finally:
        root.removeHandler(other)
        root.removeHandler(handler)


def test_the_sdks_are_quieted_to_warnings(output):
    logging.getLogger("azure.core.pipeline").info("Request URL: 'https://x/?sig=abc'")
    logging.getLogger("urllib3.connectionpool").info("Starting new HTTPS connection")
    logging.getLogger("msal.application").warning("a warning")
    assert [line["message"] for line in lines(output)] == ["a warning"]


def test_access_lines_are_json_with_the_path_but_never_the_query():
    atoms = SafeAtoms(
        {
            "h": "127.0.0.1",
            "m": "GET",
            "U": '/auth/callback"x',
            "q": "code=secret-code&state=s",
            "r": "GET /auth/callback?code=secret-code&state=s HTTP/1.1",
            "s": "302",
            "B": 189,
            "M": 12,
            "{x-request-id}o": "req-1",
        }
    )
    record = logging.LogRecord(
        "gunicorn.access", logging.INFO, __file__, 1, access_log_format, (atoms,), None
    )
    text = logs.AccessLogFormatter().format(record)
    line = json.loads(text)
    assert line["path"] == '/auth/callback"x'
    assert (line["method"], line["status"], line["bytes"], line["duration_ms"]) == ("GET", 302, 189, 12)
    assert line["request_id"] == "req-1" and line["logger"] == "gunicorn.access"
    assert "secret-code" not in text and "?" not in text
