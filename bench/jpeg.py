"""The files the benchmark uploads: large valid JPEGs of random noise (the worst case for the
decoder, per byte), camera-like photos and a screenshot PNG (what people upload), each
generated once and cached.

Noise JPEGs are made strip by strip so the generator stays small.

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

from PIL import Image, ImageChops, ImageDraw

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


# Camera-like photos: smooth gradients (sky, walls, out-of-focus areas) plus sensor-like noise in
# each channel, at quality 90 with 4:2:0 chroma, what phone and camera JPEGs use. A noise of
# sigma 12 puts a 48-megapixel photo near 16 MB, as the large photos of phone cameras are.
CAMERA_NOISE_SIGMA = 12


def _camera_like(width: int, height: int) -> Image.Image:
    gradient = Image.linear_gradient("L")
    channels = (
        gradient.rotate(30, resample=Image.Resampling.BICUBIC),
        Image.radial_gradient("L"),
        gradient.transpose(Image.Transpose.ROTATE_90),
    )
    noisy = [
        ImageChops.add(
            channel.resize((width, height), Image.Resampling.BICUBIC),
            Image.effect_noise((width, height), CAMERA_NOISE_SIGMA),
            offset=-128,  # the noise is centred on 128
        )
        for channel in channels
    ]
    return Image.merge("RGB", noisy)


def write_camera_jpeg(path: Path, width: int, height: int) -> Path:
    tmp = path.with_suffix(".part")
    _camera_like(width, height).save(tmp, "JPEG", quality=90, subsampling="4:2:0")
    tmp.replace(path)
    return path


def camera_jpeg(cache_dir: Path, megapixels: float) -> Path:
    """A cached camera-like JPEG of about `megapixels` at 3:2 (24 MP: 6000×4000, 48 MP:
    8000×6000 at 4:3, as phone sensors are), generated on first use (~10 s for 48)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"camera-{megapixels:g}MP.jpg"
    if not path.exists():
        aspect = 4 / 3 if megapixels >= 48 else 3 / 2
        height = int(math.sqrt(megapixels * 1e6 / aspect)) // 8 * 8
        write_camera_jpeg(path, int(height * aspect) // 8 * 8, height)
    return path


def write_screenshot_png(path: Path, width: int = 2880, height: int = 1800) -> Path:
    """A desktop screenshot's worth of PNG: flat panels, lines of text and a photo."""
    image = Image.new("RGB", (width, height), (246, 247, 249))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 96), fill=(32, 41, 64))
    draw.rectangle((0, 96, 480, height), fill=(236, 238, 242))
    for row in range(40):
        top = 140 + row * 40
        draw.text((40, top), f"Folder {row:02d}", fill=(40, 40, 48))
        draw.text(
            (540, top), f"photo-{row:04d}.jpg  modified today  {row * 37 % 900 + 100} KB", fill=(20, 20, 24)
        )
        draw.line((520, top + 30, width - 40, top + 30), fill=(220, 222, 228))
    image.paste(
        _camera_like(width * 5 // 12, height * 4 // 9), (width * 13 // 24, height * 8 // 15)
    )  # a photo
    tmp = path.with_suffix(".part")
    image.save(tmp, "PNG")
    tmp.replace(path)
    return path


def screenshot_png(cache_dir: Path, width: int = 2880, height: int = 1800) -> Path:
    """A cached screenshot PNG (2880×1800 by default: a laptop's retina screen)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"screenshot-{width}x{height}.png"
    if not path.exists():
        write_screenshot_png(path, width, height)
    return path
