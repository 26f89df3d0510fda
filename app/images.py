"""Image validation, location stripping and thumbnails, with Pillow.

The client's filename and Content-Type are never trusted: the format comes from the file's
magic bytes and a real decode. Only JPEG, PNG, GIF and WebP are accepted (no SVG: it is a
document that can carry script).
"""

from __future__ import annotations

import io
import struct
import tempfile
import threading
import unicodedata
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, ClassVar

from PIL import Image, UnidentifiedImageError

from app.service_errors import ServiceUnavailable

FORMATS = {  # Pillow format -> (content type, extension)
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "GIF": ("image/gif", "gif"),
    "WEBP": ("image/webp", "webp"),
}
_GPS_IFD = 0x8825
# What Pillow raises for a file that is not a decodable image.
_NOT_AN_IMAGE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)
THUMBNAIL_SIZE = (480, 480)

# Cost bounds per file, from a budget of about 100 MB per decode. JPEGs are decoded in draft
# mode (at most 1/64 of their pixels, 3 bytes each), so a baseline JPEG keeps the
# MAX_IMAGE_PIXELS setting (40 MP: under 10 MB); a progressive one holds every DCT coefficient
# (2 bytes per sample of each component) whatever the draft, so its cap follows from its
# sampling (4:2:0, 3 bytes a pixel: 33 MP). PNG, GIF and WebP are decoded in full; the peak
# measured per pixel is 5 bytes for PNG and GIF (the RGBA image, 4, plus the thumbnail's bands)
# and 16 for WebP (libwebp's animation decoder keeps two RGBA canvases, Pillow copies the frame
# twice).
DECODE_BUDGET_BYTES = 100_000_000
FULL_DECODE_PIXELS = {"PNG": 20_000_000, "GIF": 20_000_000, "WEBP": 6_000_000}
# Width × height × frames, every format: what a viewer decodes to play the file. Only the first
# frame is decoded here; the cap keeps what is stored cheap to show (25 frames of 2000×2000).
MAX_TOTAL_PIXELS = 100_000_000
# Frames are counted from the container; counting a GIF's costs about 5 µs a frame.
MAX_FRAMES = 2_000
# Decodes running at once in one worker process: with the caps above, about 200 MB at most, and
# the worker's other threads stay free for other requests while more uploads wait their turn.
MAX_CONCURRENT_DECODES = 2
DECODE_WAIT_SECONDS = 30
_DECODES = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)
# Rows of the decoded image reduced at a time for the thumbnail: bands instead of a copy.
_BAND_BYTES = 4 * 1024 * 1024


class InvalidImage(ValueError):
    """The upload is not an image we accept; the message says why, for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DecoderBusy(ServiceUnavailable):
    """Every decode slot of this worker stayed taken: the server is busy, the file may be fine."""

    code = "image_decoder_busy"
    messages: ClassVar[dict[str, str]] = {
        "image_decoder_busy": "The server is busy checking other images; try again in a moment."
    }


@contextmanager
def _decode_slot() -> Iterator[None]:
    if not _DECODES.acquire(timeout=DECODE_WAIT_SECONDS):
        raise DecoderBusy(f"no decode slot free after {DECODE_WAIT_SECONDS} s")
    try:
        yield
    finally:
        _DECODES.release()


@dataclass
class CheckedImage:
    format: str
    content_type: str
    extension: str
    width: int
    height: int
    data: IO[bytes]  # what to store: the upload itself, or a copy without location metadata
    size: int
    thumbnail: bytes  # JPEG


def sniff_format(head: bytes) -> str | None:
    """The format named by the file's first bytes, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def stored_as_sent(stream: IO[bytes]) -> bool:
    """Whether the upload will be stored byte for byte if it is valid, so its bytes may be sent
    to storage (as uncommitted blocks) while it is validated: a JPEG whose EXIF, which sits
    before the image data and which Pillow reads at open, has no location. Anything else, or
    anything that does not open, is validated first; what is then stored may be a cleaned copy.
    """
    stream.seek(0)
    try:
        if sniff_format(stream.read(16)) != "JPEG":
            return False
        stream.seek(0)
        with Image.open(stream, formats=["JPEG"]) as img:
            return _GPS_IFD not in img.getexif()
    except (Image.DecompressionBombError, *_NOT_AN_IMAGE):
        return False  # check_image says what is wrong
    finally:
        stream.seek(0)


def check_image(stream: IO[bytes], *, max_pixels: int) -> CheckedImage:
    """Validate a seekable upload and return what to store.

    JPEGs are decoded in draft mode (scaled down by up to 8 towards the thumbnail size),
    which still reads all the entropy-coded data, so a truncated file fails while memory
    stays small. Sizes and frame counts are checked from the headers, before any decode.
    """
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    if size == 0:
        raise InvalidImage("empty_file", "The file is empty.")
    fmt = sniff_format(stream.read(16))
    stream.seek(0)
    if fmt is None:
        raise InvalidImage("unsupported_type", "Only JPEG, PNG, GIF and WebP images are accepted.")
    frame_cap = min(max_pixels, FULL_DECODE_PIXELS.get(fmt, max_pixels))
    gif_frames = _gif_frames(stream, MAX_FRAMES) if fmt == "GIF" else 0
    if gif_frames > MAX_FRAMES:
        raise InvalidImage(
            "too_many_frames",
            f"The animation has more than {MAX_FRAMES:,} frames; the most accepted is {MAX_FRAMES:,}.",
        )
    try:
        with _decode_slot(), Image.open(stream, formats=[fmt]) as img:
            width, height = img.size
            if width <= 0 or height <= 0:
                raise InvalidImage("invalid_image", "The image has no pixels.")
            frames = max(gif_frames, 1) if fmt == "GIF" else getattr(img, "n_frames", 1)
            if fmt == "JPEG" and img.info.get("progressive"):
                frame_cap = min(frame_cap, _progressive_jpeg_cap(img))
            _check_cost(fmt, width, height, frame_cap, frames, max_pixels)
            if fmt == "JPEG":
                img.draft("RGB", THUMBNAIL_SIZE)
            img.load()
            exif = img.getexif()
            has_location = _GPS_IFD in exif
            thumbnail = _thumbnail(img, exif)
            data: IO[bytes] = stream
            if has_location:
                data = _without_location(stream, fmt, exif, frames)
                size = data.seek(0, io.SEEK_END)
                data.seek(0)
    except InvalidImage:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own guard fires at open for huge claims
        raise InvalidImage(
            "too_many_pixels", f"The image has far more pixels than the {frame_cap:,} accepted."
        ) from exc
    except _NOT_AN_IMAGE as exc:
        raise InvalidImage(
            "invalid_image", f"The file is not a valid {fmt} image (it may be truncated or corrupt)."
        ) from exc
    stream.seek(0)
    content_type, extension = FORMATS[fmt]
    return CheckedImage(fmt, content_type, extension, width, height, data, size, thumbnail)


def _check_cost(fmt: str, width: int, height: int, frame_cap: int, frames: int, max_pixels: int) -> None:
    """Refuse, naming the limit, what would cost too much to decode: one frame's pixels, then
    pixels × frames (the frame count comes from the container, not from decoding frames)."""
    pixels = width * height
    if pixels > frame_cap:
        name = "WebP" if fmt == "WEBP" else fmt
        why = f" ({name} images are decoded in full)"
        if fmt == "JPEG":
            why = " (progressive JPEGs are held in full)" if frame_cap < max_pixels else ""
        raise InvalidImage(
            "too_many_pixels",
            f"The image is {width}×{height} pixels; "
            f"the largest accepted {name} is {frame_cap:,} pixels{why}.",
        )
    if frames > MAX_FRAMES:
        raise InvalidImage(
            "too_many_frames", f"The animation has {frames:,} frames; the most accepted is {MAX_FRAMES:,}."
        )
    if pixels * frames > MAX_TOTAL_PIXELS:
        raise InvalidImage(
            "too_many_pixels",
            f"The animation has {frames:,} frames of {width}×{height} pixels ({pixels * frames:,} in all); "
            f"the most accepted is {MAX_TOTAL_PIXELS:,} pixels across all frames.",
        )


def _progressive_jpeg_cap(img: Image.Image) -> int:
    """The most pixels whose DCT coefficients (2 bytes a sample) fit the decode budget."""
    layers = getattr(img, "layer", None) or [(0, 1, 1, 0)] * len(img.getbands())
    h_max = max(h for _, h, _, _ in layers)
    v_max = max(v for _, _, v, _ in layers)
    samples_per_pixel = sum(h * v for _, h, v, _ in layers) / (h_max * v_max)
    return int(DECODE_BUDGET_BYTES / (2 * samples_per_pixel))


def _gif_frames(stream: IO[bytes], limit: int) -> int:
    """How many frames the GIF holds, counting no further than limit + 1 (Pillow's n_frames walks
    them all). Stops quietly where the file is cut short: the decode says what is wrong."""
    frames = 0
    try:
        stream.seek(10)
        flags = _read(stream, 1)[0]
        stream.seek(13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0))
        while frames <= limit:
            block = stream.read(1)
            if block == b"\x2c":  # image descriptor: position, size, flags, local colour table
                flags = _read(stream, 9)[8]
                stream.seek((3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1, io.SEEK_CUR)
                frames += 1
            elif block == b"\x21":  # extension: label, then sub-blocks
                stream.seek(1, io.SEEK_CUR)
            elif block not in (b";", b"") and frames == 0:  # Pillow would step over junk a byte at a time
                raise InvalidImage(
                    "invalid_image", "The file is not a valid GIF image (stray bytes before the image)."
                )
            else:  # trailer, or bytes after the frames that no decoder reads
                break
            while size := _read(stream, 1)[0]:  # data sub-blocks, up to a zero length
                stream.seek(size, io.SEEK_CUR)
    except (IndexError, EOFError):
        pass
    finally:
        stream.seek(0)
    return frames


_ORIENTATION_TAG = 0x0112
_ORIENTATION = {  # EXIF orientation -> what turns the image upright (as ImageOps.exif_transpose)
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _thumbnail(img: Image.Image, exif: Image.Exif) -> bytes:
    """A JPEG thumbnail of the loaded (first) frame, made without copying the whole image."""
    thumb = _reduced(img)
    turn = _ORIENTATION.get(exif.get(_ORIENTATION_TAG, 1))
    if turn is not None:
        thumb = thumb.transpose(turn)
    thumb.thumbnail(THUMBNAIL_SIZE)
    if thumb.mode not in ("RGB", "L"):
        thumb = thumb.convert("RGBA")
        background = Image.new("RGB", thumb.size, (255, 255, 255))
        background.paste(thumb, mask=thumb.getchannel("A"))
        thumb = background
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=80, optimize=True)
    return out.getvalue()


def _reduced(img: Image.Image) -> Image.Image:
    """The image box-reduced by a whole factor to about twice the thumbnail size, a band of rows
    at a time: Pillow's reduce and resize convert a whole RGBA image (premultiplied) first."""
    width, height = img.size
    factor = max(1, int(max(width / THUMBNAIL_SIZE[0], height / THUMBNAIL_SIZE[1]) / 2))
    row_bytes = width * 4
    band = factor * max(1, _BAND_BYTES // (row_bytes * factor))
    reduced: Image.Image | None = None
    for top in range(0, height, band):
        part = img.crop((0, top, width, min(top + band, height)))
        if part.mode not in ("L", "RGB", "LA", "RGBA"):
            part = part.convert("RGBA")
        small = part.reduce(factor) if factor > 1 else part
        if reduced is None:
            reduced = Image.new(small.mode, (-(-width // factor), -(-height // factor)))
        reduced.paste(small, (0, top // factor))
    assert reduced is not None  # height > 0
    return reduced


def _without_location(stream: IO[bytes], fmt: str, exif: Image.Exif, frames: int) -> IO[bytes]:
    """The upload with its EXIF minus the GPS block, rewritten in the container: the image data
    (every frame of an animation) is copied as it is, never decoded and encoded again."""
    del exif[_GPS_IFD]
    app1 = exif.tobytes()  # b"Exif\0\0" + TIFF, a JPEG APP1 segment's payload
    out = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115  # returned to caller
    stream.seek(0)
    rewrite = _REWRITE.get(fmt)
    if rewrite is None or (fmt == "JPEG" and frames > 1):  # MPO: later images have their own EXIF
        with Image.open(stream, formats=[fmt]) as img:  # the first image, encoded again
            img.save(out, fmt, exif=app1, **({"quality": "keep"} if fmt == "JPEG" else {}))
    else:
        rewrite(stream, out, app1)
    out.seek(0)
    return out


def _copy(src: IO[bytes], out: IO[bytes], length: int) -> None:
    while length > 0:
        chunk = src.read(min(length, 1024 * 1024))
        if not chunk:
            raise EOFError("truncated")
        out.write(chunk)
        length -= len(chunk)


def _read(src: IO[bytes], length: int) -> bytes:
    data = src.read(length)
    if len(data) != length:
        raise EOFError("truncated")
    return data


def _rewrite_jpeg(src: IO[bytes], out: IO[bytes], app1: bytes) -> None:
    """Segments up to the scan, the first EXIF APP1 replaced and any other dropped; the rest as is."""
    out.write(_read(src, 2))  # SOI
    written = False
    while True:
        marker = _read(src, 2)
        while marker == b"\xff\xff":  # fill bytes before a marker
            marker = b"\xff" + _read(src, 1)
        if marker[0] != 0xFF:
            raise SyntaxError("no JPEG marker")
        if marker[1] in (0xDA, 0xD9):  # start of scan, end of image: image data follows
            out.write(marker)
            start = src.tell()
            end = src.seek(0, io.SEEK_END)
            src.seek(start)
            _copy(src, out, end - start)
            return
        head = _read(src, 2)
        body = _read(src, struct.unpack(">H", head)[0] - 2)
        if marker[1] == 0xE1 and body.startswith(b"Exif\0\0"):
            if not written and len(app1) <= 0xFFFF - 2:
                out.write(b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1)
            written = True
            continue
        out.write(marker + head + body)


def _rewrite_png(src: IO[bytes], out: IO[bytes], app1: bytes) -> None:
    """Chunks copied; eXIf replaced; EXIF kept as text ("Raw profile type exif") dropped."""
    out.write(_read(src, 8))
    while True:
        head = src.read(8)
        if not head:
            return
        if len(head) != 8:
            raise EOFError("truncated")
        length, kind = struct.unpack(">I4s", head)
        if kind == b"eXIf":
            _read(src, length + 4)
            tiff = app1[6:]
            out.write(struct.pack(">I4s", len(tiff), kind) + tiff)
            out.write(struct.pack(">I", zlib.crc32(kind + tiff)))
            continue
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            start = _read(src, min(length, 80))
            if start.split(b"\0", 1)[0] in (b"Raw profile type exif", b"Raw profile type APP1"):
                _read(src, length - len(start) + 4)
                continue
            out.write(head + start)
            _copy(src, out, length - len(start) + 4)
        else:
            out.write(head)
            _copy(src, out, length + 4)
        if kind == b"IEND":
            return


def _rewrite_webp(src: IO[bytes], out: IO[bytes], app1: bytes) -> None:
    """RIFF chunks copied (ANMF frames untouched), EXIF replaced, the RIFF size fixed up."""
    riff, riff_size, webp = struct.unpack("<4sI4s", _read(src, 12))
    out.write(riff + b"\0\0\0\0" + webp)
    while src.tell() < 8 + riff_size:
        head = src.read(8)
        if not head:
            break
        if len(head) != 8:
            raise EOFError("truncated")
        kind, length = struct.unpack("<4sI", head)
        padded = length + (length & 1)
        if kind == b"EXIF":
            _read(src, padded)
            tiff = app1[6:]
            out.write(struct.pack("<4sI", kind, len(tiff)) + tiff + b"\0" * (len(tiff) & 1))
        else:
            out.write(head)
            _copy(src, out, padded)
    end = out.tell()
    out.seek(4)
    out.write(struct.pack("<I", end - 8))
    out.seek(end)


_REWRITE: dict[str, Callable[[IO[bytes], IO[bytes], bytes], None]] = {
    "JPEG": _rewrite_jpeg,
    "PNG": _rewrite_png,
    "WEBP": _rewrite_webp,
}


MAX_FILENAME = 255


def check_filename(name: str | None) -> str | None:
    """The client's filename, kept only for display: refused when it carries a path, control
    characters, is longer than 255 characters or is only dots. None when the client sent none."""
    if not name:
        return None
    if "/" in name or "\\" in name:
        raise InvalidImage("invalid_filename", "The filename must not contain a path (/ or \\).")
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        raise InvalidImage("invalid_filename", "The filename must not contain control characters.")
    if len(name) > MAX_FILENAME:
        raise InvalidImage("invalid_filename", f"The filename is longer than {MAX_FILENAME} characters.")
    if not name.strip(". "):
        raise InvalidImage("invalid_filename", "The filename must not be only dots or spaces.")
    return name.strip()
