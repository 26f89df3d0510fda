"""Location metadata outside the EXIF Pillow reads: XMP in JPEG, PNG and WebP, PNG text profiles,
and the further pictures of a multi-picture JPEG (MPO). Every file is made here; what is stored
is read again with Pillow and searched byte by byte."""

import io
import struct
import zlib

import pytest
from PIL import Image

from app.images import MAX_PICTURES, check_image, stored_as_sent

GPS = {1: "N", 2: (52.0, 22.0, 0.0), 3: "E", 4: (4.0, 53.0, 0.0)}
XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\0"
XMP_EXTENSION = b"http://ns.adobe.com/xmp/extension/\0"


def xmp(properties: str, *, attributes: str = "") -> bytes:
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"'
        f" {attributes}>{properties}"
        "<dc:rights><rdf:Alt><rdf:li xml:lang='x-default'>© Photoshare</rdf:li></rdf:Alt></dc:rights>"
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


LOCATED_XMP = {
    "attributes": xmp("", attributes='exif:GPSLatitude="52,22.0N" exif:GPSLongitude="4,53.0E"'),
    "elements": xmp("<exif:GPSLatitude>52,22.0N</exif:GPSLatitude><exif:GPSAltitude>3/1</exif:GPSAltitude>"),
    "default namespace": xmp('<GPSLongitude xmlns="http://ns.adobe.com/exif/1.0/">4,53.0E</GPSLongitude>'),
    "other prefix": xmp('<e:GPSLatitude xmlns:e="http://ns.adobe.com/exif/1.0/">52,22.0N</e:GPSLatitude>'),
    "city": xmp("<photoshop:City>Amsterdam</photoshop:City>"),
}
PLAIN_XMP = xmp("<dc:description>A trip to the city, no GPS</dc:description>")
LOCATION_MARKERS = (b"GPSLatitude", b"GPSLongitude", b"GPSAltitude", b"City>")


def exif(*, gps: bool) -> Image.Exif:
    tags = Image.Exif()
    tags[0x010F] = "PhotoshareCam"
    if gps:
        tags[0x8825] = GPS
    return tags


def picture(colour=(10, 120, 200)) -> Image.Image:
    return Image.new("RGB", (80, 60), colour)


def stored(data: bytes) -> bytes:
    checked = check_image(io.BytesIO(data), max_pixels=1_000_000)
    content = checked.data.read()
    assert checked.size == len(content)
    return content


def assert_no_location(content: bytes) -> None:
    """No GPS in any picture's or frame's EXIF or XMP, and none of XMP's location names anywhere."""
    for marker in LOCATION_MARKERS:
        assert marker not in content
    with Image.open(io.BytesIO(content)) as img:
        for frame in range(getattr(img, "n_frames", 1)):
            img.seek(frame)
            assert 0x8825 not in img.getexif()
            assert b"GPS" not in img.info.get("xmp", b"")


def jpeg_segment(data: bytes, start: bytes) -> tuple[int, int]:
    """Where the (first) segment whose payload begins with start lies, marker included."""
    at = data.index(start) - 4
    return at, at + 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]


def image_data(data: bytes) -> bytes:
    """A JPEG picture's scans: from its first start of scan to its end."""
    return data[data.index(b"\xff\xda") : data.index(b"\xff\xd9", data.index(b"\xff\xda")) + 2]


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB").tobytes()


# --- JPEG XMP -----------------------------------------------------------------------------


@pytest.mark.parametrize("packet", LOCATED_XMP.values(), ids=LOCATED_XMP.keys())
def test_a_jpeg_loses_only_its_xmp_segment_when_it_names_a_location(packet):
    data = io.BytesIO()
    picture().save(data, "JPEG", exif=exif(gps=False), xmp=packet, quality=90)
    data = data.getvalue()
    assert not stored_as_sent(io.BytesIO(data))
    content = stored(data)
    start, end = jpeg_segment(data, XMP_HEADER)
    assert content == data[:start] + data[end:]
    assert_no_location(content)
    assert Image.open(io.BytesIO(content)).getexif()[0x010F] == "PhotoshareCam"


@pytest.mark.parametrize("progressive", [False, True])
def test_a_jpeg_keeps_its_scans_when_exif_and_xmp_lose_their_location(progressive):
    data = io.BytesIO()
    picture().save(data, "JPEG", exif=exif(gps=True), xmp=LOCATED_XMP["elements"], progressive=progressive)
    data = data.getvalue()
    content = stored(data)
    assert image_data(content) == image_data(data)
    assert content.endswith(image_data(data))
    assert XMP_HEADER not in content
    assert_no_location(content)
    assert pixels(content) == pixels(data)


def test_a_jpeg_with_xmp_without_location_is_stored_as_sent():
    data = io.BytesIO()
    picture().save(data, "JPEG", exif=exif(gps=False), xmp=PLAIN_XMP)
    data = data.getvalue()
    assert stored_as_sent(io.BytesIO(data))
    assert stored(data) == data


def extended_xmp(main: bytes, extension: bytes, split: int) -> list[bytes]:
    """APP1 segments: the main packet, then the extension in two parts cut at split, the second
    written first (parts may come in any order)."""
    guid = b"0123456789ABCDEF0123456789ABCDEF"
    parts = [(0, extension[:split]), (split, extension[split:])]
    payloads = [XMP_HEADER + main] + [
        XMP_EXTENSION + guid + struct.pack(">II", len(extension), offset) + part
        for offset, part in reversed(parts)
    ]
    return [b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload for payload in payloads]


def test_gps_in_extended_xmp_is_found_across_the_parts_and_every_xmp_segment_dropped():
    plain = io.BytesIO()
    picture().save(plain, "JPEG", exif=exif(gps=False))
    plain = plain.getvalue()
    extension = xmp("<exif:GPSLatitude>52,22.0N</exif:GPSLatitude>", attributes='x:a="' + "A" * 500 + '"')
    split = extension.index(b"GPSLatitude") + 3  # the name is cut in two
    segments = b"".join(extended_xmp(PLAIN_XMP, extension, split))
    data = plain[:2] + segments + plain[2:]
    assert not stored_as_sent(io.BytesIO(data))
    content = stored(data)
    assert content == plain
    assert XMP_EXTENSION not in content


def test_extended_xmp_without_location_is_stored_as_sent():
    plain = io.BytesIO()
    picture().save(plain, "JPEG")
    plain = plain.getvalue()
    extension = xmp("<dc:description>" + "GPano " * 200 + "</dc:description>")
    data = plain[:2] + b"".join(extended_xmp(PLAIN_XMP, extension, 300)) + plain[2:]
    assert stored_as_sent(io.BytesIO(data))
    assert stored(data) == data


def test_xmp_kept_inside_the_exif_loses_its_location():
    tags = exif(gps=False)
    tags[0x02BC] = LOCATED_XMP["attributes"]
    data = io.BytesIO()
    picture().save(data, "JPEG", exif=tags)
    data = data.getvalue()
    content = stored(data)
    assert_no_location(content)
    assert image_data(content) == image_data(data)
    assert Image.open(io.BytesIO(content)).getexif()[0x010F] == "PhotoshareCam"


# --- MPO ----------------------------------------------------------------------------------


def mpo(
    pictures: int = 2, *, first_exif: Image.Exif, later_exif: Image.Exif, later_xmp: bytes = b""
) -> bytes:
    """A multi-picture JPEG as cameras write it; the pictures after the first carry their own
    EXIF (and XMP)."""
    later = [picture((200, 10 * i, 10)) for i in range(1, pictures)]
    for img in later:
        img.encoderinfo = {"exif": later_exif.tobytes(), "xmp": later_xmp}
    out = io.BytesIO()
    picture().save(out, "MPO", save_all=True, append_images=later, exif=first_exif)
    data = out.getvalue()
    with Image.open(io.BytesIO(data)) as img:
        assert (img.format, getattr(img, "n_frames", 1)) == ("MPO", pictures)
    return data


def first_picture(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        return data[: getattr(img, "mpinfo")[0xB002][0]["Size"]]  # noqa: B009  # MPO only


def assert_first_picture_only(content: bytes, data: bytes) -> None:
    assert content.count(b"\xff\xd8\xff") == 1
    assert content.count(b"Exif\0\0") <= 1
    assert b"MPF\0" not in content
    assert content.endswith(image_data(first_picture(data)))  # the scans as sent, not encoded again
    with Image.open(io.BytesIO(content)) as img:
        assert img.format == "JPEG"
        assert getattr(img, "n_frames", 1) == 1
    with Image.open(io.BytesIO(data)) as img:
        assert pixels(content) == img.convert("RGB").tobytes()
    assert_no_location(content)


@pytest.mark.parametrize(
    ("first_gps", "later_gps"), [(True, True), (False, True), (True, False)], ids=["all", "later", "first"]
)
def test_an_mpo_with_gps_is_stored_as_its_first_picture(first_gps, later_gps):
    data = mpo(first_exif=exif(gps=first_gps), later_exif=exif(gps=later_gps))
    assert not stored_as_sent(io.BytesIO(data))
    checked = check_image(io.BytesIO(data), max_pixels=1_000_000)
    assert (checked.format, checked.content_type, checked.extension) == ("JPEG", "image/jpeg", "jpg")
    content = checked.data.read()
    assert_first_picture_only(content, data)
    assert Image.open(io.BytesIO(content)).getexif()[0x010F] == "PhotoshareCam"


def test_an_mpo_with_xmp_gps_in_a_later_picture_is_stored_as_its_first_picture():
    data = mpo(3, first_exif=exif(gps=False), later_exif=exif(gps=False), later_xmp=LOCATED_XMP["attributes"])
    assert b"GPSLatitude" in data
    assert_first_picture_only(stored(data), data)


def test_an_mpo_without_location_is_stored_as_sent():
    data = mpo(3, first_exif=exif(gps=False), later_exif=exif(gps=False), later_xmp=PLAIN_XMP)
    assert stored_as_sent(io.BytesIO(data))
    assert stored(data) == data


def test_an_mpo_with_more_pictures_than_are_read_is_stored_as_its_first_picture():
    data = mpo(MAX_PICTURES + 1, first_exif=exif(gps=False), later_exif=exif(gps=False))
    assert not stored_as_sent(io.BytesIO(data))
    assert_first_picture_only(stored(data), data)


def test_an_mpo_whose_index_points_at_no_picture_is_stored_as_its_first_picture():
    data = bytearray(mpo(first_exif=exif(gps=False), later_exif=exif(gps=True)))
    second = data.index(b"\xff\xd8\xff", 2)
    data[second : second + 2] = b"\0\0"  # the index points at bytes that are not a picture
    data = bytes(data)
    content = stored(data)
    assert content == first_picture(data).replace(data[slice(*jpeg_segment(data, b"MPF\0"))], b"")


# --- PNG ----------------------------------------------------------------------------------


def png(*chunks: bytes) -> bytes:
    """A PNG with the chunks after its header."""
    out = io.BytesIO()
    picture().save(out, "PNG")
    data = out.getvalue()
    return data[:33] + b"".join(chunks) + data[33:]


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def text_chunk(kind: bytes, keyword: bytes, text: bytes) -> bytes:
    payload = {
        b"tEXt": text,
        b"zTXt": b"\0" + zlib.compress(text),
        b"iTXt": b"\0\0\0\0" + text,  # not compressed, no language, no translated keyword
    }[kind]
    if kind == b"iTXt" and keyword == b"compressed":
        keyword, payload = b"XML:com.adobe.xmp", b"\1\0\0\0" + zlib.compress(text)
    return png_chunk(kind, keyword + b"\0" + payload)


def png_chunks(data: bytes) -> list[bytes]:
    chunks, at = [], 8
    while at < len(data):
        length = struct.unpack(">I", data[at : at + 4])[0]
        chunks.append(data[at : at + 12 + length])
        at += 12 + length
    return chunks


def raw_profile(name: str, data: bytes) -> bytes:
    """EXIF or XMP as ImageMagick keeps it in PNG text: name, length, then hex in lines of 72."""
    digits = data.hex()
    lines = "\n".join(digits[i : i + 72] for i in range(0, len(digits), 72))
    return f"\n{name}\n{len(data):8d}\n{lines}\n".encode()


@pytest.mark.parametrize("keyword", [b"XML:com.adobe.xmp", b"compressed"])
def test_a_png_loses_only_its_xmp_chunk_when_it_names_a_location(keyword):
    data = png(text_chunk(b"iTXt", keyword, LOCATED_XMP["attributes"]))
    with Image.open(io.BytesIO(data)) as img:
        assert b"GPSLatitude" in img.info["xmp"]
    content = stored(data)
    assert content == png()
    assert_no_location(content)


def test_a_png_with_xmp_without_location_is_stored_as_sent():
    data = png(text_chunk(b"iTXt", b"compressed", PLAIN_XMP))
    assert stored(data) == data


@pytest.mark.parametrize("kind", [b"tEXt", b"zTXt"])
def test_gps_in_a_png_exif_text_profile_beside_an_exif_chunk_is_dropped(kind):
    eixf = png_chunk(b"eXIf", exif(gps=False).tobytes()[6:])
    profile = text_chunk(kind, b"Raw profile type exif", raw_profile("exif", exif(gps=True).tobytes()))
    content = stored(png(eixf, profile))
    assert content == png(eixf)
    assert_no_location(content)


def test_a_png_whose_only_exif_is_a_text_profile_keeps_that_exif_without_gps():
    data = png(text_chunk(b"zTXt", b"Raw profile type exif", raw_profile("exif", exif(gps=True).tobytes())))
    with Image.open(io.BytesIO(data)) as img:
        assert 0x8825 in img.getexif()
    content = stored(data)
    chunks = png_chunks(content)
    assert [c for c in chunks if c[4:8] == b"IDAT"] == [c for c in png_chunks(data) if c[4:8] == b"IDAT"]
    assert [c[4:8] for c in chunks] == [b"IHDR", b"eXIf", b"IDAT", b"IEND"]
    assert_no_location(content)
    assert Image.open(io.BytesIO(content)).getexif()[0x010F] == "PhotoshareCam"


def test_gps_in_a_png_xmp_text_profile_is_dropped():
    data = png(text_chunk(b"zTXt", b"Raw profile type xmp", raw_profile("xmp", LOCATED_XMP["elements"])))
    assert stored(data) == png()


def test_a_png_exif_text_profile_without_gps_is_stored_as_sent():
    data = png(text_chunk(b"tEXt", b"Raw profile type exif", raw_profile("exif", exif(gps=False).tobytes())))
    assert stored(data) == data


# --- WebP ---------------------------------------------------------------------------------


def webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, at = [], 12
    while at < len(data):
        kind, length = struct.unpack("<4sI", data[at : at + 8])
        chunks.append((kind, data[at + 8 : at + 8 + length]))
        at += 8 + length + (length & 1)
    return chunks


@pytest.mark.parametrize("gps_in_exif", [False, True])
def test_a_webp_loses_its_xmp_chunk_and_flag_when_it_names_a_location(gps_in_exif):
    data = io.BytesIO()
    picture().save(data, "WEBP", exif=exif(gps=gps_in_exif), xmp=LOCATED_XMP["attributes"], lossless=True)
    data = data.getvalue()
    assert b"XMP " in [kind for kind, _ in webp_chunks(data)]
    content = stored(data)
    assert struct.unpack("<I", content[4:8])[0] == len(content) - 8
    before, after = dict(webp_chunks(data)), dict(webp_chunks(content))
    assert after.keys() == before.keys() - {b"XMP "}
    assert after[b"VP8L"] == before[b"VP8L"]
    assert after[b"VP8X"] == bytes([before[b"VP8X"][0] & ~0x04]) + before[b"VP8X"][1:]
    assert_no_location(content)
    with Image.open(io.BytesIO(content)) as img:
        assert "xmp" not in img.info
        assert img.getexif()[0x010F] == "PhotoshareCam"
    assert pixels(content) == pixels(data)


def test_a_webp_with_xmp_without_location_is_stored_as_sent():
    data = io.BytesIO()
    picture().save(data, "WEBP", exif=exif(gps=False), xmp=PLAIN_XMP)
    data = data.getvalue()
    assert stored(data) == data
