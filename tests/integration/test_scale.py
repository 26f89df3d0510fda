"""Load and scale-out: concurrent uploads on a multi-worker server, two instances sharing the
database and storage, migrations started by several processes at once."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import psycopg

from tests.integration.client import make_image


def test_64_concurrent_uploads_from_8_users(start_app, client_factory, make_user, services):
    server = start_app(workers=3)
    clients = []
    for _ in range(8):
        c = client_factory(server)
        c.sign_in(make_user())
        c.token = c.csrf_token()
        clients.append(c)

    def upload(job: int) -> tuple[str, int, str]:
        c = clients[job % 8]
        data = make_image("JPEG", (320 + job, 240), color=(job * 3 % 255, 40, 90))
        response = c.request(
            "POST",
            "/photos",
            files=[("file", (f"job{job}.jpg", data, "image/jpeg"))],
            headers={"X-CSRFToken": c.token, "Accept": "application/json"},
        )
        return c.user["oid"], response.status_code, response.json()["photos"][0]["id"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(upload, range(64)))

    assert [status for _, status, _ in results] == [201] * 64
    oids = [c.user["oid"] for c in clients]
    with psycopg.connect(services.database_url) as conn:
        rows = conn.execute(
            "SELECT owner_oid, count(*) FROM photos WHERE owner_oid = ANY(%s) GROUP BY owner_oid", (oids,)
        ).fetchall()
    assert dict(rows) == {oid: 8 for oid in oids}
    blobs = [name for oid in oids for name in services.blobs_of(oid)]
    assert len([b for b in blobs if not b.endswith(".thumb.jpg")]) == 64
    assert len(blobs) == 128
    for c in clients:
        mine = {p["id"] for p in c.photos(limit=100)["photos"]}
        assert mine == {pid for oid, _, pid in results if oid == c.user["oid"]}


def test_two_instances_share_sessions_and_the_email_cache(start_app, client_factory, make_user, fake):
    first, second = start_app(), start_app()
    user = make_user("local")
    on_first = client_factory(first)
    on_first.sign_in(user)
    on_second = client_factory(second)
    on_second.http.cookies.update(on_first.http.cookies)  # the load balancer sends the next request elsewhere

    assert on_second.get("/api/me").json()["id"] == user["oid"]
    assert on_first.get("/api/me/email").json() == {"email": user["email"], "source": "graph"}
    assert on_second.get("/api/me/email").json() == {"email": user["email"], "source": "graph"}
    assert fake.counters()["graph"] == 1  # the second instance read PostgreSQL, not Graph
    photo = on_first.upload(("shared.png", make_image("PNG"), "image/png")).json()["photos"][0]
    assert [p["id"] for p in on_second.photos()["photos"]] == [photo["id"]]
    assert on_second.delete(photo["id"]).status_code == 204  # CSRF token minted by the other instance


def test_migrations_started_by_several_processes_apply_once(app_env, services, fresh_database):
    env = {**app_env, **services.app_database(fresh_database)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err for _, err in outputs]
    applied = sorted(out.strip() for out, _ in outputs)
    assert applied == sorted(['{"applied": []}'] * 3 + ['{"applied": ["0001_initial", "0002_sessions"]}'])
