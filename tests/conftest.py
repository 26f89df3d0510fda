"""Said once at the top of every run: how the app is served to the integration suites."""

from __future__ import annotations

from devstack.frontend import find_nginx, nginx_version


def pytest_report_header() -> list[str]:
    nginx = find_nginx()
    if nginx:
        return [f"app served: production mode behind nginx {nginx_version(nginx)} (TLS front end)"]
    return ["app served: production mode over gunicorn's own TLS (nginx not found: no front end)"]
