"""Blobs over HTTP: GET and HEAD with single ranges, ETag and long-lived caching.

The rules (docs/serving.md):

- ``ETag`` is the blob's sha256 (strong); blobs never change, so every answer is
  ``Cache-Control: public, max-age=31536000, immutable``.
- ``If-None-Match`` matching the ETag (or ``*``) → 304, before any Range.
- One ``Range: bytes=…`` (first-last, first-, or -suffix) → 206 with Content-Range.
  A range that starts past the end, or a zero suffix → 416 with
  ``Content-Range: bytes */SIZE``.
- Several ranges (``bytes=0-1,5-6``), a unit other than bytes, or a Range that does
  not parse are ignored (RFC 9110 §14.2 lets a server do so): 200 with the whole blob.
  Players never ask for several ranges; multipart answers would only add code.
- ``If-Range`` with the ETag honours the Range; anything else (an older ETag, a
  date) sends the whole blob.

No active content runs from a blob on the lesson pages' origin, whatever a release
holds (a publisher's SVG with a script, an ``.html`` file, an app's page opened on its
own): every answer carries ``Content-Security-Policy`` :data:`BLOB_CSP` (``sandbox``
without ``allow-scripts``: no script runs and the document gets an opaque origin, so it
can read nothing of the device's pages and cookies) and ``X-Content-Type-Options:
nosniff``, and the media type is the release's only where the resource's kind allows
it (:data:`KIND_TYPES`); anything else is sent as ``application/octet-stream``.

The body is the open file handed to waitress's ``wsgi.file_wrapper``, positioned at
the range's start with Content-Length the range's length: waitress then sends it
from its I/O thread in socket-buffer-sized chunks, so no worker thread waits on a
slow tablet and nothing is read whole into memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from flask import Blueprint, Response, abort, request
from werkzeug.datastructures import Headers
from werkzeug.utils import get_content_type

from content_cache.blobstore import SHA256_RE
from content_cache.library import Library

from .context import library

bp = Blueprint("media", __name__)
ONE_YEAR = 365 * 24 * 3600
CACHE_CONTROL = f"public, max-age={ONE_YEAR}, immutable"
BLOCK = 256 * 1024
BLOB_PREFIX = "/blobs/"
# Opened on its own, a blob is an inert document with an opaque origin: no script, no
# form, no plugin, no request but for its own pictures and media.
BLOB_CSP = ("sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; "
            "style-src 'unsafe-inline'; frame-ancestors 'self'")
OCTET_STREAM = "application/octet-stream"
# The media types each resource kind may be served as (docs/serving.md).
KIND_TYPES: dict[str, frozenset[str]] = {
    "video": frozenset({"video/mp4", "video/webm", "video/ogg", "video/quicktime"}),
    "audio": frozenset({"audio/mpeg", "audio/mp4", "audio/ogg", "audio/webm", "audio/wav",
                        "audio/x-wav", "audio/aac", "audio/flac", "video/webm"}),
    "pdf": frozenset({"application/pdf"}),
    "html5": frozenset({"application/zip"}),
    "exercise": frozenset({"application/vnd.ketang.exercise+json", "application/json"}),
    "image": frozenset({"image/png", "image/jpeg", "image/gif", "image/webp",
                        "image/svg+xml"}),
}
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.I)


def served_type(kind: str, media_type: str) -> str:
    """The media type a blob is served as: the release's (without parameters) when the
    resource's ``kind`` allows it, else ``application/octet-stream``."""
    bare = media_type.split(";", 1)[0].strip().lower()
    return bare if bare in KIND_TYPES.get(kind, ()) else OCTET_STREAM


def media_type_of(lib: Library, sha256: str) -> str | None:
    """The media type blob ``sha256`` is served as (:func:`served_type` of the first
    active release that names it), or None if none names it."""
    for _channel, cat in lib.catalogs():
        if res := cat.resource_by_sha256(sha256):
            return served_type(res["kind"], res["media_type"])
    return None


def parse_single_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """The (first, last) byte of one ``bytes=`` range within ``size`` bytes.

    Returns None when the header is absent or to be ignored (several ranges, another
    unit, bad syntax) and the string ``"unsatisfiable"`` for a range outside the blob.
    """
    if not header or "," in header:
        return None
    m = _RANGE_RE.match(header)
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        return None
    if first == "":  # suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(first)
    if last != "" and int(last) < start:
        return None  # invalid syntax per RFC 9110: ignored
    if start >= size:
        return "unsatisfiable"
    end = size - 1 if last == "" else min(int(last), size - 1)
    return start, end


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/").strip('"') == etag for t in tags)


@dataclass(frozen=True)
class BlobReply:
    """What to answer for one blob request: status, the exact headers, and which bytes.

    ``length`` is how many bytes from ``start`` the body carries (0: no body).
    """

    status: int
    headers: list[tuple[str, str]]
    start: int = 0
    length: int = 0


def plan_reply(sha256: str, size: int, media_type: str, if_none_match: str | None,
               range_header: str | None, if_range: str | None) -> BlobReply:
    """Apply the rules in this module's docstring to one request for a blob of ``size``.

    Both the Flask view and the fast path (media_fast.py) answer with exactly this, so
    they cannot drift apart. A HEAD gets the same reply as a GET, without the body.
    """
    common = [("ETag", f'"{sha256}"'), ("Cache-Control", CACHE_CONTROL),
              ("Accept-Ranges", "bytes"), ("Content-Security-Policy", BLOB_CSP),
              ("X-Content-Type-Options", "nosniff")]
    if if_none_match is not None and _etag_matches(if_none_match, sha256):
        return BlobReply(304, common)
    rng = parse_single_range(range_header, size)
    if rng is not None and if_range is not None and if_range.strip() != f'"{sha256}"':
        rng = None
    if rng == "unsatisfiable":
        return BlobReply(416, [*common, ("Content-Range", f"bytes */{size}"),
                               ("Content-Length", "0")])
    content_type = ("Content-Type", get_content_type(media_type, "utf-8"))
    if isinstance(rng, tuple):
        start, end = rng
        length = end - start + 1
        return BlobReply(206, [content_type, *common,
                               ("Content-Range", f"bytes {start}-{end}/{size}"),
                               ("Content-Length", str(length))], start, length)
    return BlobReply(200, [content_type, *common, ("Content-Length", str(size))], 0, size)


def open_body(path: str, reply: BlobReply, environ: dict) -> Iterable[bytes]:
    """The WSGI body of ``reply``: the open file, positioned at the range's start, for
    waitress's ``wsgi.file_wrapper`` (or a chunked reader where there is none)."""
    if reply.length == 0 or environ.get("REQUEST_METHOD") == "HEAD":
        return ()
    f = open(path, "rb")  # noqa: SIM115 - closed by the server once sent
    f.seek(reply.start)
    wrapper = environ.get("wsgi.file_wrapper")
    return wrapper(f, BLOCK) if wrapper is not None else _limited(f, reply.length)



def _limited(f: BinaryIO, length: int) -> Iterator[bytes]:
    try:
        while length > 0:
            chunk = f.read(min(BLOCK, length))
            if not chunk:
                break
            length -= len(chunk)
            yield chunk
    finally:
        f.close()


@bp.route("/blobs/<sha256>", methods=["GET", "HEAD"])
def blob(sha256: str):
    """A blob named by an active release; 404 for anything else.

    Under ``ketang serve`` most requests are answered before Flask by media_fast.py,
    with the same :func:`plan_reply`; this view answers the rest (and the tests'
    comparison of both).
    """
    if not SHA256_RE.match(sha256):
        abort(404)
    lib = library()
    media_type = media_type_of(lib, sha256)
    path = str(lib.store.path_for(sha256))
    size = lib.store.checked_size(sha256) if media_type is not None else None
    if media_type is None or size is None:
        abort(404)
    h = request.headers
    reply = plan_reply(sha256, size, media_type, h.get("If-None-Match"), h.get("Range"),
                       h.get("If-Range"))
    response = Response(open_body(path, reply, request.environ), status=reply.status,
                        direct_passthrough=True)
    response.headers = Headers(reply.headers)
    response.automatically_set_content_length = False
    return response
