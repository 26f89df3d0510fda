"""Image validation, location stripping and thumbnails, with Pillow.

The client's filename and Content-Type are never trusted: the format comes from the file's
magic bytes and a real decode. Only JPEG, PNG, GIF and WebP are accepted (no SVG: it is a
document that can carry script).
"""

from __future__ import annotations

import io
import tempfile
import unicodedata
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageOps, UnidentifiedImageError

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


class InvalidImage(ValueError):
    """The upload is not an image we accept; the message says why, for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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
    stays small.
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
    try:
        with Image.open(stream, formats=[fmt]) as img:
            width, height = img.size
            if width <= 0 or height <= 0:
                raise InvalidImage("invalid_image", "The image has no pixels.")
            if width * height > max_pixels:
                raise InvalidImage(
                    "too_many_pixels",
                    f"The image is {width}×{height} pixels; the largest accepted is {max_pixels:,} pixels.",
                )
            if fmt == "JPEG":
                img.draft("RGB", THUMBNAIL_SIZE)
            img.load()
            exif = img.getexif()
            has_location = _GPS_IFD in exif
            thumbnail = _thumbnail(img, exif)
            data: IO[bytes] = stream
            if has_location:
                data = _without_location(stream, fmt, max_pixels)
                size = data.seek(0, io.SEEK_END)
                data.seek(0)
    except InvalidImage:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own guard fires at open for huge claims
        raise InvalidImage(
            "too_many_pixels", f"The image has far more pixels than the {max_pixels:,} accepted."
        ) from exc
    except _NOT_AN_IMAGE as exc:
        raise InvalidImage(
            "invalid_image", f"The file is not a valid {fmt} image (it may be truncated or corrupt)."
        ) from exc
    stream.seek(0)
    content_type, extension = FORMATS[fmt]
    return CheckedImage(fmt, content_type, extension, width, height, data, size, thumbnail)


def _thumbnail(img: Image.Image, exif: Image.Exif) -> bytes:
    thumb = img.copy()
    if exif:
        thumb = ImageOps.exif_transpose(thumb)
    thumb.thumbnail(THUMBNAIL_SIZE)
    if thumb.mode not in ("RGB", "L"):
        thumb = thumb.convert("RGBA")
        background = Image.new("RGB", thumb.size, (255, 255, 255))
        background.paste(thumb, mask=thumb.getchannel("A"))
        thumb = background
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=80, optimize=True)
    return out.getvalue()


def _without_location(stream: IO[bytes], fmt: str, max_pixels: int) -> IO[bytes]:
    """Re-save the image with its EXIF minus the GPS block (JPEG keeps its quantisation)."""
    stream.seek(0)
    out = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115  # returned to caller
    with Image.open(stream, formats=[fmt]) as img:
        exif = img.getexif()
        del exif[_GPS_IFD]
        options: dict[str, object] = {"exif": exif.tobytes()}
        if fmt == "JPEG":
            options["quality"] = "keep"
        elif fmt == "WEBP":
            options["lossless"] = True
        if getattr(img, "n_frames", 1) > 1:
            options["save_all"] = True
        img.save(out, fmt, **options)
    out.seek(0)
    return out


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
