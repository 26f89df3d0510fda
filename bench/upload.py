"""Measurements 1, 2, 9 and 10: what an upload through the app costs in time (against its floor,
the same bytes sent straight to Blob Storage or the validation alone), in worker memory
(against the naive `file.read()`), over a slower link, and in CPU under concurrent uploads."""

from __future__ import annotations

import functools
import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient

from app.images import check_image
from bench.client import Browser, post_file
from bench.gallery import percentile
from bench.link import ThrottledLink
from bench.report import Figure, Target
from bench.servers import PeakRss, status_kb
from devstack.process import processes

MEMORY_TARGET_MB = 64
FLOOR_TARGET = 1.2
LINK_TARGET = 1.05
LINK_BITS_PER_SECOND = 100e6
CPU_TARGET = 1.3
_PHASES = ("body_read_ms", "checked_ms", "staged_ms", "stored_ms")
_CPU = ("receive_cpu_ms", "check_cpu_ms", "stage_cpu_ms", "store_cpu_ms")


@dataclass(frozen=True)
class UploadFile:
    key: str  # the figure's key: upload_floor_<key>
    label: str
    path: Path


def _created_id(response: requests.Response) -> str:
    if response.status_code != 201:
        raise RuntimeError(f"upload answered {response.status_code}: {response.text[:300]}")
    return str(response.json()["photos"][0]["id"])


def logged_uploads(log_path: Path) -> list[dict[str, float]]:
    """What the app logged of each upload ("upload stored"): its phases, in ms after the view
    began reading the body, and the CPU ms of receiving, checking and staging."""
    records = []
    for line in log_path.read_text(errors="replace").splitlines():
        if '"upload stored"' in line:
            record = json.loads(line)
            records.append({key: float(record[key]) for key in (*_PHASES, *_CPU)})
    if not records:
        raise RuntimeError(f"no 'upload stored' line in {log_path}")
    return records


def _label(key: str) -> str:
    return key.removesuffix("_ms").replace("_", " ") + " ms"


def _timed_app_upload(browser: Browser, path: Path, url: str | None = None) -> float:
    started = time.perf_counter()
    response = browser.upload(path, url=url)
    elapsed = time.perf_counter() - started
    browser.delete(_created_id(response))
    return elapsed


def _timed_direct_upload(service: BlobServiceClient, container: str, data: bytes) -> float:
    blob = service.get_blob_client(container, f"bench-direct/{uuid.uuid4()}")
    started = time.perf_counter()
    blob.upload_blob(data)
    elapsed = time.perf_counter() - started
    blob.delete_blob()
    return elapsed


def _validation(path: Path, max_pixels: int) -> tuple[float, float]:
    """(seconds, CPU-seconds) of the app's validation of the file (Pillow decode, thumbnail,
    location check), alone in this process."""
    with open(path, "rb") as stream:
        started, cpu = time.perf_counter(), time.process_time()
        check_image(stream, max_pixels=max_pixels)
        return time.perf_counter() - started, time.process_time() - cpu


def floor(
    browser: Browser,
    log_path: Path,
    connection_string: str,
    container: str,
    files: list[UploadFile],
    runs: int,
    max_pixels: int,
) -> list[Figure]:
    """For each file: the median app upload ÷ its floor, the longer of the direct upload of the
    same bytes to the same Azurite and the app's validation of the file alone (no upload that
    decodes the file before acknowledging it can take less than either). The three are run
    interleaved so that any drift of the machine hits them alike; beside them, the phases the
    app logged for each upload."""
    direct = BlobServiceClient.from_connection_string(connection_string)
    figures = []
    for file in files:
        data = file.path.read_bytes()
        _timed_app_upload(browser, file.path)  # warm-up: connections, imports, Azurite's first writes
        _timed_direct_upload(direct, container, data)
        app_s, direct_s, validation_s, phases = [], [], [], []
        for _ in range(runs):
            app_s.append(_timed_app_upload(browser, file.path))
            phases.append(logged_uploads(log_path)[-1])
            direct_s.append(_timed_direct_upload(direct, container, data))
            validation_s.append(_validation(file.path, max_pixels)[0])
        app, direct_median, validation = (statistics.median(x) for x in (app_s, direct_s, validation_s))
        floor_s = max(direct_median, validation)
        beside: dict[str, Any] = {
            "app s": app,
            "direct s": direct_median,
            "validation alone s": validation,
            "app ÷ direct": app / direct_median,
        }
        for key in (*_PHASES, "receive_cpu_ms", "check_cpu_ms"):
            beside[_label(key)] = statistics.median(p[key] for p in phases)
        figures.append(
            Figure(
                1,
                f"upload_floor_{file.key}",
                f"upload {file.label} ({len(data) / 1e6:.1f} MB): app ÷ max(direct, validation alone)",
                app / floor_s,
                "×",
                Target("≤", FLOOR_TARGET),
                beside,
                note=(
                    f"medians of {runs}; phases as the app logs them, ms after the view began reading"
                    " the body: body read, every file checked, staged, stored (blobs and row); then"
                    " the CPU ms of receiving and of the check"
                ),
            )
        )
    return figures


def link(
    browser: Browser,
    app_port: int,
    connection_string: str,
    blob_port: int,
    container: str,
    file: UploadFile,
    runs: int,
    bits_per_second: float = LINK_BITS_PER_SECOND,
) -> list[Figure]:
    """The same photo through the app and straight to Blob, each over its own throttled link
    (bench/link.py): on a real link the server's work should hide behind the transfer."""
    data = file.path.read_bytes()
    with (
        ThrottledLink(app_port, bits_per_second) as to_app,
        ThrottledLink(blob_port, bits_per_second) as to_blob,
    ):
        app_url = to_app.url(browser.base_url)
        direct = BlobServiceClient.from_connection_string(
            connection_string.replace(f":{blob_port}/", f":{to_blob.port}/")
        )
        app_s, direct_s = [], []
        for _ in range(runs):
            app_s.append(_timed_app_upload(browser, file.path, url=app_url))
            direct_s.append(_timed_direct_upload(direct, container, data))
        direct.close()
    app, direct_median = statistics.median(app_s), statistics.median(direct_s)
    mbit = bits_per_second / 1e6
    return [
        Figure(
            9,
            "upload_link",
            f"upload {file.label} ({len(data) / 1e6:.1f} MB) at {mbit:g} Mbit/s: app ÷ direct",
            app / direct_median,
            "×",
            Target("≤", LINK_TARGET),
            {
                "app s": app,
                "direct s": direct_median,
                "transfer alone s": len(data) * 8 / bits_per_second,
                "runs": runs,
            },
            note=f"medians; the client's bytes paced to {mbit:g} Mbit/s by a loopback relay, answers unpaced",
        )
    ]


def _cpu_seconds(master: int) -> float:
    """CPU time of a gunicorn master and its workers, living and exited."""
    total = 0
    for pid in (master, *processes(parent=master)):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if pid == master:
            total += int(fields[13]) + int(fields[14])  # its reaped children's
    return total / os.sysconf("SC_CLK_TCK")


def capacity(
    browser: Browser,
    master_pid: int,
    log_path: Path,
    file: UploadFile,
    *,
    clients: int,
    uploads_each: int,
    workers: int,
    threads: int,
    max_pixels: int,
) -> list[Figure]:
    """`clients` uploading the photo at once, `uploads_each` times each, against the production
    gunicorn settings: uploads per second, latency, and the CPU-seconds the app's processes
    spend per upload beside those of the validation alone."""
    token = browser.csrf_token()
    sessions = []
    for _ in range(clients):
        session = requests.Session()
        session.cookies.update(browser.http.cookies)
        sessions.append(session)
    url = f"{browser.base_url}/photos"
    latencies: list[float] = []
    created: list[str] = []
    lock = threading.Lock()

    def client(session: requests.Session) -> None:
        for _ in range(uploads_each):
            started = time.perf_counter()
            response = post_file(session, url, file.path, {"X-CSRFToken": token})
            elapsed = time.perf_counter() - started
            with lock:
                created.append(_created_id(response))
                latencies.append(elapsed)

    client(sessions[0])  # warm-up: every worker's imports and pools come with their first requests
    latencies.clear()
    logged_before = len(logged_uploads(log_path))
    cpu_before, started = _cpu_seconds(master_pid), time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client, session) for session in sessions]:
            future.result()
    wall, cpu = time.perf_counter() - started, _cpu_seconds(master_pid) - cpu_before
    logged = logged_uploads(log_path)[logged_before:]
    for photo_id in created:
        browser.delete(photo_id)
    for session in sessions:
        session.close()
    uploads = clients * uploads_each
    validation_cpu = statistics.median(_validation(file.path, max_pixels)[1] for _ in range(5))
    per_upload = cpu / uploads
    parts = {_label(key): statistics.median(u[key] for u in logged) for key in _CPU}
    return [
        Figure(
            10,
            "upload_capacity",
            f"{clients} concurrent uploads of {file.label}: app CPU-s per upload ÷ validation alone",
            per_upload / validation_cpu,
            "×",
            Target("≤", CPU_TARGET),
            {
                "uploads/s": uploads / wall,
                "p50 s": statistics.median(latencies),
                "p95 s": percentile(latencies, 0.95),
                "CPU-s per upload": per_upload,
                "validation alone CPU-s": validation_cpu,
                **parts,
                "the rest ms": per_upload * 1000 - sum(parts.values()),
                "uploads": uploads,
            },
            note=(
                f"gunicorn {workers} workers × {threads} threads as in app/gunicorn_conf.py; CPU of"
                " the master and workers from /proc (Azurite's and PostgreSQL's not counted); the"
                " app's own CPU ms of receiving, checking, staging and storing, medians of its log;"
                " the rest: gunicorn, the request around the view, the threads' start"
            ),
        )
    ]


def _upload_peak(pid: int, upload: Callable[[], None]) -> tuple[float, float]:
    """(peak RSS of worker `pid` in kB while `upload()` runs, seconds it took)."""
    time.sleep(0.5)  # let the worker settle after the previous request
    with PeakRss(pid) as peak:
        started = time.perf_counter()
        upload()
        elapsed = time.perf_counter() - started
    return peak.peak_kb, elapsed


def memory(
    browser: Browser,
    app_pid: int,
    naive_url: str,
    naive_pid: int,
    paths: tuple[Path, Path],
    warmup: Path,
) -> list[Figure]:
    """Peak RSS of the one serving worker during one upload, minus its RSS once warm (after a
    small upload): at two sizes for the app, at the larger one for the naive app. One baseline
    per worker, so memory kept after the first size still counts against the second."""
    naive = requests.Session()

    def naive_upload(path: Path) -> None:
        response = post_file(naive, f"{naive_url}/photos", path)
        if response.status_code != 201:
            raise RuntimeError(f"naive upload answered {response.status_code}: {response.text[:300]}")
        naive.delete(f"{naive_url}/photos/{response.json()['name']}", timeout=30)

    def app_upload(path: Path) -> None:
        browser.delete(_created_id(browser.upload(path)))

    app_upload(warmup)  # imports and pools in place before measuring
    naive_upload(warmup)
    time.sleep(0.5)
    app_base, naive_base = status_kb(app_pid, "VmRSS"), status_kb(naive_pid, "VmRSS")
    small, large = paths
    naive_peak, naive_s = _upload_peak(naive_pid, lambda: naive_upload(large))
    naive.close()
    figures: list[Figure] = []
    for label, path in (("small", small), ("large", large)):
        size_mb = path.stat().st_size / 1e6
        peak, seconds = _upload_peak(app_pid, functools.partial(app_upload, path))
        beside: dict[str, float | str] = {"upload s": seconds, "warm worker RSS MB": app_base / 1024}
        if path is large:
            beside.update(
                {"naive file.read() MB": (naive_peak - naive_base) / 1024, "naive upload s": naive_s}
            )
        figures.append(
            Figure(
                2,
                f"upload_memory_{label}",
                f"upload {size_mb:.0f} MB: worker peak RSS growth",
                (peak - app_base) / 1024,
                "MB",
                Target("≤", MEMORY_TARGET_MB),
                beside,
                note="single gunicorn worker: VmRSS sampled every 5 ms and VmHWM (reset before each upload)",
            )
        )
    return figures
