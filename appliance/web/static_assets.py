"""Static assets (``/ui/…``) cached by a content hash in their URL.

``url_for('kiosk_ui.static', filename=…)`` gains ``?v=<hash>``, the first 12 hex digits
of the file's SHA-256. A request whose ``v`` is the file's current hash is answered with
``Cache-Control: public, max-age=31536000, immutable``: a tablet keeps the file and asks
for it again only when a new version changes its URL. Without ``v`` (or with an old
one) the answer is the ordinary revalidated one, so nothing stale is ever kept.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from flask import Flask, Response, request

ENDPOINT = "kiosk_ui.static"
IMMUTABLE = "public, max-age=31536000, immutable"
_hashes: dict[str, tuple[tuple[int, int], str]] = {}


def asset_hash(path: str) -> str | None:
    """The file's short content hash (recomputed only when its size or mtime change)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (st.st_mtime_ns, st.st_size)
    known = _hashes.get(path)
    if known and known[0] == key:
        return known[1]
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    _hashes[path] = (key, digest)
    return digest


def install(app: Flask) -> None:
    """Add ``v`` to static URLs and long-lived caching to the answers that carry it."""
    folder = app.blueprints["kiosk_ui"].static_folder
    assert folder, "the kiosk_ui blueprint serves the static files"

    def _file(filename: str) -> str | None:
        full = os.path.realpath(os.path.join(folder, filename))
        return full if full.startswith(os.path.realpath(folder) + os.sep) else None

    @app.url_defaults
    def _add_version(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == ENDPOINT and "v" not in values and values.get("filename"):
            path = _file(values["filename"])
            digest = asset_hash(path) if path else None
            if digest:
                values["v"] = digest

    @app.after_request
    def _cache_forever(response: Response) -> Response:
        given = request.args.get("v")
        if request.endpoint == ENDPOINT and given and response.status_code == 200:
            path = _file((request.view_args or {}).get("filename", ""))
            if path and asset_hash(path) == given:
                response.headers["Cache-Control"] = IMMUTABLE
        return response
