"""Blobs over HTTP: GET and HEAD with Range, ETag and long-lived caching.

Werkzeug's conditional responses give single-range 206s, 416 for unsatisfiable
ranges, If-None-Match and If-Range; waitress streams the file (wsgi.file_wrapper)
so nothing is read whole into memory.
"""

from __future__ import annotations

from flask import Blueprint, abort, send_file

from content_cache.blobstore import SHA256_RE

from .context import library

bp = Blueprint("media", __name__)
ONE_YEAR = 365 * 24 * 3600


def _media_type(sha256: str) -> str | None:
    lib = library()
    for channel in lib.active():
        cat = lib.catalog(channel)
        if cat is not None and (res := cat.resource_by_sha256(sha256)):
            return res["media_type"]
    return None


@bp.route("/blobs/<sha256>")
def blob(sha256: str):
    """A blob named by an active release; 404 for anything else."""
    if not SHA256_RE.match(sha256):
        abort(404)
    media_type = _media_type(sha256)
    path = library().store.path_for(sha256)
    if media_type is None or not path.is_file():
        abort(404)
    response = send_file(path, mimetype=media_type, conditional=True, etag=sha256,
                         max_age=ONE_YEAR)
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    response.headers["Accept-Ranges"] = "bytes"
    return response
