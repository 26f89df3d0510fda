"""Faults: PostgreSQL and Azurite stopped and started during the test, Graph failing.

The stop/start handles come from the `local` provider (what CI runs); under another provider
these tests need `TEST_SERVICES=local`.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from PIL import Image

from tests.integration.client import AppClient, make_image, noise_jpeg


@pytest.fixture
def local_services(services):
    if services.postgres is None or services.azurite is None:
        pytest.skip("stopping services mid-test needs TEST_SERVICES=local")
    yield services
    services.postgres.start()  # whatever happened, leave them running for the next test
    services.azurite.start()


def noisy_png(size: int = 700) -> bytes:
    """A PNG that does not compress (about 1.5 MB), so uploads take a moment."""
    out = io.BytesIO()
    Image.frombytes("RGB", (size, size), os.urandom(size * size * 3)).save(out, "PNG", compress_level=0)
    return out.getvalue()


def rows_of(services, oid: str) -> set[str]:
    with psycopg.connect(services.database_url) as conn:
        return {r[0] for r in conn.execute("SELECT blob_name FROM photos WHERE owner_oid = %s", (oid,))} | {
            r[0] for r in conn.execute("SELECT thumb_blob_name FROM photos WHERE owner_oid = %s", (oid,))
        }


def test_postgres_down_during_uploads(local_services, signed_in: AppClient, app_env):
    assert signed_in.user is not None  # the signed_in fixture signed in
    oid = signed_in.user["oid"]
    token = signed_in.csrf_token()
    images = [noisy_png() for _ in range(12)]
    statuses: list[int] = []
    bodies: list[dict] = []
    first_started = threading.Event()

    def upload(data: bytes) -> None:
        first_started.set()
        response = signed_in.request(
            "POST",
            "/photos",
            files=[("file", ("n.png", data, "image/png"))],
            headers={"X-CSRFToken": token, "Accept": "application/json"},
        )
        statuses.append(response.status_code)
        bodies.append(response.json())

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(upload, data) for data in images]
        first_started.wait(10)
        local_services.postgres.stop()  # while the first uploads are in flight
        for f in futures:
            f.result()

    assert set(statuses) <= {201, 503}, statuses
    assert 503 in statuses
    for status, body in zip(statuses, bodies, strict=True):
        if status == 503:
            assert body["error"] == "database_unavailable"
    down = signed_in.get("/readyz")
    assert down.status_code == 503 and down.json()["checks"]["database"] == "down"

    local_services.postgres.start()
    # Serving again without an app restart.
    assert signed_in.get("/readyz").status_code == 200
    assert signed_in.upload(("after.png", make_image("PNG"), "image/png")).status_code == 201
    acknowledged = statuses.count(201) + 1
    assert len(signed_in.photos(limit=100)["photos"]) == acknowledged
    # Every acknowledged photo is in both stores; reconcile removes whatever the outage left.
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "reconcile", "--grace-minutes", "0"],
        env=app_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert local_services.blobs_of(oid) == rows_of(local_services, oid)
    assert len(rows_of(local_services, oid)) == 2 * acknowledged  # original + thumbnail each


def test_azurite_down(local_services, signed_in: AppClient):
    assert signed_in.user is not None  # the signed_in fixture signed in
    oid = signed_in.user["oid"]
    kept = signed_in.upload(("before.png", make_image("PNG"), "image/png")).json()["photos"][0]
    local_services.azurite.stop()

    small, large = ("during.png", make_image("PNG"), "image/png"), ("during.jpg", noise_jpeg(), "image/jpeg")
    for during in (small, large):  # the large JPEG's blocks are staged while it is validated
        response = signed_in.upload(during)
        assert response.status_code == 503
        assert response.json()["error"] == "storage_unavailable"
    assert [p["id"] for p in signed_in.photos()["photos"]] == [kept["id"]]  # no row written; listing answers
    down = signed_in.get("/readyz")
    assert down.status_code == 503
    assert down.json()["checks"] == {"database": "ok", "storage": "down"}
    assert "storage" in down.json()["message"]

    local_services.azurite.start()  # empty: in-memory Azurite lost the container too
    after = signed_in.upload(("after.jpg", noise_jpeg(), "image/jpeg"))
    assert after.status_code == 201  # staged into the container the app re-created
    assert signed_in.get("/readyz").status_code == 200
    assert len(rows_of(local_services, oid)) == 4
    after_id = after.json()["photos"][0]["id"]
    assert local_services.blobs_of(oid) == {f"{oid}/{after_id}.jpg", f"{oid}/{after_id}.thumb.jpg"}


def test_graph_5xx_is_retried_then_succeeds(client: AppClient, make_user, fake):
    user = make_user("local")
    client.sign_in(user)
    fake.set_knobs(graph_fail={"count": 2, "status": 500})
    assert client.get("/api/me/email").json() == {"email": user["email"], "source": "graph"}
    assert fake.counters()["graph"] == 3


def test_graph_failing_for_good_is_a_clear_error(client: AppClient, make_user, fake):
    client.sign_in(make_user("local"))
    fake.set_knobs(graph_fail={"count": 100, "status": 500})
    response = client.get("/api/me/email")
    assert response.status_code == 502
    assert response.json()["error"] == "graph_error"
    assert fake.counters()["graph"] == 4
    assert client.upload(("a.png", make_image("PNG"), "image/png")).status_code == 201
    assert client.get("/", headers={"Accept": "text/html"}).status_code == 200
