"""The dashboard's static files, shipped in the package (no build step, no CDN), read once
and served with their content type, an ETag, and headers that keep the page to itself."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".svg": b"image/svg+xml",
}
# Scripts, styles and calls only from this origin; no inline code, no framing, no forms that
# leave the page; images also as blob: (the evaluation plots, fetched with the admin key).
CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    b"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
# The files change only with the package: browsers may keep them, revalidating by ETag.
CACHE_CONTROL = b"no-cache"


@dataclass(frozen=True, slots=True)
class Asset:
    """One file: its bytes, content type and ETag."""

    body: bytes
    content_type: bytes
    etag: bytes

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers of this file (content length aside)."""
        return [
            (b"content-type", self.content_type),
            (b"cache-control", CACHE_CONTROL),
            (b"etag", self.etag),
            *SECURITY_HEADERS,
        ]


def load_assets() -> dict[str, Asset]:
    """Every file of ``crossroads/dashboard/static`` by name (``index.html`` also as ``""``)."""
    assets: dict[str, Asset] = {}
    for entry in resources.files("crossroads.dashboard").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if suffix not in TYPES:
            continue
        body = entry.read_bytes()
        etag = b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"'
        assets[entry.name] = Asset(body, TYPES[suffix], etag)
    assets[""] = assets["index.html"]
    return assets
