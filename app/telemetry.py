"""Requests, dependencies, exceptions and logs to Application Insights, when it is configured.

Microsoft's distro (azure-monitor-opentelemetry; read at 1.8.11 with exporter 1.0.0b58) does the
sending. What this app needs differently is set here, each choice with its reason; nothing of
OpenTelemetry is imported when APPLICATIONINSIGHTS_CONNECTION_STRING is unset.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any

from flask import Flask

from app import logs
from app.settings import Settings

log = logging.getLogger(__name__)

# The exporter reads these only from the environment (exporter `_constants.py`).
EXPORTER_ENVIRONMENT = {
    # Statsbeat reports the SDK's own health to Microsoft's ingestion hosts, not to ours.
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    # The OneSettings control plane polls settings.sdk.monitor.azure.com for feature flags.
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    # The distro's default adds `azure_vm`, which asks the VM metadata service (169.254.169.254)
    # at every worker start; the app runs on App Service, whose detector reads the environment.
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "azure_app_service",
}

# App Service probes the liveness route every minute on every instance: noise, no dependency.
EXCLUDED_URLS = r"://[^/]+/healthz(\?|$)"

# Span attributes holding a URL or a request target: kept without their query string (the
# auth code and state on /auth/callback, a SAS signature on Blob URLs).
_URL_ATTRIBUTES = ("url.full", "http.url", "http.target")
_QUERY_ATTRIBUTES = ("url.query",)
# In free text (exception messages, stack traces, log bodies): a query string after a URL or path.
_QUERY_IN_TEXT = re.compile(r"\?[\w.$%\[\]-]*=[^\s\"'<>]*")

_configured = False
_lock = threading.Lock()


def init_app(app: Flask, settings: Settings) -> None:
    """Send this app's telemetry when a connection string is set; without one, do nothing."""
    if not settings.appinsights_connection_string:
        return
    _configure_once(settings.appinsights_connection_string)
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    # The app object itself: `from flask import Flask` ran before configuration, so the distro's
    # patching of the Flask class never reaches it.
    FlaskInstrumentor().instrument_app(
        app, excluded_urls=EXCLUDED_URLS, request_hook=_tag_request, enable_commenter=False
    )


def _configure_once(connection_string: str) -> None:
    """Configure the process's providers and instrumentations; gunicorn workers each build the
    app once after the fork, and the exporter's threads must start in the worker."""
    global _configured
    with _lock:
        if _configured:
            return
        os.environ.update(EXPORTER_ENVIRONMENT)
        from azure.monitor.opentelemetry import configure_azure_monitor
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        span_scrubber, log_scrubber = _scrubbers()
        configure_azure_monitor(
            connection_string=connection_string,
            # Keep every trace. Without it the distro's RateLimitedSampler keeps 5 traces per
            # second (`_default_sampling_ratio`); this app's traffic is small and the trace
            # someone asks about is the one a limiter dropped. OTEL_TRACES_SAMPLER still overrides.
            sampling_ratio=1.0,
            # Live metrics keeps a session open to Microsoft's QuickPulse hosts; the portal's
            # request and failure views come from the telemetry itself.
            enable_live_metrics=False,
            # Failed batches would be kept in /tmp for retry: per-instance state App Service drops
            # on restart and scale-in, shared by the workers; a lost batch is acceptable.
            disable_offline_storage=True,
            span_processors=[span_scrubber],
            log_record_processors=[log_scrubber],
            instrumentation_options={
                "flask": {"enabled": False},  # the app object is instrumented instead (init_app)
                "requests": {"enabled": True},  # MSAL's token calls, Graph
                "urllib3": {"enabled": True},
                "urllib": {"enabled": False},
                "azure_sdk": {"enabled": True},  # Blob Storage through azure-core
                "psycopg2": {"enabled": False},  # the app uses psycopg 3, instrumented below
                "django": {"enabled": False},
                "fastapi": {"enabled": False},
                "httpx": {"enabled": False},
                "httpx2": {"enabled": False},
            },
        )
        # The distro instruments psycopg2 only. Parameters stay out of the statements it records.
        PsycopgInstrumentor().instrument(capture_parameters=False, enable_commenter=False)
        # The distro's handler on the root logger sends log records to Application Insights;
        # give them the request id the JSON lines carry.
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, logs.RequestIdFilter) for f in handler.filters):
                handler.addFilter(logs.RequestIdFilter())
        _configured = True
        log.info("telemetry to Application Insights enabled")


def _tag_request(span: Any, environ: Mapping[str, Any]) -> None:
    """The request telemetry carries the id the log lines and the X-Request-ID header carry."""
    request_id = logs.current_request_id()
    if request_id is not None and span.is_recording():
        span.set_attribute("request_id", request_id)


def scrub_text(text: str) -> str:
    """Free text without the query strings of the URLs or paths it mentions."""
    return _QUERY_IN_TEXT.sub("", text)


def scrub_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes with URLs cut at their query string, `url.query` dropped, text scrubbed."""
    cleaned: dict[str, Any] = {}
    for key, value in attributes.items():
        if key in _QUERY_ATTRIBUTES:
            continue
        if isinstance(value, str):
            value = value.split("?", 1)[0].split("#", 1)[0] if key in _URL_ATTRIBUTES else scrub_text(value)
        elif isinstance(value, tuple | list):
            value = tuple(scrub_text(v) if isinstance(v, str) else v for v in value)
        cleaned[key] = value
    return cleaned


def _scrubbers() -> tuple[Any, Any]:
    """A span processor and a log record processor that scrub before the exporter's batch.

    At span end, not start: Flask's instrumentation sets the URL attributes again after the span
    starts, and an ended span cannot be changed, so the processor rewrites the ReadableSpan the
    SDK hands, in order, to every processor (ours is registered before the exporter's).
    """
    from opentelemetry.sdk._logs import LogRecordProcessor
    from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor

    class ScrubSpans(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            span._name = scrub_text(span.name)
            span._attributes = scrub_attributes(span.attributes or {})
            span._events = tuple(
                Event(e.name, scrub_attributes(e.attributes or {}), e.timestamp) for e in span.events
            )

    class ScrubLogs(LogRecordProcessor):
        def on_emit(self, log_record: Any) -> None:
            record = log_record.log_record
            if isinstance(record.body, str):
                record.body = scrub_text(record.body)
            if record.attributes:
                cleaned = scrub_attributes(record.attributes)
                for key in [k for k in record.attributes if k not in cleaned]:
                    del record.attributes[key]
                record.attributes.update(cleaned)

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    return ScrubSpans(), ScrubLogs()
