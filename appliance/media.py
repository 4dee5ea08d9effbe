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

The body is the open file handed to waitress's ``wsgi.file_wrapper``, positioned at
the range's start with Content-Length the range's length: waitress then sends it
from its I/O thread in socket-buffer-sized chunks, so no worker thread waits on a
slow tablet and nothing is read whole into memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

from flask import Blueprint, Response, abort, request

from content_cache.blobstore import SHA256_RE

from .context import library

bp = Blueprint("media", __name__)
ONE_YEAR = 365 * 24 * 3600
CACHE_CONTROL = f"public, max-age={ONE_YEAR}, immutable"
BLOCK = 256 * 1024
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.I)


def _media_type(sha256: str) -> str | None:
    lib = library()
    for channel in lib.active():
        cat = lib.catalog(channel)
        if cat is not None and (res := cat.resource_by_sha256(sha256)):
            return res["media_type"]
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
    """A blob named by an active release; 404 for anything else."""
    if not SHA256_RE.match(sha256):
        abort(404)
    media_type = _media_type(sha256)
    path = library().store.path_for(sha256)
    if media_type is None or not path.is_file():
        abort(404)
    size = path.stat().st_size
    headers = {"ETag": f'"{sha256}"', "Cache-Control": CACHE_CONTROL,
               "Accept-Ranges": "bytes"}

    inm = request.headers.get("If-None-Match")
    if inm is not None and _etag_matches(inm, sha256):
        return Response(status=304, headers=headers)

    rng = parse_single_range(request.headers.get("Range"), size)
    if_range = request.headers.get("If-Range")
    if rng is not None and if_range is not None and if_range.strip() != f'"{sha256}"':
        rng = None
    if rng == "unsatisfiable":
        return Response(status=416, headers=dict(headers, **{"Content-Range": f"bytes */{size}"}))

    if isinstance(rng, tuple):
        start, end = rng
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    else:
        start, end, status = 0, size - 1, 200
    length = end - start + 1
    headers["Content-Length"] = str(length)

    f = open(path, "rb")
    if request.method == "HEAD":
        f.close()
        body: object = ()
    else:
        f.seek(start)
        wrapper = request.environ.get("wsgi.file_wrapper")
        body = wrapper(f, BLOCK) if wrapper is not None else _limited(f, length)
    response = Response(body, status=status, mimetype=media_type, headers=headers,
                        direct_passthrough=True)
    response.automatically_set_content_length = False
    return response
