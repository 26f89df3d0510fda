"""Image validation, location stripping and thumbnails, with Pillow.

The client's filename and Content-Type are never trusted: the format comes from the file's
magic bytes and a real decode. Only JPEG, PNG, GIF and WebP are accepted (no SVG: it is a
document that can carry script).
"""

from __future__ import annotations

import binascii
import io
import re
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
# What Pillow, or reading the container, raises for a file that is not a decodable image.
_NOT_AN_IMAGE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error)
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
# The containers' own structure, which Pillow walks in Python a piece at a time: a 20 MB file
# of empty PNG chunks, or of 1-byte GIF sub-blocks, would take seconds and, for a GIF comment,
# hundreds of MB. Real encoders write image data in chunks of 8 KB and more, GIF data in
# sub-blocks of 255 bytes (80,000 for 20 MB), and a few metadata pieces.
MAX_PNG_CHUNKS = 10_000
MAX_GIF_BLOCKS = 200_000
MAX_GIF_EXTENSION_BLOCKS = 10_000
# Decodes running at once in one worker process: with the caps above, about 200 MB at most, and
# the worker's other threads stay free for other requests while more uploads wait their turn.
MAX_CONCURRENT_DECODES = 2
DECODE_WAIT_SECONDS = 30
_DECODES = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)
# Rows of the decoded image reduced at a time for the thumbnail: bands instead of a copy.
_BAND_BYTES = 4 * 1024 * 1024
# Read for the decoder at a time (Pillow reads 64 KiB): each read is a return to Python, which
# must take the GIL back from the threads receiving and staging the same upload.
DECODE_READ_BYTES = 1024 * 1024


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


_slot = threading.local()  # whether this thread holds a decode slot now


def _take_slot() -> None:
    if not _DECODES.acquire(timeout=DECODE_WAIT_SECONDS):
        raise DecoderBusy(f"no decode slot free after {DECODE_WAIT_SECONDS} s")
    _slot.held = True


def _give_slot() -> None:
    if getattr(_slot, "held", False):
        _slot.held = False
        _DECODES.release()


@contextmanager
def _decode_slot() -> Iterator[None]:
    _take_slot()
    try:
        yield
    finally:
        _give_slot()


@contextmanager
def decode_paused() -> Iterator[None]:
    """This thread's decode slot given back while its decode waits for bytes still arriving,
    taken again before it goes on. Only for a decode that holds little meanwhile: a baseline
    JPEG in draft mode (`checked_as_it_arrives`), whose image is at most 1/64 of its pixels."""
    if not getattr(_slot, "held", False):
        yield
        return
    _give_slot()
    yield  # a wait that raises (the upload failed) ends the decode: no slot is taken again
    _take_slot()


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
    to storage (as uncommitted blocks) while it is validated: a JPEG whose metadata, which sits
    before the image data of each of its pictures, names no location. Anything else, or
    anything that does not open, is validated first; what is then stored may be a cleaned copy.
    """
    stream.seek(0)
    try:
        if sniff_format(stream.read(16)) != "JPEG":
            return False
        stream.seek(0)
        with Image.open(stream, formats=["JPEG"]) as img:
            return not _has_location(stream, "JPEG", img.getexif())
    except (Image.DecompressionBombError, *_NOT_AN_IMAGE):
        return False  # check_image says what is wrong
    finally:
        stream.seek(0)


def may_be_stored_as_sent(stream: IO[bytes]) -> bool:
    """Whether the upload's bytes are worth sending to storage (as uncommitted blocks) while it
    is validated: a JPEG that `stored_as_sent` clears, or a PNG, GIF or WebP, whose location
    metadata may follow the image data, so that only the end of the check tells (the blocks
    are then dropped for a cleaned copy). Not a file whose first bytes name no accepted format."""
    stream.seek(0)
    fmt = sniff_format(stream.read(16))
    stream.seek(0)
    if fmt == "JPEG":
        return stored_as_sent(stream)
    return fmt is not None


def checked_as_it_arrives(stream: IO[bytes]) -> bool:
    """Whether `check_image` may run on this file while its bytes still arrive, waiting for
    them: a baseline JPEG, decoded in draft mode, which holds little memory however long it
    waits (with its slot given back, `decode_paused`), or a file refused from its first bytes
    (no accepted format, a JPEG header that does not open). Any other file is checked once it
    is all there: its decode holds the image meanwhile."""
    stream.seek(0)
    try:
        fmt = sniff_format(stream.read(16))
        if fmt != "JPEG":
            return fmt is None
        stream.seek(0)
        with Image.open(stream, formats=["JPEG"]) as img:
            return not img.info.get("progressive")
    except (Image.DecompressionBombError, *_NOT_AN_IMAGE):
        return True
    finally:
        stream.seek(0)


def check_image(stream: IO[bytes], *, max_pixels: int) -> CheckedImage:
    """Validate a seekable upload and return what to store.

    JPEGs are decoded in draft mode (scaled down by up to 8 towards the thumbnail size),
    which still reads all the entropy-coded data, so a truncated file fails while memory
    stays small. Sizes and frame counts are checked from the headers, before any decode.

    The stream is read from the start, and its end asked for only at the end, so it may be
    a file still arriving whose reads wait for its bytes (app/uploads.py).
    """
    stream.seek(0)
    head = stream.read(16)
    if not head:
        raise InvalidImage("empty_file", "The file is empty.")
    fmt = sniff_format(head)
    stream.seek(0)
    if fmt is None:
        raise InvalidImage("unsupported_type", "Only JPEG, PNG, GIF and WebP images are accepted.")
    frame_cap = min(max_pixels, FULL_DECODE_PIXELS.get(fmt, max_pixels))
    if fmt == "PNG":
        _check_png_chunks(stream)
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
            if fmt == "JPEG":  # an MPO's further pictures are not decoded here, nor shown by browsers
                frames = 1
            if fmt == "JPEG" and img.info.get("progressive"):
                frame_cap = min(frame_cap, _progressive_jpeg_cap(img))
            _check_cost(fmt, width, height, frame_cap, frames, max_pixels)
            if fmt == "JPEG":
                img.draft("RGB", THUMBNAIL_SIZE)
            img.decodermaxblock = DECODE_READ_BYTES
            img.load()
            exif = img.getexif()
            thumbnail = _thumbnail(img, exif)
            data: IO[bytes] = stream
            if _has_location(stream, fmt, exif):
                data = _without_location(stream, fmt, exif)
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


def _check_png_chunks(stream: IO[bytes]) -> None:
    """Refuse a PNG of more than MAX_PNG_CHUNKS chunks, counted from their heads alone. Stops
    quietly where the file is cut short: the decode says what is wrong."""
    try:
        stream.seek(8)
        for _ in range(MAX_PNG_CHUNKS):
            head = stream.read(8)
            if len(head) != 8 or head[4:] == b"IEND":
                return
            stream.seek(int.from_bytes(head[:4], "big") + 4, io.SEEK_CUR)
        if len(stream.read(8)) == 8:
            raise InvalidImage(
                "too_many_chunks",
                f"The PNG is made of more than {MAX_PNG_CHUNKS:,} chunks; the most accepted is "
                f"{MAX_PNG_CHUNKS:,}.",
            )
    finally:
        stream.seek(0)


def _gif_frames(stream: IO[bytes], limit: int) -> int:
    """How many frames the GIF holds, counting no further than limit + 1 (Pillow's n_frames walks
    them all), refusing a GIF of more than MAX_GIF_BLOCKS data sub-blocks, or
    MAX_GIF_EXTENSION_BLOCKS of them in extensions (comments, application data). Stops quietly
    where the file is cut short: the decode says what is wrong."""
    frames = blocks = extension_blocks = 0
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
            extension = block == b"\x21"
            while size := _read(stream, 1)[0]:  # data sub-blocks, up to a zero length
                stream.seek(size, io.SEEK_CUR)
                blocks += 1
                extension_blocks += extension
                if blocks > MAX_GIF_BLOCKS or extension_blocks > MAX_GIF_EXTENSION_BLOCKS:
                    cap, where = (
                        (MAX_GIF_BLOCKS, "")
                        if blocks > MAX_GIF_BLOCKS
                        else (MAX_GIF_EXTENSION_BLOCKS, " of metadata (comments, application data)")
                    )
                    raise InvalidImage(
                        "too_many_blocks",
                        f"The GIF is made of more than {cap:,} data blocks{where}; the most accepted "
                        f"is {cap:,}.",
                    )
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


_XMP_TAG = 0x02BC  # XMP kept inside the EXIF (TIFF XMLPacket)
_XMP_JPEG = b"http://ns.adobe.com/xap/1.0/\0"
_XMP_EXTENSION = b"http://ns.adobe.com/xmp/extension/\0"  # then GUID (32), length (4), offset (4)
# Location in XMP, by property name: coordinates in any namespace (exif:GPSLatitude, a drone's
# GpsLongitude, …) and the place names IPTC derives from them (photoshop:City,
# Iptc4xmpExt:LocationShown, …). A name is what follows ":" or "<", so base64 data never
# matches. The packet is searched, not parsed, and a packet that matches is dropped whole
# rather than edited: a false match costs the packet's other metadata, never a location. XMP
# without a location is kept: it carries rights, captions and edits.
_XMP_LOCATION = re.compile(
    rb"[:<](?:\w*(?:gps|latitude|longitude)\w*|city|state|provincestate|country\w*"
    rb"|location\w*|sublocation|worldregion)[\s=>/]",
    re.IGNORECASE,
)
# Metadata read to be searched, at most: larger XMP or text profiles count as naming a location.
_METADATA_LIMIT = 8 * 1024 * 1024
# Pictures of a multi-picture JPEG (MPO: stereo views, an HDR gain map, previews) whose metadata
# is read. One that has more, or names a location in any, is stored as its first picture only.
MAX_PICTURES = 8


def _has_location(stream: IO[bytes], fmt: str, exif: Image.Exif) -> bool:
    """Whether the EXIF Pillow read, or metadata it does not read (XMP, PNG text profiles, the
    further pictures of an MPO), names a location."""
    if _exif_location(exif):
        return True
    scan = _SCAN.get(fmt)  # GIF: Pillow reads no EXIF from it
    stream.seek(0)
    try:
        return scan is not None and scan(stream)
    finally:
        stream.seek(0)


def _exif_location(exif: Image.Exif) -> bool:
    return _GPS_IFD in exif or _xmp_location(exif.get(_XMP_TAG))


def _xmp_location(packet: object) -> bool:
    if isinstance(packet, str):
        packet = packet.encode()
    if not isinstance(packet, bytes):
        return False
    return len(packet) > _METADATA_LIMIT or bool(_XMP_LOCATION.search(packet))


def _without_location(stream: IO[bytes], fmt: str, exif: Image.Exif) -> IO[bytes]:
    """The upload without its location metadata, rewritten in the container: the image data
    (every frame of an animation) is copied as it is, never decoded and encoded again."""
    app1 = None  # the EXIF to write instead of the first one, or None to keep it as it is
    if _exif_location(exif):
        exif.pop(_GPS_IFD, None)
        if _xmp_location(exif.get(_XMP_TAG)):
            del exif[_XMP_TAG]
        app1 = exif.tobytes()  # b"Exif\0\0" + TIFF, a JPEG APP1 segment's payload
    out = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115  # returned to caller
    stream.seek(0)
    _REWRITE[fmt](stream, out, app1)
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


# --- JPEG ---------------------------------------------------------------------------------

# A marker inside entropy-coded data: 0xFF then neither a stuffed 0 nor a restart nor fill.
_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length: TEM, RSTn


def _marker(src: IO[bytes]) -> int:
    marker = _read(src, 2)
    while marker == b"\xff\xff":  # fill bytes before a marker
        marker = b"\xff" + _read(src, 1)
    if marker[0] != 0xFF:
        raise SyntaxError("no JPEG marker")
    return marker[1]


def _segment(src: IO[bytes]) -> bytes:
    """The payload of the segment whose marker was just read."""
    length = struct.unpack(">H", _read(src, 2))[0]
    if length < 2:
        raise SyntaxError("bad JPEG segment length")
    return _read(src, length - 2)


def _copy_scan(src: IO[bytes], out: IO[bytes]) -> int | None:
    """Copy entropy-coded data up to the next marker and return it (read), or None at the end."""
    while block := src.read(1024 * 1024):
        if match := _MARKER_IN_SCAN.search(block):
            out.write(block[: match.start()])
            src.seek(match.end() - len(block), io.SEEK_CUR)
            return block[match.start() + 1]
        if len(block) > 1 and block.endswith(b"\xff"):  # it may start a marker: read it again
            block = block[:-1]
            src.seek(-1, io.SEEK_CUR)
        out.write(block)
    return None


class _XmpSearch:
    """Location names in one picture's XMP: the main packet and its extension, whose parts may
    split a name, so each part's edges are kept to be searched across the joins."""

    def __init__(self) -> None:
        self.found = False
        self._heads: dict[tuple[bytes, int], bytes] = {}
        self._tails: dict[tuple[bytes, int], bytes] = {}

    def add(self, body: bytes) -> None:
        if body.startswith(_XMP_JPEG):
            self.found = self.found or _xmp_location(body[len(_XMP_JPEG) :])
            return
        guid, offset = body[35:67], int.from_bytes(body[71:75], "big")
        part = body[75:]
        self.found = self.found or _xmp_location(part)
        self._heads[guid, offset] = part[:64]
        self._tails[guid, offset + len(part)] = part[-64:]

    def location(self) -> bool:
        return self.found or any(
            _xmp_location(tail + self._heads.get(end, b"")) for end, tail in self._tails.items()
        )


def _is_xmp(marker: int, body: bytes) -> bool:
    return marker == 0xE1 and body.startswith((_XMP_JPEG, _XMP_EXTENSION))


@dataclass
class _Picture:
    exif_location: bool  # or EXIF that does not parse, or an MPF index that does not
    xmp_location: bool
    more: list[int]  # where the further pictures start, from the MPF index


def _picture(src: IO[bytes]) -> _Picture:
    """What the metadata of the JPEG picture starting at src's position says, read up to its
    first scan: EXIF, XMP and, in the first picture of an MPO, the MPF index."""
    if _read(src, 2) != b"\xff\xd8":
        raise SyntaxError("no JPEG picture")
    picture, xmp = _Picture(False, False, []), _XmpSearch()
    while (marker := _marker(src)) not in (0xDA, 0xD9):
        if marker in _STANDALONE:
            continue
        at = src.tell() + 2
        body = _segment(src)
        try:
            if marker == 0xE1 and body.startswith(b"Exif\0\0"):
                exif = Image.Exif()
                exif.load(body)
                picture.exif_location = picture.exif_location or _exif_location(exif)
            elif marker == 0xE2 and body.startswith(b"MPF\0"):
                picture.more = _mpf_pictures(body[4:], at + 4)
        except _NOT_AN_IMAGE:
            picture.exif_location = True
        if _is_xmp(marker, body):
            xmp.add(body)
    picture.xmp_location = xmp.location()
    return picture


def _mpf_pictures(tiff: bytes, base: int) -> list[int]:
    """The file positions of the pictures after the first that an MPF index lists; its offsets
    count from the index's own TIFF header, at base."""
    index = Image.Exif()
    index.load(tiff)
    entries = index.get(0xB002)
    if not isinstance(entries, bytes):
        return []
    order = "<" if tiff.startswith(b"II") else ">"
    offsets = [struct.unpack_from(order + "8xL", entries, at)[0] for at in range(0, len(entries) - 15, 16)]
    return [base + offset for offset in offsets[1:]]


def _jpeg_has_location(src: IO[bytes]) -> bool:
    first = _picture(src)
    if first.exif_location or first.xmp_location or len(first.more) >= MAX_PICTURES:
        return True
    for start in first.more:
        src.seek(start)
        try:
            picture = _picture(src)
        except _NOT_AN_IMAGE:  # no picture where the index says: store the first only
            return True
        if picture.exif_location or picture.xmp_location:
            return True
    return False


def _rewrite_jpeg(src: IO[bytes], out: IO[bytes], app1: bytes | None) -> None:
    """The first picture only, its segments copied but the first EXIF replaced by app1 (when
    given) and others dropped, XMP dropped if it names a location, the MPF index dropped; its
    image data copied as it is, up to its end. An MPO's further pictures each carry their own
    metadata and a browser shows only the first, so the first alone is kept: none of the
    others' location, and none of them decoded or encoded again."""
    drop_xmp = _picture(src).xmp_location
    src.seek(0)
    out.write(_read(src, 2))  # SOI
    exif_seen = False
    marker: int | None = _marker(src)
    while marker is not None and marker != 0xD9:
        if marker in _STANDALONE:
            out.write(bytes((0xFF, marker)))
            marker = _marker(src)
            continue
        body = _segment(src)
        segment = bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body
        if marker == 0xE1 and body.startswith(b"Exif\0\0"):
            if not exif_seen and app1 is None:
                out.write(segment)
            elif not exif_seen and app1 is not None and len(app1) <= 0xFFFF - 2:
                out.write(b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1)
            exif_seen = True
        elif not ((drop_xmp and _is_xmp(marker, body)) or (marker == 0xE2 and body.startswith(b"MPF\0"))):
            out.write(segment)
        marker = _copy_scan(src, out) if marker == 0xDA else _marker(src)
    if marker == 0xD9:
        out.write(b"\xff\xd9")


# --- PNG ----------------------------------------------------------------------------------

_PNG_XMP = (b"XML:com.adobe.xmp", b"Raw profile type xmp")
_PNG_PROFILES = (b"Raw profile type exif", b"Raw profile type APP1", b"Raw profile type xmp")


def _png_chunks(src: IO[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Each chunk's head (length, kind) and whether it names a location, with src at its payload
    for the caller to read or skip with its CRC; the signature is read first."""
    _read(src, 8)
    while head := src.read(8):
        if len(head) != 8:
            raise EOFError("truncated")
        length, kind = struct.unpack(">I4s", head)
        start = src.tell()
        location = kind in (b"tEXt", b"zTXt", b"iTXt") and _png_text_location(src, kind, length)
        src.seek(start)
        yield head, location
        src.seek(start + length + 4)
        if kind == b"IEND":
            return


def _png_text_location(src: IO[bytes], kind: bytes, length: int) -> bool:
    """Whether a text chunk is XMP, or EXIF or XMP as ImageMagick keeps them (hex in a "Raw
    profile type" text), that names a location."""
    start = _read(src, min(length, 80))
    keyword = start.split(b"\0", 1)[0]
    if keyword not in _PNG_XMP + _PNG_PROFILES:
        return False
    if length > _METADATA_LIMIT:
        return True
    text = _png_text(kind, (start + _read(src, length - len(start)))[len(keyword) + 1 :])
    if text is None:
        return True
    if keyword in _PNG_PROFILES:
        try:  # "\n<name>\n<length>\n" then hex, in lines
            text = binascii.unhexlify(b"".join(text.split(b"\n")[3:]))
        except ValueError:
            return True
    if keyword in _PNG_XMP or text.startswith(_XMP_JPEG):
        return _xmp_location(text)
    exif = Image.Exif()
    try:
        exif.load(text)
    except _NOT_AN_IMAGE:
        return True
    return _exif_location(exif)


def _png_text(kind: bytes, data: bytes) -> bytes | None:
    """A text chunk's text (data follows the keyword's NUL), or None if it does not inflate
    within the limit."""
    if kind == b"tEXt":
        return data
    if kind == b"iTXt":  # compressed?, method, language NUL, translated keyword NUL, text
        compressed = data[:1] == b"\1"
        data = data[2:].split(b"\0", 2)[-1]
        if not compressed:
            return data
    else:  # zTXt: method, compressed text
        data = data[1:]
    inflate = zlib.decompressobj()
    try:
        text = inflate.decompress(data, _METADATA_LIMIT)
    except zlib.error:
        return None
    return text if inflate.eof else None


def _png_has_location(src: IO[bytes]) -> bool:
    return any(location for _, location in _png_chunks(src))


def _rewrite_png(src: IO[bytes], out: IO[bytes], app1: bytes | None) -> None:
    """Chunks copied, but eXIf replaced by app1 (when given; added before the image data when
    the EXIF came from a text profile) and text chunks that name a location dropped."""
    out.write(b"\x89PNG\r\n\x1a\n")
    exif_written = app1 is None
    for head, location in _png_chunks(src):
        length, kind = struct.unpack(">I4s", head)
        if kind in (b"eXIf", b"IDAT") and not exif_written:
            assert app1 is not None
            tiff = app1[6:]
            out.write(struct.pack(">I4s", len(tiff), b"eXIf") + tiff)
            out.write(struct.pack(">I", zlib.crc32(b"eXIf" + tiff)))
            exif_written = True
            if kind == b"eXIf":
                continue
        if not location and not (kind == b"eXIf" and app1 is not None):
            out.write(head)
            _copy(src, out, length + 4)


# --- WebP ---------------------------------------------------------------------------------

_VP8X_XMP = 0x04


def _webp_chunks(src: IO[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Each chunk's head (kind, length) and whether it is XMP that names a location, with src at
    its payload for the caller to read or skip with its padding; the RIFF header is read first."""
    riff_size = struct.unpack("<4sI4s", _read(src, 12))[1]
    while src.tell() < 8 + riff_size:
        head = src.read(8)
        if not head:
            return
        if len(head) != 8:
            raise EOFError("truncated")
        kind, length = struct.unpack("<4sI", head)
        start = src.tell()
        location = kind == b"XMP " and (length > _METADATA_LIMIT or _xmp_location(_read(src, length)))
        src.seek(start)
        yield head, location
        src.seek(start + length + (length & 1))


def _webp_has_location(src: IO[bytes]) -> bool:
    return any(location for _, location in _webp_chunks(src))


def _rewrite_webp(src: IO[bytes], out: IO[bytes], app1: bytes | None) -> None:
    """RIFF chunks copied (ANMF frames untouched), but EXIF replaced by app1 (when given) and XMP
    that names a location dropped; the VP8X flags and the RIFF size fixed up."""
    out.write(b"RIFF\0\0\0\0WEBP")  # the size is written last
    vp8x_at = None
    for head, location in _webp_chunks(src):
        kind, length = struct.unpack("<4sI", head)
        padded = length + (length & 1)
        if location:
            if vp8x_at is not None:  # the flags say what the chunks after VP8X hold
                end = out.seek(0, io.SEEK_END)
                out.seek(vp8x_at)
                flags = out.read(1)[0]
                out.seek(vp8x_at)
                out.write(bytes((flags & ~_VP8X_XMP,)))
                out.seek(end)
        elif kind == b"EXIF" and app1 is not None:
            tiff = app1[6:]
            out.write(struct.pack("<4sI", kind, len(tiff)) + tiff + b"\0" * (len(tiff) & 1))
        else:
            if kind == b"VP8X":
                vp8x_at = out.tell() + 8
            out.write(head)
            _copy(src, out, padded)
    end = out.tell()
    out.seek(4)
    out.write(struct.pack("<I", end - 8))
    out.seek(end)


_SCAN: dict[str, Callable[[IO[bytes]], bool]] = {
    "JPEG": _jpeg_has_location,
    "PNG": _png_has_location,
    "WEBP": _webp_has_location,
}
_REWRITE: dict[str, Callable[[IO[bytes], IO[bytes], bytes | None], None]] = {
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
