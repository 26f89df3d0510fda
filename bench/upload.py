"""Measurements 1 and 2: what an upload through the app costs in time (against the same bytes
sent straight to Blob Storage) and in worker memory (against the naive `file.read()`)."""

from __future__ import annotations

import functools
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from azure.storage.blob import BlobServiceClient

from app.images import check_image
from bench.client import Browser, post_file
from bench.report import Figure, Target
from bench.servers import PeakRss, status_kb

MEMORY_TARGET_MB = 64
OVERHEAD_TARGET = 1.3
# The app's tuning (app/storage.py), for the "direct, tuned" side figure.
APP_BLOCK = 4 * 1024 * 1024
APP_CONCURRENCY = 2


def _created_id(response: requests.Response) -> str:
    if response.status_code != 201:
        raise RuntimeError(f"upload answered {response.status_code}: {response.text[:300]}")
    return str(response.json()["photos"][0]["id"])


def _timed_app_upload(browser: Browser, path: Path) -> float:
    started = time.perf_counter()
    response = browser.upload(path)
    elapsed = time.perf_counter() - started
    browser.delete(_created_id(response))
    return elapsed


def _timed_direct_upload(service: BlobServiceClient, container: str, data: bytes, **options: Any) -> float:
    blob = service.get_blob_client(container, f"bench-direct/{uuid.uuid4()}.jpg")
    started = time.perf_counter()
    blob.upload_blob(data, **options)
    elapsed = time.perf_counter() - started
    blob.delete_blob()
    return elapsed


def _timed_validation(path: Path, max_pixels: int) -> float:
    """The app's validation of the file (Pillow decode, thumbnail), alone in this process."""
    with open(path, "rb") as stream:
        started = time.perf_counter()
        check_image(stream, max_pixels=max_pixels)
        return time.perf_counter() - started


def overhead(
    browser: Browser, connection_string: str, container: str, path: Path, runs: int, max_pixels: int
) -> list[Figure]:
    """Median app upload ÷ median direct upload of the same bytes, runs interleaved so that any
    drift of the machine hits both sides alike. Beside them, the app's validation alone: no
    upload that decodes the file before acknowledging it can take less."""
    data = path.read_bytes()
    plain = BlobServiceClient.from_connection_string(connection_string)
    tuned = BlobServiceClient.from_connection_string(
        connection_string, max_block_size=APP_BLOCK, max_single_put_size=APP_BLOCK
    )
    # Warm-up: connections, the worker's imports, Azurite's first writes.
    _timed_app_upload(browser, path)
    _timed_direct_upload(plain, container, data)
    app_s, direct_s, tuned_s, validation_s = [], [], [], []
    for _ in range(runs):
        app_s.append(_timed_app_upload(browser, path))
        direct_s.append(_timed_direct_upload(plain, container, data))
        tuned_s.append(_timed_direct_upload(tuned, container, data, max_concurrency=APP_CONCURRENCY))
        validation_s.append(_timed_validation(path, max_pixels))
    app_median, direct_median = statistics.median(app_s), statistics.median(direct_s)
    size_mb = len(data) / 1e6
    return [
        Figure(
            1,
            "upload_overhead",
            f"upload {size_mb:.0f} MB: app ÷ direct to Blob",
            app_median / direct_median,
            "×",
            Target("≤", OVERHEAD_TARGET),
            {
                "app s": app_median,
                "direct s": direct_median,
                "direct, app's 4 MiB×2 blocks s": statistics.median(tuned_s),
                "validation alone s": statistics.median(validation_s),
                "validation alone ÷ direct": statistics.median(validation_s) / direct_median,
                "runs": runs,
            },
            note=(
                "medians; the app stages the blocks while Pillow decodes the file, then commits,"
                " writes the thumbnail and the row"
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
