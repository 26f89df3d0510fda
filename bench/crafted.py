"""Measurement 8: the app's validation of crafted image files, one fresh process per file.

Each file is built here to sit at, or just past, one of the cost bounds in app/images.py (pixels
per frame, pixels × frames, MAX_FRAMES, the per-format full-decode caps) or to make a parser work
hard, within the default MAX_UPLOAD_MB. A fresh process per file warms up on a 1×1 image,
resets its VmHWM, runs what an upload runs (`may_be_stored_as_sent`, `checked_as_it_arrives`,
then `check_image`) and
reports wall time, peak RSS growth (Pillow's C allocations included) and whether the file was
accepted or refused, and why.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import resource
import struct
import time
import traceback
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from app.images import (
    DECODE_BUDGET_BYTES,
    FULL_DECODE_PIXELS,
    MAX_FRAMES,
    MAX_TOTAL_PIXELS,
    InvalidImage,
    check_image,
    checked_as_it_arrives,
    may_be_stored_as_sent,
)
from app.settings import SETTINGS_BY_NAME
from bench.report import Figure, Target
from bench.servers import reset_peak, status_kb

SECONDS_TARGET = 2.0
PEAK_TARGET_MB = 250
CHILD_TIMEOUT = 120.0
# The defaults the app ships with (the benchmark's servers raise MAX_IMAGE_PIXELS for measurement 1).
MAX_PIXELS = int(SETTINGS_BY_NAME["MAX_IMAGE_PIXELS"].default or 0)
MAX_UPLOAD_BYTES = int(SETTINGS_BY_NAME["MAX_UPLOAD_MB"].default or 0) * 1_000_000

# --- builders ---------------------------------------------------------------------------------


def _gps_exif() -> bytes:
    """EXIF (b"Exif\\0\\0" + TIFF) with a GPS block: the stored copy must lose it."""
    exif = Image.Exif()
    exif[0x0131] = "photoshare bench"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (52.0, 22.0, 7.5), 3: "E", 4: (4.0, 53.0, 30.0)})
    return exif.tobytes()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _adam7_bytes(width: int, height: int, row_bytes: Callable[[int], int]) -> int:
    """Filtered bytes of an interlaced image: each of the 7 passes' rows, with their filter byte."""
    total = 0
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2))
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            total += h * (1 + row_bytes(w))
    return total + (height // 2) * (1 + row_bytes(width))  # pass 7: every odd row, whole


def _png(
    path: Path,
    width: int,
    height: int,
    *,
    colour: int = 6,
    depth: int = 8,
    interlaced: bool = False,
    before_data: bytes = b"",
) -> None:
    """A single-colour PNG (every byte zero), its image data deflated as it is generated."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]

    def row_bytes(w: int) -> int:
        return -(-(w * channels * depth) // 8)

    raw = _adam7_bytes(width, height, row_bytes) if interlaced else height * (1 + row_bytes(width))
    deflate = zlib.compressobj(9)
    chunk = bytes(8 * 1024 * 1024)
    data = bytearray()
    while raw > 0:
        data += deflate.compress(chunk[: min(raw, len(chunk))])
        raw -= len(chunk)
    data += deflate.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, int(interlaced))
    with path.open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + before_data)
        out.write(_png_chunk(b"IDAT", bytes(data)) + _png_chunk(b"IEND", b""))


def _png_many_chunks(path: Path) -> None:
    """A 1×1 PNG behind as many empty ancillary chunks as the upload cap holds: Pillow reads
    each chunk, CRC and all, before the image data."""
    empty = _png_chunk(b"pcHk", b"")
    _png(path, 1, 1, before_data=empty * ((MAX_UPLOAD_BYTES - 1000) // len(empty)))


def _webp_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack("<4sI", kind, len(data)) + data + b"\0" * (len(data) & 1)


def _vp8l(width: int, height: int) -> bytes:
    """The VP8L chunk of a single-colour lossless WebP: a few dozen bytes at any size."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 160)).save(out, "WEBP", lossless=True, method=0)
    data = out.getvalue()
    at = data.index(b"VP8L")
    (length,) = struct.unpack("<I", data[at + 4 : at + 8])
    return data[at : at + 8 + length + (length & 1)]


def _u24(value: int) -> bytes:
    return value.to_bytes(3, "little")


def _webp_animation(
    path: Path, *, canvas: tuple[int, int], frame: tuple[int, int], frames: int, exif: bytes = b""
) -> None:
    """An animated WebP, its one encoded frame repeated `frames` times (ANMF chunks)."""
    image = _vp8l(*frame)
    anmf = _webp_chunk(
        b"ANMF", _u24(0) + _u24(0) + _u24(frame[0] - 1) + _u24(frame[1] - 1) + _u24(100) + b"\0" + image
    )
    flags = 0x02 | (0x08 if exif else 0)  # animation, EXIF
    body = _webp_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + _u24(canvas[0] - 1) + _u24(canvas[1] - 1))
    body += _webp_chunk(b"ANIM", b"\xff\xff\xff\xff" + struct.pack("<H", 0)) + anmf * frames
    if exif:
        body += _webp_chunk(b"EXIF", exif[6:])  # WebP stores the TIFF bytes alone
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body)


def _webp_still(path: Path, width: int, height: int) -> None:
    Image.new("RGB", (width, height), (40, 90, 160)).save(path, "WEBP", lossless=True, method=0)


def _gif(path: Path, screen: tuple[int, int], frames: int, *, comment_blocks: int = 0) -> None:
    """A GIF of `frames` 1×1 frames on a `screen`-sized canvas; with `comment_blocks`, a comment
    of that many 1-byte sub-blocks first (each one a step of every GIF parser)."""
    one = io.BytesIO()
    Image.new("P", (1, 1), 0).save(one, "GIF")
    data = one.getvalue()
    start = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)  # after the colour table
    while data[start] == 0x21:  # extensions: label, then sub-blocks up to a zero length
        start += 2
        while data[start]:
            start += 1 + data[start]
        start += 1
    head, frame = bytearray(data[:start]), data[start:-1]  # frame: descriptor and LZW data
    head[6:10] = struct.pack("<HH", *screen)
    comment = b"\x21\xfe" + b"\x01c" * comment_blocks + b"\0" if comment_blocks else b""
    path.write_bytes(bytes(head) + comment + frame * frames + b";")


def _jpeg_sof(data: bytes | bytearray) -> int:
    """Offset of the frame header's height field (SOF0-SOF2)."""
    for marker in (b"\xff\xc2", b"\xff\xc0", b"\xff\xc1"):
        at = data.find(marker)
        if at >= 0:
            return at + 5
    raise RuntimeError("no SOF marker")


def _progressive_jpeg(path: Path, width: int, height: int, *, claimed: tuple[int, int] | None = None) -> None:
    """A progressive 4:2:0 JPEG of grey noise; with `claimed`, its header names that size and the
    data stays that of a `width`×`height` image (a file cut short, as far as a decoder can tell)."""
    noise = Image.effect_noise((width, height), 12).convert("RGB")
    out = io.BytesIO()
    noise.save(out, "JPEG", quality=85, progressive=True, subsampling=2)
    data = bytearray(out.getvalue())
    if claimed is not None:
        at = _jpeg_sof(data)
        data[at : at + 4] = struct.pack(">HH", claimed[1], claimed[0])
    path.write_bytes(bytes(data))


@dataclass(frozen=True)
class Crafted:
    name: str  # file name in the cache
    what: str
    build: Callable[[Path], None]
    quick: bool = False  # in the quick run's smaller set


def _side(pixels: int) -> int:
    """The largest square side whose pixels stay within `pixels`."""
    return int(pixels**0.5)


_PROGRESSIVE_CAP = DECODE_BUDGET_BYTES // 3  # app/images.py: 2 bytes a sample, 1.5 a pixel (4:2:0)
_PNG_SIDE = _side(FULL_DECODE_PIXELS["PNG"])
_WEBP_SIDE = _side(FULL_DECODE_PIXELS["WEBP"])
_JPEG_SIDE = _side(_PROGRESSIVE_CAP)
_GIF_SIDE = _side(MAX_TOTAL_PIXELS // MAX_FRAMES)

CASES = (
    Crafted(
        "webp-200x2000x2000-gps.webp",
        "animated WebP, 200 frames of 2000×2000, GPS EXIF",
        lambda p: _webp_animation(p, canvas=(2000, 2000), frame=(2000, 2000), frames=200, exif=_gps_exif()),
        quick=True,
    ),
    Crafted(
        "webp-25x2000x2000-gps.webp",
        "animated WebP, 25 frames of 2000×2000 (pixels × frames cap), GPS EXIF",
        lambda p: _webp_animation(p, canvas=(2000, 2000), frame=(2000, 2000), frames=25, exif=_gps_exif()),
    ),
    Crafted(
        "webp-still-at-cap.webp",
        f"WebP {_WEBP_SIDE}×{_WEBP_SIDE} (full-decode cap)",
        lambda p: _webp_still(p, _WEBP_SIDE, _WEBP_SIDE),
    ),
    Crafted(
        "webp-canvas-13000.webp",
        "animated WebP, 13000×13000 canvas (under Pillow's bomb error), one 1×1 frame",
        lambda p: _webp_animation(p, canvas=(13000, 13000), frame=(1, 1), frames=1),
        quick=True,
    ),
    Crafted(
        "png-40mp-rgba.png",
        "PNG 8000×5000 RGBA (40 MP), single colour",
        lambda p: _png(p, 8000, 5000),
    ),
    Crafted(
        "png-rgba-at-cap.png",
        f"PNG {_PNG_SIDE}×{_PNG_SIDE} RGBA (full-decode cap), single colour",
        lambda p: _png(p, _PNG_SIDE, _PNG_SIDE),
    ),
    Crafted(
        "png-rgba16-interlaced-at-cap.png",
        f"PNG {_PNG_SIDE}×{_PNG_SIDE} 16-bit RGBA, interlaced (full-decode cap)",
        lambda p: _png(p, _PNG_SIDE, _PNG_SIDE, depth=16, interlaced=True),
    ),
    Crafted(
        "png-20000x20000.png",
        "PNG 20000×20000 (400 MP) single colour, 1 bit a pixel",
        lambda p: _png(p, 20000, 20000, colour=0, depth=1),
        quick=True,
    ),
    Crafted(
        "png-many-chunks.png",
        "PNG 1×1 behind ~1.7 M empty ancillary chunks (upload cap)",
        _png_many_chunks,
    ),
    Crafted(
        "jpeg-progressive-at-cap.jpg",
        f"progressive 4:2:0 JPEG {_JPEG_SIDE}×{_JPEG_SIDE} (progressive cap), noise",
        lambda p: _progressive_jpeg(p, _JPEG_SIDE, _JPEG_SIDE),
    ),
    Crafted(
        "jpeg-progressive-claims-cap.jpg",
        f"progressive JPEG header claiming {_JPEG_SIDE}×{_JPEG_SIDE}, data of 64×64",
        lambda p: _progressive_jpeg(p, 64, 64, claimed=(_JPEG_SIDE, _JPEG_SIDE)),
        quick=True,
    ),
    Crafted(
        "jpeg-progressive-past-cap.jpg",
        f"progressive JPEG header claiming {_JPEG_SIDE + 1}×{_JPEG_SIDE + 1}",
        lambda p: _progressive_jpeg(p, 64, 64, claimed=(_JPEG_SIDE + 1, _JPEG_SIDE + 1)),
    ),
    Crafted(
        "gif-100000-frames.gif",
        "GIF of 100,000 frames",
        lambda p: _gif(p, (16, 16), 100_000),
        quick=True,
    ),
    Crafted(
        "gif-frames-at-caps.gif",
        f"GIF of {MAX_FRAMES:,} frames on {_GIF_SIDE}×{_GIF_SIDE} (frame and pixels × frames caps)",
        lambda p: _gif(p, (_GIF_SIDE, _GIF_SIDE), MAX_FRAMES),
    ),
    Crafted(
        "gif-screen-at-cap.gif",
        f"GIF, 5 frames of 1×1 on a {_PNG_SIDE}×{_PNG_SIDE} screen (full-decode cap)",
        lambda p: _gif(p, (_PNG_SIDE, _PNG_SIDE), 5),
    ),
    Crafted(
        "gif-comment-blocks.gif",
        "GIF with a comment of ~10 M 1-byte sub-blocks (upload cap)",
        lambda p: _gif(p, (16, 16), 1, comment_blocks=(MAX_UPLOAD_BYTES - 1000) // 2),
    ),
)


def build(cache_dir: Path, *, quick: bool) -> list[tuple[Crafted, Path]]:
    """The set's files, made once into `cache_dir` (and kept there)."""
    folder = cache_dir / "crafted"
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for case in CASES:
        if quick and not case.quick:
            continue
        path = folder / case.name
        if not path.exists():
            part = path.with_suffix(".part")
            case.build(part)
            part.rename(path)
        made.append((case, path))
    return made


# --- the measuring child ----------------------------------------------------------------------


def _validate(path: Path, max_pixels: int) -> tuple[bool, str, str]:
    """(accepted, refusal code, message) as the upload view would reach them."""
    with path.open("rb") as stream:
        try:
            may_be_stored_as_sent(stream)
            checked_as_it_arrives(stream)
            image = check_image(stream, max_pixels=max_pixels)
        except InvalidImage as exc:
            return False, exc.code, exc.message
        cleaned = " (stored without its location)" if image.data is not stream else ""
        return True, "", f"{image.format} {image.width}×{image.height}{cleaned}"


def _child(path: Path, max_pixels: int) -> dict[str, Any]:
    """Runs in the file's own process; any failure comes back as text (an exception's pickle
    may not survive the trip)."""
    try:
        return _timed_validation(path, max_pixels)
    except Exception:  # noqa: BLE001  # reported by the parent with the traceback
        return {"error": traceback.format_exc()}


def _timed_validation(path: Path, max_pixels: int) -> dict[str, Any]:
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the check refuses it anyway
    warm = io.BytesIO()
    Image.new("RGB", (1, 1)).save(warm, "PNG")
    check_image(warm, max_pixels=max_pixels)  # imports, Pillow's plugin registry
    pid = os.getpid()
    baseline_kb = status_kb(pid, "VmRSS")
    hwm_reset = reset_peak(pid)
    started = time.perf_counter()
    accepted, code, message = _validate(path, max_pixels)
    seconds = time.perf_counter() - started
    # Without the reset, the peak since the process started: never less than the truth.
    peak_kb = status_kb(pid, "VmHWM") if hwm_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": seconds,
        "peak_growth_mb": max(0, peak_kb - baseline_kb) / 1024,
        "accepted": accepted,
        "code": code,
        "message": message,
        "peak_since": "VmHWM reset after warm-up" if hwm_reset else "process start",
    }


_TIMED_OUT = {
    "seconds": CHILD_TIMEOUT,
    "peak_growth_mb": 0.0,
    "accepted": False,
    "code": "timeout",
    "message": f"no answer within {CHILD_TIMEOUT:g} s",
    "peak_since": "",
}


def _measure_all(paths: list[Path], max_pixels: int, *, at_once: int) -> list[dict[str, Any]]:
    """`_child` for each file in a process of its own, forked from a server that has imported
    the app once (a fresh interpreter spends ~0.7 s importing `app`); `at_once` in parallel."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    pool = context.Pool(at_once, maxtasksperchild=1)
    try:
        pending = [pool.apply_async(_child, (path, max_pixels)) for path in paths]
        results = []
        for path, job in zip(paths, pending, strict=True):
            try:
                result = job.get(timeout=CHILD_TIMEOUT)
            except multiprocessing.TimeoutError:
                result = dict(_TIMED_OUT)
            if "error" in result:
                raise RuntimeError(f"validating {path.name} failed:\n{result['error']}")
            results.append(result)
        pool.close()
    finally:
        pool.terminate()
        pool.join()
    return results


def figures(cache_dir: Path, *, quick: bool, say: Callable[[str], None]) -> list[Figure]:
    """Worst wall time and worst peak RSS growth across the set. The quick run's smaller set is
    validated a few files at a time (its timings are not read); the full one, a file at a time."""
    files = build(cache_dir, quick=quick)
    at_once = (os.cpu_count() or 1) if quick else 1
    results = _measure_all([path for _, path in files], MAX_PIXELS, at_once=at_once)
    detail: dict[str, Any] = {}
    for (case, path), result in zip(files, results, strict=True):
        outcome = "accepted" if result["accepted"] else f"refused ({result['code']})"
        say(
            f"   {case.what} [{path.stat().st_size:,} bytes]: {result['seconds']:.3f} s, "
            f"+{result['peak_growth_mb']:.1f} MB, {outcome}: {result['message']}"
        )
        detail[case.name] = {"what": case.what, "bytes": path.stat().st_size, **result}
    slowest = max(detail, key=lambda k: detail[k]["seconds"])
    largest = max(detail, key=lambda k: detail[k]["peak_growth_mb"])
    common = {
        "files": len(files),
        "refused": sum(not r["accepted"] for r in results),
        "MAX_IMAGE_PIXELS": MAX_PIXELS,
    }
    note = (
        "one fresh process per file: may_be_stored_as_sent, checked_as_it_arrives, check_image, as an"
        " upload runs them;"
        " peak = VmHWM (C allocations included) minus VmRSS after a 1×1 warm-up"
    )
    return [
        Figure(
            8,
            "crafted_worst_seconds",
            "crafted image files: slowest validation",
            detail[slowest]["seconds"],
            "s",
            Target("≤", SECONDS_TARGET),
            {"file": slowest, **common},
            note=note,
            detail=detail,
        ),
        Figure(
            8,
            "crafted_worst_peak",
            "crafted image files: largest peak RSS growth",
            detail[largest]["peak_growth_mb"],
            "MB",
            Target("≤", PEAK_TARGET_MB),
            {"file": largest, **common},
            note=note,
            detail=detail,
        ),
    ]
