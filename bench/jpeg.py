"""Large valid JPEGs of random noise, made strip by strip so the generator stays small.

Each strip is encoded by Pillow with a restart marker after every MCU row; a restart resets
the DC predictors exactly as the start of a scan does, so the strips' entropy-coded data can be
joined (restart markers renumbered) under one header whose height is patched. Noise at quality
100 without chroma subsampling costs ~4 bytes per pixel: a 200 MB file has ~50 M pixels.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import re
from pathlib import Path

from PIL import Image

MAX_WIDTH = 8192
STRIP_ROWS = 64  # a multiple of the 8-pixel MCU height (4:4:4); small, so sizes land close
_BYTES_PER_PIXEL = 4.1  # measured for noise at quality 100, 4:4:4
_RST = re.compile(rb"\xff[\xd0-\xd7]")
_SOF0 = b"\xff\xc0"
_SOS = b"\xff\xda"


def _noise_strip(width: int, rows: int) -> tuple[bytes, bytes]:
    """(header up to the end of the SOS segment, entropy-coded data) of one noise strip."""
    image = Image.frombytes("RGB", (width, rows), os.urandom(width * rows * 3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=100, subsampling=0, restart_marker_rows=1)
    data = out.getvalue()
    sos = data.index(_SOS)
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    if not data.endswith(b"\xff\xd9"):
        raise RuntimeError("Pillow's JPEG does not end with EOI")
    return data[:start], data[start:-2]


def width_for(target_bytes: int) -> int:
    """About square, like a photo, so the app's draft decode scales it as it would a real one."""
    width = int(math.sqrt(target_bytes / _BYTES_PER_PIXEL)) // 8 * 8
    return max(64, min(MAX_WIDTH, width))


def write_noise_jpeg(path: Path, target_bytes: int) -> Path:
    """Write a baseline JPEG of at least `target_bytes`; memory use is one strip (at most ~4 MB)."""
    width = width_for(target_bytes)
    header, first = _noise_strip(width, STRIP_ROWS)
    strips = max(1, -(-target_bytes // len(first)))
    height = strips * STRIP_ROWS
    if height > 65535:
        raise ValueError(f"{target_bytes} bytes needs {height} rows; JPEG allows 65,535: widen the image")
    sof = header.index(_SOF0)
    header = header[: sof + 5] + height.to_bytes(2, "big") + header[sof + 7 :]
    markers = (bytes((0xFF, 0xD0 + n % 8)) for n in itertools.count())  # RST0..RST7, cycling

    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as out:
        out.write(header)
        for index in range(strips):
            entropy = first if index == 0 else _noise_strip(width, STRIP_ROWS)[1]
            if index:
                out.write(next(markers))  # the restart that joins two strips
            out.write(_RST.sub(lambda _: next(markers), entropy))
        out.write(b"\xff\xd9")
    tmp.replace(path)
    return path


def noise_jpeg(cache_dir: Path, megabytes: float) -> Path:
    """A cached noise JPEG of about `megabytes` MB (10^6 bytes), generated on first use."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"noise-{megabytes:g}MB.jpg"
    if not path.exists():
        write_noise_jpeg(path, int(megabytes * 1_000_000))
    return path
