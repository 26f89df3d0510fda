"""The file an upload is received into (app/uploads.py `Spool`): read while it is written."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from PIL import Image

from app import images
from app.images import MAX_CONCURRENT_DECODES, check_image, checked_as_it_arrives, decode_paused
from app.uploads import Spool, UploadAborted


def camera_like_jpeg(progressive: bool = False) -> bytes:
    image = Image.effect_noise((1200, 900), 40).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, progressive=progressive)
    return out.getvalue()


def write_slowly(spool: Spool, data: bytes, *, pieces: int = 20, pause: float = 0.01) -> threading.Thread:
    """Write `data` into `spool` in `pieces`, from another thread, as a request body arrives."""

    def run() -> None:
        step = -(-len(data) // pieces)
        for start in range(0, len(data), step):
            spool.write(data[start : start + step])
            time.sleep(pause)
        spool.finish()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_read_waits_for_the_bytes_it_asks_for():
    spool = Spool()
    reader = spool.reader()
    spool.write(b"abc")
    got: list[bytes] = []
    thread = threading.Thread(target=lambda: got.append(reader.read(6)))
    thread.start()
    time.sleep(0.1)
    assert got == []  # three bytes are not six
    spool.write(b"def")
    thread.join(timeout=5)
    assert got == [b"abcdef"]
    spool.close()


def test_the_end_is_known_only_once_the_file_is_complete():
    spool = Spool()
    reader = spool.reader()
    spool.write(b"12345")
    ends: list[int] = []
    thread = threading.Thread(target=lambda: ends.append(reader.seek(0, io.SEEK_END)))
    thread.start()
    time.sleep(0.1)
    assert ends == []
    spool.write(b"678")
    spool.finish()
    thread.join(timeout=5)
    assert ends == [8]
    reader.seek(6)
    assert reader.read(10) == b"78"  # a read past the end of a complete file is short
    assert reader.read(1) == b""
    spool.close()


def test_readers_keep_their_own_positions():
    spool = Spool()
    spool.write(b"0123456789")
    spool.finish()
    first, second = spool.reader(), spool.reader()
    assert first.read(4) == b"0123"
    assert second.read(2) == b"01"
    assert first.read() == b"456789"
    assert second.tell() == 2
    spool.close()


def test_an_aborted_upload_wakes_every_waiting_reader():
    spool = Spool()
    reader = spool.reader()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            reader.read(100)
        except UploadAborted as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    spool.abort()
    for thread in threads:
        thread.join(timeout=5)
    assert len(errors) == 3
    with pytest.raises(UploadAborted):
        spool.length()
    spool.close()


def test_a_wait_runs_inside_the_readers_pause_and_a_ready_read_does_not():
    spool = Spool()
    reader = spool.reader()
    entered: list[str] = []

    @contextmanager
    def pause() -> Iterator[None]:
        entered.append("pause")
        yield

    reader.pause = pause
    spool.write(b"ready")
    assert reader.read(5) == b"ready"
    assert entered == []
    thread = threading.Thread(target=lambda: reader.read(5))
    thread.start()
    time.sleep(0.05)
    spool.write(b"later")
    thread.join(timeout=5)
    assert entered == ["pause"]
    spool.close()


@pytest.mark.parametrize("progressive", [False, True])
def test_an_image_checked_while_it_arrives_is_checked_as_the_whole_file(progressive: bool):
    data = camera_like_jpeg(progressive)
    whole = check_image(io.BytesIO(data), max_pixels=40_000_000)
    spool = Spool()
    writer = write_slowly(spool, data)
    arriving = check_image(spool.reader(), max_pixels=40_000_000)  # type: ignore[arg-type]
    writer.join()
    assert (arriving.format, arriving.width, arriving.height, arriving.size) == (
        whole.format,
        whole.width,
        whole.height,
        len(data),
    )
    assert arriving.thumbnail == whole.thumbnail
    spool.close()


def test_baseline_jpegs_and_files_refused_from_their_header_are_checked_as_they_arrive():
    assert checked_as_it_arrives(io.BytesIO(camera_like_jpeg()))
    assert not checked_as_it_arrives(io.BytesIO(camera_like_jpeg(progressive=True)))
    png = io.BytesIO()
    Image.new("RGB", (10, 10)).save(png, "PNG")
    assert not checked_as_it_arrives(png)
    assert checked_as_it_arrives(io.BytesIO(b"\xff\xd8\xff" + b"\0" * 64))  # JPEG magic, no JPEG
    assert checked_as_it_arrives(io.BytesIO(b"plain text"))


def test_a_decode_waiting_for_bytes_gives_its_slot_to_another_upload():
    """With every slot taken by decodes waiting on slow clients, another upload still decodes."""
    data = camera_like_jpeg()
    spools = [Spool() for _ in range(MAX_CONCURRENT_DECODES)]
    for spool in spools:
        spool.write(data[: len(data) // 2])  # half of the file, then the client stalls
    waiting: list[threading.Thread] = []
    for spool in spools:
        reader = spool.reader()
        reader.pause = decode_paused
        thread = threading.Thread(target=check_image, args=(reader,), kwargs={"max_pixels": 40_000_000})
        thread.start()
        waiting.append(thread)
    time.sleep(0.3)
    started = time.monotonic()
    check_image(io.BytesIO(data), max_pixels=40_000_000)  # would wait DECODE_WAIT_SECONDS, then fail
    assert time.monotonic() - started < 5
    for spool in spools:
        spool.write(data[len(data) // 2 :])
        spool.finish()
    for thread in waiting:
        thread.join(timeout=10)
        assert not thread.is_alive()
    slots = [images._DECODES.acquire(timeout=0) for _ in range(MAX_CONCURRENT_DECODES)]
    assert all(slots)  # every slot was given back
    for _ in slots:
        images._DECODES.release()
    for spool in spools:
        spool.close()
