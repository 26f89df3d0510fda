"""TLS material for the fake: a throw-away CA (trustme) and a localhost certificate.

MSAL and Graph clients insist on HTTPS, so the fake speaks it for real. Clients trust it by
pointing REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE at `bundle_pem`: the usual public roots plus our
CA, so the same process can still reach real HTTPS sites.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi
import trustme


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files `make_tls` wrote."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path
    bundle_pem: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context serving `cert_pem` (leaf + chain) with `key_pem`."""
        return server_context(self.cert_pem, self.key_pem)


def server_context(certfile: str | os.PathLike[str], keyfile: str | os.PathLike[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(os.fspath(certfile), os.fspath(keyfile))
    return context


def system_trust_bundle() -> Path:
    """The bundle clients would use without us: $REQUESTS_CA_BUNDLE if it exists, else certifi."""
    configured = os.environ.get("REQUESTS_CA_BUNDLE")
    if configured and Path(configured).is_file():
        return Path(configured)
    return Path(certifi.where())


def make_tls(dirpath: str | os.PathLike[str]) -> TlsFiles:
    """Create a CA and a cert for localhost/127.0.0.1 in `dirpath` (created if missing)."""
    directory = Path(dirpath)
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="photoshare fake identity CA")
    leaf = ca.issue_cert("localhost", "127.0.0.1", "::1")

    files = TlsFiles(
        ca_pem=directory / "fake-identity-ca.pem",
        cert_pem=directory / "fake-identity-cert.pem",
        key_pem=directory / "fake-identity-key.pem",
        bundle_pem=directory / "fake-identity-bundle.pem",
    )
    # Read the system bundle first: it may be a bundle this function wrote earlier.
    system = system_trust_bundle().read_text(encoding="utf-8")
    ca.cert_pem.write_to_path(str(files.ca_pem))
    leaf.private_key_pem.write_to_path(str(files.key_pem))
    files.key_pem.chmod(0o600)
    files.cert_pem.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    ca_text = files.ca_pem.read_text(encoding="utf-8")
    files.bundle_pem.write_text(system.rstrip("\n") + "\n" + ca_text, encoding="utf-8")
    return files


def load_or_make_tls(dirpath: str | os.PathLike[str]) -> TlsFiles:
    """Reuse the CA and certificate kept in `dirpath` (so a browser that trusts the CA once keeps
    trusting it across `make dev` runs); create them on first use."""
    directory = Path(dirpath)
    files = TlsFiles(
        ca_pem=directory / "fake-identity-ca.pem",
        cert_pem=directory / "fake-identity-cert.pem",
        key_pem=directory / "fake-identity-key.pem",
        bundle_pem=directory / "fake-identity-bundle.pem",
    )
    if not (files.ca_pem.is_file() and files.cert_pem.is_file() and files.key_pem.is_file()):
        return make_tls(directory)
    system = system_trust_bundle()
    if system.resolve() != files.bundle_pem.resolve():
        ca_text = files.ca_pem.read_text(encoding="utf-8")
        files.bundle_pem.write_text(
            system.read_text(encoding="utf-8").rstrip("\n") + "\n" + ca_text, encoding="utf-8"
        )
    return files
