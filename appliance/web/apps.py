"""HTML5 lesson apps, served on a second origin (another port of the same server).

An app is an ``html5`` resource: a zip whose root holds ``index.html``. Files are
read straight out of the verified zip blob (never unpacked to disk) at
``http://HOST:APPS_PORT/apps/<sha256>/<path in the zip>``.

Isolation (docs/html5-apps.md): the app's origin differs from the lesson pages'
(another port), every answer carries a Content-Security-Policy that confines the
app's network access to its own origin and sandboxes it (``sandbox allow-scripts``:
an opaque origin, so it can read no cookies, not even the ones browsers share
across ports of one host), and the lesson page embeds it in an
``<iframe sandbox="allow-scripts">``.
"""

from __future__ import annotations

import mimetypes
import posixpath
import zipfile
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, abort, request

from content_cache.blobstore import SHA256_RE
from content_cache.library import Library

APP_CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "media-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "sandbox allow-scripts",
])
IFRAME_SANDBOX = "allow-scripts"
ONE_YEAR = 365 * 24 * 3600
CHUNK = 64 * 1024
MAX_MEMBER_BYTES = 200 * 1024 * 1024
ENTRY = "index.html"


def _app_zip(lib: Library, sha256: str) -> Any:
    """The blob path of an html5 resource of an active release, or None."""
    for _channel, cat in lib.catalogs():
        res = cat.resource_by_sha256(sha256)
        if res is not None and res["kind"] == "html5":
            path = lib.store.path_for(sha256)
            return path if path.is_file() else None
    return None


def _member_name(inner: str) -> str | None:
    """The zip member for a URL path, or None if it tries to leave the app."""
    if inner == "" or inner.endswith("/"):
        inner += ENTRY
    if "\\" in inner or "\x00" in inner:
        return None
    norm = posixpath.normpath(inner)
    if norm.startswith(("/", "..")) or norm != inner:
        return None
    return norm


def _stream(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    try:
        with zf.open(info) as f:
            while chunk := f.read(CHUNK):
                yield chunk
    finally:
        zf.close()


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": APP_CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def create_apps_app(library: Library) -> Flask:
    """The WSGI app of the lesson-apps origin (nothing else is served there)."""
    app = Flask(__name__ + ".origin")
    app.url_map.merge_slashes = False   # "//etc/passwd" is refused, not redirected

    @app.route("/apps/<sha256>/", defaults={"inner": ""}, methods=["GET", "HEAD"])
    @app.route("/apps/<sha256>/<path:inner>", methods=["GET", "HEAD"])
    def app_file(sha256: str, inner: str):
        """One file of an app, read from its zip."""
        if not SHA256_RE.match(sha256):
            abort(404)
        path = _app_zip(library, sha256)
        name = _member_name(inner)
        if path is None or name is None:
            abort(404)
        try:
            zf = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile):
            abort(404)
        try:
            info = zf.getinfo(name)
        except KeyError:
            zf.close()
            abort(404)
        if info.is_dir() or info.file_size > MAX_MEMBER_BYTES:
            zf.close()
            abort(404)
        etag = f"{sha256[:32]}-{info.CRC:08x}"
        headers = dict(_headers(), **{
            "ETag": f'"{etag}"', "Content-Length": str(info.file_size),
            "Cache-Control": f"public, max-age={ONE_YEAR}, immutable"})
        mtype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if request.if_none_match.contains(etag):
            zf.close()
            del headers["Content-Length"]
            response = Response(status=304, headers=headers)
        elif request.method == "HEAD":
            zf.close()
            response = Response(status=200, headers=headers, mimetype=mtype)
        else:
            response = Response(_stream(zf, info), headers=headers, mimetype=mtype,
                                direct_passthrough=True)
        response.automatically_set_content_length = False
        return response

    @app.errorhandler(404)
    def not_found(e):
        return Response("没有这个课件文件。No such lesson app file.\n", status=404,
                        mimetype="text/plain", headers=_headers())

    return app


def apps_base(request_host: str, apps_port: int) -> str:
    """Scheme-relative base URL of the apps origin as seen by this request's client."""
    host = request_host
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return f"//{host}:{apps_port}"
