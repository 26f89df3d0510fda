"""`make bench`: measure photoshare beside the source article's approach, in one run.

Starts the local stack (devstack, as `make dev` does), the app under gunicorn and the naive
app, prints a table and writes every figure with its target to bench/results/latest.json.
Everything started here is stopped at the end, on error and on Ctrl-C or SIGTERM too.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest  # its MonkeyPatch sets and restores this process's environment

from bench import crafted, gallery, identity, session_check, suite, upload
from bench.client import Browser, new_user
from bench.jpeg import camera_jpeg, noise_jpeg, screenshot_png
from bench.plan import FULL, QUICK, Plan
from bench.report import Figure, machine, table, write_json
from bench.servers import naive_server, running, single_worker, started_in_background
from devstack.appserver import PROJECT_ROOT, AppServer
from devstack.fake_identity.client import FakeIdentityClient
from devstack.stack import CA_BUNDLE_VARIABLES, LocalStack

RESULTS = PROJECT_ROOT / "bench" / "results"
MAX_IMAGE_PIXELS = 80_000_000  # the 200 MB noise JPEG is ~49 Mpx; Pillow's own bomb warning is at 89 Mpx


def _production_workers() -> tuple[int, int]:
    """The worker and thread counts app/gunicorn_conf.py picks on this machine."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("WEB_CONCURRENCY", raising=False)
        env.delenv("GUNICORN_THREADS", raising=False)
        from app import gunicorn_conf

        return int(gunicorn_conf.workers), int(gunicorn_conf.threads)


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """This process's environment with `values` set for the block, as it was afterwards."""
    with pytest.MonkeyPatch.context() as env:
        for key, value in values.items():
            env.setenv(key, value)
        yield


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def measure(plan: Plan, cache_dir: Path) -> list[Figure]:
    """Measurements 1-5, 7, 9 and 10 on one local stack; the stack and every server stop before
    returning."""
    _say(f"generating the files to upload (cached in {cache_dir})")
    small_mp, large_mp = plan.camera_mp
    width, height = plan.screenshot
    large_photo = upload.UploadFile(
        "camera_large", f"{large_mp:g} MP photo", camera_jpeg(cache_dir, large_mp)
    )
    upload_files = [
        upload.UploadFile("noise", f"{plan.noise_mb:g} MB noise JPEG", noise_jpeg(cache_dir, plan.noise_mb)),
        upload.UploadFile("camera", f"{small_mp:g} MP photo", camera_jpeg(cache_dir, small_mp)),
        large_photo,
        upload.UploadFile(
            "screenshot", f"{width}×{height} screenshot PNG", screenshot_png(cache_dir, width, height)
        ),
    ]
    memory_files = (noise_jpeg(cache_dir, plan.memory_mb[0]), noise_jpeg(cache_dir, plan.memory_mb[1]))
    warmup_file = noise_jpeg(cache_dir, 0.2)

    figures: list[Figure] = []
    stack = LocalStack()
    try:
        _say("starting PostgreSQL, Azurite and the fake B2C/Graph server")
        stack.start()
        assert stack.fake is not None and stack.bundle_pem is not None
        # This process talks to the fake too (sign-in page, control API), like the tests do.
        with _environ(dict.fromkeys(CA_BUNDLE_VARIABLES, str(stack.bundle_pem))):
            fake = FakeIdentityClient(stack.fake.base_url)
            env = stack.app_env(
                MAX_UPLOAD_MB=str(plan.max_upload_mb),
                MAX_IMAGE_PIXELS=str(MAX_IMAGE_PIXELS),
                AZURE_STORAGE_CONTAINER="images",
            )
            logs = stack.base_dir / "logs"
            app = AppServer(env=env, workers=1, threads=4, log_dir=logs)
            # Measurement 7's second server starts while 5 runs (counts only, no timings).
            uncached = session_check.uncached_server(env=env, log_dir=logs)
            try:
                with running(app), started_in_background(uncached) as uncached_started:
                    _say(f"app: 1 worker at {app.url}; 5. identity economy")
                    app_counts = identity.app_views(app.url, fake, users=plan.users, views=plan.views)

                    _say("1. uploads against their floor")
                    uploader = Browser(app.url, fake.base_url).sign_in(
                        new_user(fake, "local_with_emails_claim")
                    )
                    figures += upload.floor(
                        uploader,
                        app.log_path,
                        stack.azurite.connection_string,
                        "images",
                        upload_files,
                        plan.floor_runs,
                        MAX_IMAGE_PIXELS,
                    )
                    _say(f"9. {large_photo.label} over a {upload.LINK_BITS_PER_SECOND / 1e6:g} Mbit/s link")
                    figures += upload.link(
                        uploader,
                        app.port,
                        stack.azurite.connection_string,
                        stack.azurite.port,
                        "images",
                        large_photo,
                        plan.link_runs,
                    )

                    naive_before = fake.counters()["client_credentials_token"]
                    naive = naive_server(env=env, log_dir=logs)
                    with running(naive):
                        naive_start_tokens = fake.counters()["client_credentials_token"] - naive_before
                        _say(f"naive app: 1 worker at {naive.url}; 5. identity economy, naive")
                        naive_counts = identity.naive_views(
                            naive.url, fake, app_counts["users"], views=plan.views
                        )
                        _say("2. upload memory")
                        figures += upload.memory(
                            uploader,
                            single_worker(app),
                            naive.url,
                            single_worker(naive),
                            memory_files,
                            warmup_file,
                        )
                        uploader.close()
                    figures += identity.figures(
                        app_counts, naive_counts, naive_start_tokens, users=plan.users, views=plan.views
                    )

                    _say(f"3. gallery latency ({plan.gallery_photos:,} photos)")
                    owner = new_user(fake, "local_with_emails_claim")
                    viewer = Browser(app.url, fake.base_url).sign_in(owner)
                    gallery.seed_photos(stack.postgres.url, owner["oid"], plan.gallery_photos)
                    viewer.close()
                    figures += gallery.latency(
                        app.url,
                        viewer.cookie_header,
                        page_size=plan.page_size,
                        requests_per_url=plan.latency_requests,
                        photos=plan.gallery_photos,
                    )
                    _say("7. session check: gallery p50 as shipped and with every request querying")
                    uncached_started()
                    figures += session_check.latency_rise(
                        app.url,
                        uncached.url,
                        viewer.cookie_header,
                        database_url=env["DATABASE_URL"],
                        oid=owner["oid"],
                        page_size=plan.page_size,
                        requests_per_url=plan.latency_requests,
                    )
                workers, threads = _production_workers()
                loaded = AppServer(env=env, workers=workers, threads=threads, log_dir=logs)
                with running(loaded):
                    _say(f"4. throughput: {workers} workers × {threads} threads at {loaded.url}")
                    # Same SECRET_KEY, so the session signed by the first server is valid here.
                    figures += gallery.throughput(
                        loaded.url,
                        viewer.cookie_header,
                        page_size=plan.page_size,
                        connections=plan.load_connections,
                        seconds=plan.load_seconds,
                        runs=plan.load_runs,
                        workers=workers,
                    )
                    _say(f"10. upload capacity: {plan.capacity_clients} clients at once")
                    on_loaded = Browser(loaded.url, fake.base_url)
                    on_loaded.http.cookies.update(viewer.http.cookies)
                    figures += upload.capacity(
                        on_loaded,
                        loaded.pid or 0,
                        loaded.log_path,
                        large_photo,
                        clients=plan.capacity_clients,
                        uploads_each=plan.capacity_uploads_each,
                        workers=workers,
                        threads=threads,
                        max_pixels=MAX_IMAGE_PIXELS,
                    )
            except Exception:  # not on Ctrl-C: then the logs are noise
                for log in sorted(logs.glob("*.log")):
                    tail = log.read_text(errors="replace")[-2000:]
                    print(f"--- last lines of {log.name} ---\n{tail}", file=sys.stderr)
                raise
    finally:
        _say("stopping the local stack")
        stack.stop()
    return figures


def _order(figures: list[Figure]) -> list[Figure]:
    return sorted(figures, key=lambda f: f.number)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves every figure is produced")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json", help="the JSON file to write")
    parser.add_argument(
        "--cache", type=Path, default=RESULTS / "cache", help="where generated JPEGs are kept"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL

    def on_sigterm(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through every `finally`, which stops our processes

    signal.signal(signal.SIGTERM, on_sigterm)  # before devstack would install its own
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    started = time.perf_counter()
    when = datetime.now(UTC).isoformat(timespec="seconds")
    # The suite gets this process's environment as it was, without the fake's CA set below.
    tests = suite.SuiteRun(plan.suite, env=dict(os.environ), timeout=plan.suite_timeout, quick=plan.quick)
    try:
        if plan.quick:  # nothing is read from quick timings: overlap the suite with the rest
            _say(f"6. suite time: pytest {' '.join(plan.suite)}, in the background")
            tests.start()
        figures = measure(plan, args.cache)
        _say("8. crafted image files, each validated in a fresh process")
        figures += crafted.figures(args.cache, quick=plan.quick, say=_say)
        if not plan.quick:  # alone on the machine, after the stack is gone
            _say(f"6. suite time: pytest {' '.join(plan.suite)}")
            tests.start()
        figures += tests.result()
    except KeyboardInterrupt:
        print("\ninterrupted; everything this run started has been stopped", file=sys.stderr)
        return 130
    finally:
        tests.stop()
    figures = _order(figures)
    meta: dict[str, Any] = {
        "mode": "quick" if plan.quick else "full",
        "started_at": when,
        "duration_s": round(time.perf_counter() - started, 1),
        "machine": machine(),
        "load_generator": "wrk" if shutil.which("wrk") else "python threads",
    }
    write_json(args.out, figures, meta)
    print()
    print(table(figures))
    m = meta["machine"]
    print(f"\nmachine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gb']} GB; mode {meta['mode']}")
    failed = [f.key for f in figures if f.passed is False]
    print(f"figures written to {args.out}")
    print(
        f"{len(figures)} figures, {len(failed)} missed their target"
        + (f": {', '.join(failed)}" if failed else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
