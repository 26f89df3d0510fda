import io
import os
import struct
import subprocess
import sys
import time
import zlib

import pytest
from PIL import Image

from app import images
from app.images import (
    FULL_DECODE_PIXELS,
    MAX_CONCURRENT_DECODES,
    MAX_FRAMES,
    MAX_TOTAL_PIXELS,
    CheckedImage,
    DecoderBusy,
    InvalidImage,
    check_filename,
    check_image,
    sniff_format,
    stored_as_sent,
)


def encode(fmt: str, size=(64, 48), mode="RGB", **options) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (200, 30, 30) if mode == "RGB" else None).save(out, fmt, **options)
    return out.getvalue()


def jpeg_with_gps() -> bytes:
    img = Image.new("RGB", (80, 60), (10, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "PhotoshareCam"  # Make
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 0.0), 3: "E", 4: (4.0, 53.0, 0.0)}
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif.tobytes(), quality=90)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "content_type", "ext"),
    [
        ("JPEG", "image/jpeg", "jpg"),
        ("PNG", "image/png", "png"),
        ("GIF", "image/gif", "gif"),
        ("WEBP", "image/webp", "webp"),
    ],
)
def test_accepted_formats_keep_their_bytes(fmt, content_type, ext):
    data = encode(fmt)
    checked = check_image(io.BytesIO(data), max_pixels=10_000)
    assert (checked.content_type, checked.extension) == (content_type, ext)
    assert (checked.width, checked.height) == (64, 48)
    assert checked.size == len(data)
    assert checked.data.read() == data
    assert Image.open(io.BytesIO(checked.thumbnail)).format == "JPEG"


def test_location_is_stripped_and_other_exif_kept():
    checked = check_image(io.BytesIO(jpeg_with_gps()), max_pixels=10_000)
    stored = checked.data.read()
    assert checked.size == len(stored)
    exif = Image.open(io.BytesIO(stored)).getexif()
    assert 0x8825 not in exif
    assert exif[0x010F] == "PhotoshareCam"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"<html><script>alert(1)</script></html>", "unsupported_type"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "unsupported_type"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "invalid_image"),
    ],
)
def test_refused(data, code):
    with pytest.raises(InvalidImage) as err:
        check_image(io.BytesIO(data), max_pixels=10_000)
    assert err.value.code == code


def test_truncated_jpeg_is_refused():
    data = encode("JPEG", size=(400, 300), quality=95)
    with pytest.raises(InvalidImage) as err:
        check_image(io.BytesIO(data[: len(data) // 2]), max_pixels=1_000_000)
    assert err.value.code == "invalid_image"


def test_pixel_cap_is_checked_before_decoding():
    data = encode("PNG", size=(5000, 5000), mode="L")
    with pytest.raises(InvalidImage) as err:
        check_image(io.BytesIO(data), max_pixels=1_000_000)
    assert err.value.code == "too_many_pixels"


def test_sniff():
    assert sniff_format(b"RIFF\0\0\0\0WEBPVP8 ") == "WEBP"
    assert sniff_format(b"GIF89a") == "GIF"
    assert sniff_format(b"BM") is None


@pytest.mark.parametrize("name", ["holiday.jpg", "été 2024.png", ".hidden.gif", "a" * 255])
def test_ordinary_filenames_are_kept(name):
    assert check_filename(name) == name


def test_no_filename():
    assert check_filename(None) is None
    assert check_filename("") is None


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd.jpg",
        "C:\\Users\\me\\cat.png",
        "a\x00b.gif",
        "a\x1fb.gif",
        "line\nbreak.png",
        "...",
        "..",
        ". .",
        "x" * 256,
    ],
)
def test_crafted_filenames_are_refused(name):
    with pytest.raises(InvalidImage) as err:
        check_filename(name)
    assert err.value.code == "invalid_filename"


def test_only_jpegs_without_location_are_stored_as_sent():
    assert stored_as_sent(io.BytesIO(encode("JPEG")))
    assert not stored_as_sent(io.BytesIO(jpeg_with_gps()))
    assert not stored_as_sent(io.BytesIO(encode("PNG")))
    assert not stored_as_sent(io.BytesIO(b"\xff\xd8\xff" + b"\0" * 64))  # JPEG magic, no JPEG
    stream = io.BytesIO(encode("JPEG"))
    stream.seek(5)
    stored_as_sent(stream)
    assert stream.tell() == 0


# --- cost bounds: crafted files are answered fast, in bounded memory -----------------------

GPS = {1: "N", 2: (52.0, 22.0, 0.0), 3: "E", 4: (4.0, 53.0, 0.0)}


def exif_with_gps() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhotoshareCam"
    exif[0x8825] = GPS
    return exif.tobytes()[6:]  # TIFF, as WebP's EXIF and PNG's eXIf chunks hold it


def riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack("<4sI", kind, len(payload)) + payload + b"\0" * (len(payload) & 1)


def animated_webp(frames: int, side: int, exif: bytes) -> bytes:
    """An animation of identical solid frames, each one encoded once and repeated in its own
    ANMF chunk: a few KB however large the frames, the shape of the crafted upload."""
    one = io.BytesIO()
    Image.new("RGB", (side, side), (30, 120, 200)).save(one, "WEBP", lossless=True)
    bitstream = one.getvalue()[12:]
    dims = (side - 1).to_bytes(3, "little") * 2
    anmf = riff_chunk(b"ANMF", b"\0" * 6 + dims + (100).to_bytes(3, "little") + b"\0" + bitstream)
    flags = 0x02 | 0x08  # animation, EXIF
    body = b"WEBP" + riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + dims) + riff_chunk(b"ANIM", b"\0" * 6)
    body += anmf * frames + riff_chunk(b"EXIF", exif)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, at = [], 12
    while at < len(data):
        kind, length = struct.unpack("<4sI", data[at : at + 8])
        chunks.append((kind, data[at + 8 : at + 8 + length]))
        at += 8 + length + (length & 1)
    return chunks


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def rgba_png(width: int, height: int, exif: bytes | None = None) -> bytes:
    """A solid RGBA PNG compressed row by row: small on disk, width × height × 4 bytes decoded."""
    compress = zlib.compressobj()
    row = b"\0" + b"\x10\x20\x30\x40" * width
    idat = b"".join(compress.compress(row) for _ in range(height)) + compress.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    extra = png_chunk(b"eXIf", exif) if exif else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + extra
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        chunks.append((kind, data[at + 8 : at + 8 + length]))
        at += 12 + length
    return chunks


def timed_check(data: bytes, max_pixels: int = 40_000_000):
    started = time.monotonic()
    try:
        return check_image(io.BytesIO(data), max_pixels=max_pixels), time.monotonic() - started
    except InvalidImage as exc:
        return exc, time.monotonic() - started


def peak_memory_mb(path) -> float:
    """Growth of the peak resident size of a fresh interpreter while it checks the file."""
    script = (
        "import io, resource, sys\n"
        "from app.images import check_image\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    check_image(io.BytesIO(data), max_pixels=40_000_000)\n"
        "except ValueError:\n"
        "    pass\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True, timeout=30
    )
    return float(done.stdout)


def test_an_animation_with_too_many_pixels_across_frames_is_refused_fast():
    data = animated_webp(200, 2000, exif_with_gps())  # 800 MP across frames, tens of KB
    assert len(data) < 100_000
    refused, seconds = timed_check(data)
    assert isinstance(refused, InvalidImage)
    assert refused.code == "too_many_pixels"
    assert f"{MAX_TOTAL_PIXELS:,} pixels across all frames" in refused.message
    assert seconds < 2


def test_an_animation_keeps_its_frames_untouched_when_its_location_is_stripped():
    data = animated_webp(20, 1000, exif_with_gps())
    checked, seconds = timed_check(data)
    assert isinstance(checked, CheckedImage)
    assert seconds < 2
    stored = checked.data.read()
    assert checked.size == len(stored)
    frames = [payload for kind, payload in webp_chunks(data) if kind == b"ANMF"]
    assert [payload for kind, payload in webp_chunks(stored) if kind == b"ANMF"] == frames
    with Image.open(io.BytesIO(stored)) as img:
        assert img.n_frames == 20
        assert 0x8825 not in img.getexif()
        assert img.getexif()[0x010F] == "PhotoshareCam"


def test_a_large_rgba_png_is_refused_before_decoding(tmp_path):
    data = rgba_png(8000, 5000)  # 40 MP, 160 MB decoded
    assert len(data) < 1_000_000
    refused, seconds = timed_check(data)
    assert isinstance(refused, InvalidImage)
    assert refused.code == "too_many_pixels"
    assert f"{FULL_DECODE_PIXELS['PNG']:,} pixels" in refused.message
    assert seconds < 1
    path = tmp_path / "large.png"
    path.write_bytes(data)
    assert peak_memory_mb(path) < 20


def test_a_png_under_the_cap_is_checked_without_copies_and_keeps_its_image_data(tmp_path):
    data = rgba_png(4000, 4000, exif=exif_with_gps())  # 16 MP: 64 MB decoded
    checked, seconds = timed_check(data)
    assert isinstance(checked, CheckedImage)
    assert seconds < 3
    stored = checked.data.read()
    assert [c for c in png_chunks(stored) if c[0] == b"IDAT"] == [
        c for c in png_chunks(data) if c[0] == b"IDAT"
    ]
    with Image.open(io.BytesIO(stored)) as img:
        assert 0x8825 not in img.getexif()
    path = tmp_path / "16mp.png"
    path.write_bytes(data)
    assert peak_memory_mb(path) < 100  # the decoded image (64 MB) and small bands, no copy


def test_a_gif_with_too_many_frames_is_refused_without_walking_them_all():
    two = io.BytesIO()
    frames = [Image.new("P", (1, 1), i) for i in range(2)]
    frames[0].save(two, "GIF", save_all=True, append_images=frames[1:], duration=10, optimize=False)
    data = two.getvalue()
    first, second = data.index(b"!\xf9"), data.index(b"!\xf9", data.index(b"!\xf9") + 1)
    gif = data[:first] + data[first:second] * 400_000 + b";"  # 400,000 frames in 10 MB
    refused, seconds = timed_check(gif)
    assert isinstance(refused, InvalidImage)
    assert refused.code == "too_many_frames"
    assert f"{MAX_FRAMES:,}" in refused.message
    assert seconds < 1


def test_a_jpeg_keeps_its_image_data_when_its_location_is_stripped():
    data = jpeg_with_gps()
    stored = check_image(io.BytesIO(data), max_pixels=10_000).data.read()
    scan = data.index(b"\xff\xda")
    assert stored[stored.index(b"\xff\xda") :] == data[scan:]


def test_decodes_wait_for_a_free_slot(monkeypatch):
    monkeypatch.setattr(images, "DECODE_WAIT_SECONDS", 0.2)
    held = [images._DECODES.acquire(timeout=1) for _ in range(MAX_CONCURRENT_DECODES)]
    try:
        assert all(held)
        with pytest.raises(DecoderBusy):
            check_image(io.BytesIO(encode("PNG")), max_pixels=10_000)
    finally:
        for _ in held:
            images._DECODES.release()
    assert check_image(io.BytesIO(encode("PNG")), max_pixels=10_000).format == "PNG"


def test_the_thumbnail_is_turned_upright():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90° clockwise
    data = encode("JPEG", size=(800, 400), exif=exif.tobytes())
    thumbnail = check_image(io.BytesIO(data), max_pixels=1_000_000).thumbnail
    assert Image.open(io.BytesIO(thumbnail)).size == (240, 480)


def test_stray_bytes_before_a_gif_frame_are_refused():
    gif = encode("GIF", size=(1, 1))
    frame = gif.index(b",")
    with pytest.raises(InvalidImage) as err:
        check_image(io.BytesIO(gif[:frame] + b"\x01" * 1_000_000 + gif[frame:]), max_pixels=10_000)
    assert err.value.code == "invalid_image"


def test_a_large_progressive_jpeg_is_refused_before_decoding():
    """Draft mode does not shrink a progressive JPEG's coefficient buffers (3 bytes a pixel at
    4:2:0): 40 MP would need 120 MB. Its header alone is enough to refuse it."""
    data = bytearray(encode("JPEG", size=(64, 48), progressive=True))
    sof = data.index(b"\xff\xc2")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 5000, 8000)
    refused, seconds = timed_check(bytes(data))
    assert isinstance(refused, InvalidImage)
    assert refused.code == "too_many_pixels"
    assert "33,333,333 pixels (progressive JPEGs" in refused.message
    assert seconds < 1


def gif_parts(data: bytes) -> tuple[bytes, bytes, bytes]:
    """A one-frame GIF's header up to its image descriptor (colour table, extensions), the
    descriptor with its code size, and the image data joined from its sub-blocks."""
    at = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while data[at] == 0x21:  # extensions: label, then sub-blocks up to a zero length
        at += 2
        while data[at]:
            at += 1 + data[at]
        at += 1
    head = data[:at]
    at += 10 + ((3 << ((data[at + 9] & 7) + 1)) if data[at + 9] & 0x80 else 0)
    descriptor, at = data[len(head) : at + 1], at + 1  # with the LZW code size
    blocks = []
    while data[at]:
        blocks.append(data[at + 1 : at + 1 + data[at]])
        at += 1 + data[at]
    return head, descriptor, b"".join(blocks)


def gif(head: bytes, descriptor: bytes, lzw: bytes, block: int = 255) -> bytes:
    """The GIF again, its image data in sub-blocks of `block` bytes."""
    pieces = (lzw[i : i + block] for i in range(0, len(lzw), block))
    return head + descriptor + b"".join(bytes([len(p)]) + p for p in pieces) + b"\0;"


def test_a_png_of_countless_empty_chunks_is_refused_fast():
    """20 MB of empty ancillary chunks before a 1×1 image: Pillow reads each, CRC and all, in
    Python (about 9 s here); the chunk count is checked from the heads first."""
    image = rgba_png(1, 1)
    empty = png_chunk(b"pcHk", b"")
    data = image[:33] + empty * (20_000_000 // len(empty)) + image[33:]
    refused, seconds = timed_check(data)
    assert isinstance(refused, InvalidImage) and refused.code == "too_many_chunks"
    assert f"{images.MAX_PNG_CHUNKS:,}" in refused.message
    assert seconds < 1
    ordinary = image[:33] + empty * 100 + image[33:]
    assert isinstance(timed_check(ordinary)[0], CheckedImage)


def test_a_gif_of_countless_tiny_sub_blocks_is_refused_fast():
    """A comment of 10 M 1-byte sub-blocks (20 MB): Pillow joins them one by one (about 7 s
    and 850 MB here). Image data split as finely is refused by the same count; the same data
    in the 255-byte sub-blocks encoders write is accepted."""
    small = io.BytesIO()
    Image.new("P", (1, 1), 0).save(small, "GIF")
    head, descriptor, lzw = gif_parts(small.getvalue())
    comment = b"\x21\xfe" + b"\x01c" * 10_000_000 + b"\0"
    refused, seconds = timed_check(gif(head + comment, descriptor, lzw))
    assert isinstance(refused, InvalidImage) and refused.code == "too_many_blocks"
    assert f"{images.MAX_GIF_EXTENSION_BLOCKS:,} data blocks of metadata" in refused.message
    assert seconds < 1
    ordinary = b"\x21\xfe" + b"\x01c" * 100 + b"\0"
    assert isinstance(timed_check(gif(head + ordinary, descriptor, lzw))[0], CheckedImage)

    noise = io.BytesIO()
    Image.frombytes("L", (700, 700), os.urandom(490_000)).convert("P").save(noise, "GIF")
    head, descriptor, lzw = gif_parts(noise.getvalue())
    assert len(lzw) > images.MAX_GIF_BLOCKS
    assert isinstance(timed_check(gif(head, descriptor, lzw))[0], CheckedImage)
    refused, seconds = timed_check(gif(head, descriptor, lzw, block=1))
    assert isinstance(refused, InvalidImage) and refused.code == "too_many_blocks"
    assert f"more than {images.MAX_GIF_BLOCKS:,} data blocks;" in refused.message
    assert seconds < 1
