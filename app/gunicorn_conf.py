"""gunicorn settings for App Service and `make dev`.

Run as `gunicorn -c python:app.gunicorn_conf 'app:create_app()'`.

gthread workers: requests mostly wait on PostgreSQL, Blob Storage and Graph, so a few threads
per process serve more than more processes would, and memory stays small (B1: 1.75 GB).
Uploads stream into a temporary file as they arrive (app/uploads.py), so a thread never holds a
whole image in memory.

The master applies the schema once per instance before any worker starts (`on_starting`).
"""

import multiprocessing
import os
from typing import Any

from app import logs
from app.db import Database
from app.settings import Settings, SettingsError

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"  # noqa: S104  # App Service routes to it
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 4)))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new
# connections over them. On one shared socket the worker that wakes first accepts a burst of
# connections, and a gthread worker keeps its keep-alive connections: App Service's front end
# opening its connections together could land them all on one worker, one core, while the
# others idle (measured: 16 connections on one of 4 workers, a third of the throughput).
reuse_port = True
# Large uploads over slow links need time; App Service's front end cuts requests at 230 s.
timeout = 120
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# Path without the query string: /auth/callback's query carries the one-time auth code.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
# gunicorn's own lines as JSON like the app's (app/logs.py): access lines on stdout with the
# path, status, duration and the request id the app echoed; its error log on stderr. Not
# propagated: the app's root handler would print them twice.
logconfig_dict = {
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access_console"], "propagate": False},
    },
    "handlers": {
        "access_console": {
            "class": "logging.StreamHandler",
            "formatter": "access",
            "stream": "ext://sys.stdout",
        },
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        },
    },
    "formatters": {
        "access": {"()": "app.logs.AccessLogFormatter"},
        "json": {"()": "app.logs.JsonLineFormatter"},
    },
}
# gunicorn 25+ opens a control socket under $HOME/.gunicorn by default. On App Service $HOME is
# /home, a network share every instance mounts, where a unix socket fails or collides; nobody
# drives a deployed worker pool by hand, so it stays off.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Apply pending migrations in the master, before the workers fork: once per instance, not
    once per worker. Never stops the start (`Database.migrate_at_start`): a refused role or an
    outage is logged, /readyz names it, and the workers apply the schema once it is fixed."""
    try:
        settings = Settings.from_env()
    except SettingsError:
        return  # every worker's create_app raises it, naming each setting to fix
    logs.configure_logging()
    Database.from_settings(settings).migrate_at_start()
