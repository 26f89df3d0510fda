import io

import pytest
from PIL import Image

from app.images import InvalidImage, check_filename, check_image, sniff_format, stored_as_sent


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
