"""Crafted images cost bounded time: each is refused, naming the limit, or accepted within
seconds, and the app keeps answering other requests while it checks them."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable

import requests
from PIL import Image

from devstack.appserver import Site
from tests.integration.client import AppClient
from tests.unit.test_images import animated_webp, exif_with_gps, rgba_png


def test_crafted_files_are_refused_within_seconds(signed_in: AppClient):
    crafted = [
        ("anim.webp", animated_webp(200, 2000, exif_with_gps()), "image/webp", "across all frames"),
        ("large.png", rgba_png(8000, 5000), "image/png", "20,000,000 pixels"),
    ]
    for name, data, content_type, limit in crafted:
        started = time.monotonic()
        response = signed_in.upload((name, data, content_type))
        assert time.monotonic() - started < 5
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "too_many_pixels"
        assert limit in response.json()["message"]
    assert signed_in.photos()["photos"] == []


def test_an_animation_is_stored_with_all_its_frames_and_without_its_location(signed_in: AppClient):
    data = animated_webp(20, 1000, exif_with_gps())
    started = time.monotonic()
    response = signed_in.upload(("anim.webp", data, "image/webp"))
    assert time.monotonic() - started < 5
    assert response.status_code == 201, response.text
    photo = response.json()["photos"][0]
    stored = requests.get(photo["url"], timeout=10).content
    assert photo["size"] == len(stored)
    with Image.open(io.BytesIO(stored)) as img:
        assert getattr(img, "n_frames", 1) == 20
        assert 0x8825 not in img.getexif()


def test_the_app_answers_while_it_checks_large_images(
    signed_in: AppClient, app_server: Site, client_factory: Callable[..., AppClient]
):
    png = rgba_png(4000, 4000)  # 16 MP, decoded in full: a few tenths of a second each
    files = [(f"p{i}.png", png, "image/png") for i in range(8)]
    done: list[requests.Response] = []
    upload = threading.Thread(target=lambda: done.append(signed_in.upload(*files)))
    prober = client_factory(app_server)
    upload.start()
    latencies = []
    while upload.is_alive():
        started = time.monotonic()
        assert prober.get("/healthz").status_code == 200
        latencies.append(time.monotonic() - started)
        time.sleep(0.05)
    upload.join()
    assert done[0].status_code == 201, done[0].text
    assert len(done[0].json()["photos"]) == 8
    assert len(latencies) >= 3
    assert max(latencies) < 1
