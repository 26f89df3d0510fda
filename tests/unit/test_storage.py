"""Read-only links: signed per time window, always valid for at least the TTL."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from app.storage import BlobStore
from devstack.azurite import ACCOUNT_KEY, ACCOUNT_NAME

AZURITE = (
    f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{ACCOUNT_NAME};"
)


def store(now: list[float]) -> BlobStore:
    return BlobStore(container="images", connection_string=AZURITE, link_ttl=900, clock=lambda: now[0])


def expiry(url: str) -> datetime:
    return datetime.fromisoformat(parse_qs(urlsplit(url).query)["se"][0].replace("Z", "+00:00"))


def test_links_are_stable_within_a_window_and_always_valid_for_the_ttl():
    now = [1_800_000_000.0]  # a window boundary (multiple of 450 s)
    blobs = store(now)
    first = blobs.read_url("oid/a b.png")
    assert urlsplit(first).path == "/devstoreaccount1/images/oid/a%20b.png"
    assert parse_qs(urlsplit(first).query)["sp"] == ["r"]
    for offset in (0, 1, 200, 449):
        now[0] = 1_800_000_000.0 + offset
        url = blobs.read_url("oid/a b.png")
        assert url == first
        remaining = expiry(url) - datetime.fromtimestamp(now[0], UTC)
        assert timedelta(seconds=900) <= remaining <= timedelta(seconds=1350)
    now[0] = 1_800_000_450.0
    assert blobs.read_url("oid/a b.png") != first
    assert blobs.read_url("oid/other.png") != blobs.read_url("oid/a b.png")
