"""Measurements 3 and 4: the gallery API's latency and throughput, each beside /healthz (the
cheapest route the same server has), for a user with many photos."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import statistics
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import psycopg
import requests

from bench.report import Figure, Target

LATENCY_RATIO_TARGET = 2  # gallery p50 at most twice /healthz's
THROUGHPUT_RATIO_TARGET = 0.5  # gallery requests/s at least half /healthz's


def seed_photos(database_url: str, owner_oid: str, count: int) -> None:
    """Rows straight into PostgreSQL (COPY): the listing reads rows and signs links, never blobs."""
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY photos (id, owner_oid, owner_email, blob_name, thumb_blob_name, filename,"
            " content_type, size, width, height, created_at) FROM STDIN"
        ) as copy:
            for i in range(count):
                photo_id = uuid.uuid4()
                copy.write_row(
                    (
                        photo_id,
                        owner_oid,
                        None,
                        f"{owner_oid}/{photo_id}.jpg",
                        f"{owner_oid}/{photo_id}.thumb.jpg",
                        f"photo-{i:04d}.jpg",
                        "image/jpeg",
                        2_000_000,
                        4000,
                        3000,
                        now - timedelta(seconds=i),
                    )
                )
        cur.execute("ANALYZE photos")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class KeepAlive:
    """One keep-alive HTTP/1.1 connection with the session cookie: http.client costs ~0.1 ms a
    request where requests costs ~1.3 ms, which would flatter the ratio by padding both sides."""

    def __init__(self, base_url: str, cookie: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = {"Cookie": cookie, "Accept": "application/json"}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request("GET", path, headers=self.headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                self.conn.close()  # the server closed an idle connection: reconnect once
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def timed_ms(self, path: str) -> float:
        """Milliseconds of one GET, which must answer 200."""
        started = time.perf_counter()
        status, body = self.get(path)
        elapsed = time.perf_counter() - started
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body[:300]!r}")
        return elapsed * 1000

    def close(self) -> None:
        self.conn.close()


def latency(
    base_url: str, cookie: str, *, page_size: int, requests_per_url: int, photos: int
) -> list[Figure]:
    """Sequential keep-alive requests, the two URLs interleaved so both see the same machine."""
    api = f"/api/photos?limit={page_size}"
    client = KeepAlive(base_url, cookie)
    timed = client.timed_ms
    try:
        status, body = client.get(api)
        listed = len(json.loads(body).get("photos", [])) if status == 200 else 0
        if listed != page_size:
            raise RuntimeError(f"expected a full page of {page_size} photos, got {status} with {listed}")
        for _ in range(10):
            timed(api), timed("/healthz")
        api_ms: list[float] = []
        health_ms: list[float] = []
        for _ in range(requests_per_url):
            api_ms.append(timed(api))
            health_ms.append(timed("/healthz"))
    finally:
        client.close()
    api_p50, health_p50 = statistics.median(api_ms), statistics.median(health_ms)
    return [
        Figure(
            3,
            "gallery_latency_ratio",
            f"GET /api/photos?limit={page_size} ({photos:,} photos) p50 ÷ /healthz p50",
            api_p50 / health_p50,
            "×",
            Target("≤", LATENCY_RATIO_TARGET),
            {
                "api p50 ms": api_p50,
                "api p95 ms": percentile(api_ms, 0.95),
                "healthz p50 ms": health_p50,
                "healthz p95 ms": percentile(health_ms, 0.95),
                "requests each": requests_per_url,
            },
            note="sequential, keep-alive, one gunicorn worker; each item carries two signed links",
        )
    ]


_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_BAD = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def _wrk(url: str, cookie: str, connections: int, seconds: float) -> float:
    wrk = shutil.which("wrk")
    assert wrk is not None
    result = subprocess.run(  # noqa: S603  # fixed argv, loopback URL
        [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "5s",
            "-H",
            f"Cookie: {cookie}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    out = result.stdout
    bad = _WRK_BAD.search(out)
    errors = _WRK_ERRORS.search(out)
    if bad or (errors and any(int(n) for n in errors.groups())):
        raise RuntimeError(f"wrk saw failed requests on {url}:\n{out}")
    match = _WRK_RPS.search(out)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    return float(match.group(1))


def _python_load(url: str, cookie: str, connections: int, seconds: float) -> float:
    """Fallback when wrk is missing: threads with keep-alive sessions (the GIL caps it lower)."""
    deadline = time.monotonic() + seconds
    counts: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        done = 0
        with requests.Session() as http:
            http.headers["Cookie"] = cookie
            while time.monotonic() < deadline:
                response = http.get(url, timeout=5)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {url} answered {response.status_code}")
                done += 1
        with lock:
            counts.append(done)

    started = time.monotonic()
    with ThreadPoolExecutor(connections) as pool:
        for future in [pool.submit(worker) for _ in range(connections)]:
            future.result()
    return sum(counts) / (time.monotonic() - started)


def throughput(
    base_url: str, cookie: str, *, page_size: int, connections: int, seconds: float, runs: int, workers: int
) -> list[Figure]:
    """Requests/s of the gallery API beside /healthz's under the same closed-loop load, as their
    ratio: the median of `runs` interleaved runs of each, since one run can be unlucky on a
    shared machine. The raw requests/s stay beside it; the ratio is what carries across machines."""
    load = _wrk if shutil.which("wrk") else _python_load
    api_url, health_url = f"{base_url}/api/photos?limit={page_size}", f"{base_url}/healthz"
    api_runs: list[float] = []
    health_runs: list[float] = []
    for _ in range(runs):
        api_runs.append(load(api_url, cookie, connections, seconds))
        health_runs.append(load(health_url, cookie, connections, seconds))
    api_rps, health_rps = statistics.median(api_runs), statistics.median(health_runs)
    return [
        Figure(
            4,
            "gallery_throughput_ratio",
            f"GET /api/photos?limit={page_size} under load: req/s ÷ /healthz req/s",
            api_rps / health_rps,
            "×",
            Target("≥", THROUGHPUT_RATIO_TARGET),
            {
                "api req/s": api_rps,
                "api runs req/s": " / ".join(f"{r:.0f}" for r in api_runs),
                "healthz req/s": health_rps,
                "healthz runs req/s": " / ".join(f"{r:.0f}" for r in health_runs),
            },
            note=(
                f"{'wrk -t1' if load is _wrk else 'Python threads'}, {connections} connections, median of "
                f"{runs} × {seconds:g} s per URL, interleaved; gunicorn {workers} workers × threads as "
                "in app/gunicorn_conf.py"
            ),
        )
    ]
