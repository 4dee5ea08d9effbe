"""Blob requests answered before Flask: the hot path of a classroom.

Forty tablets seeking in videos make most of a device's requests, and each is the
same small job: look the blob up, apply the Range rules, hand waitress the open file.
Flask's routing, request object, context push and hooks cost several times that job
on a Pi, so :class:`FastMedia` sits in front of ``app.wsgi_app`` in the same process
and answers a plain ``GET``/``HEAD /blobs/<sha256>`` itself, with media.py's
:func:`~appliance.web.media.plan_reply` and :func:`~appliance.web.media.open_body` (the same
code the Flask view uses, so both give the same answer to the byte).

Anything else goes to Flask unchanged: other paths and methods, a query string, a
Host the captive portal would redirect (or none at all), a blob no active release
names (Flask's 404). docs/serving.md has the rules.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES

from appliance.addresses import own_names
from content_cache.blobstore import SHA256_RE

from .captive import host_only, is_ip
from .context import state
from .media import BLOB_PREFIX, media_type_of, open_body, plan_reply

TYPES_CACHE_SIZE = 8192
HOSTS_CACHE_SIZE = 64
# Worded as Werkzeug words them, so both paths send the same status line.
_STATUS = {c: f"{c} {HTTP_STATUS_CODES[c].upper()}" for c in (200, 206, 304, 416)}


class FastMedia:
    """WSGI middleware answering blob requests directly; see the module docstring."""

    def __init__(self, app: Flask) -> None:
        self.inner: Callable[..., Iterable[bytes]] = app.wsgi_app
        st = state(app)
        self.library = st.library
        captive = st.settings.captive
        self.names = own_names(captive.host_names) if captive.enabled else None
        self._lock = threading.Lock()
        self._types_for: tuple[str, ...] | None = None
        self._types: dict[str, tuple[str, str]] = {}
        self._hosts: dict[str, bool] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if (path.startswith(BLOB_PREFIX) and environ.get("REQUEST_METHOD") in ("GET", "HEAD")
                and not environ.get("QUERY_STRING") and self._host_ok(environ)):
            sha256 = path[len(BLOB_PREFIX):]
            found = self._blob(sha256) if SHA256_RE.fullmatch(sha256) else None
            if found is not None:
                media_type, fpath = found
                size = self.library.store.checked_size(sha256)  # never serves bit rot
                if size is not None:
                    reply = plan_reply(sha256, size, media_type,
                                       environ.get("HTTP_IF_NONE_MATCH"),
                                       environ.get("HTTP_RANGE"), environ.get("HTTP_IF_RANGE"))
                    start_response(_STATUS[reply.status], reply.headers)
                    return open_body(fpath, reply, environ)
        return self.inner(environ, start_response)

    def _host_ok(self, environ: dict[str, Any]) -> bool:
        """True when the captive portal would let this Host through to the view."""
        if self.names is None:
            return True
        raw = environ.get("HTTP_HOST")
        if not raw:
            return False
        ok = self._hosts.get(raw)
        if ok is None:
            host = host_only(raw)
            ok = host in self.names or is_ip(host)
            if len(self._hosts) >= HOSTS_CACHE_SIZE:
                self._hosts.clear()
            self._hosts[raw] = ok
        return ok

    def _blob(self, sha256: str) -> tuple[str, str] | None:
        """The blob's media type and file path, remembered while the same catalogs are
        active.

        Catalogs never change (a new release is a new catalog file), so the answer
        holds until ``active.json`` names other ones; blobs no release names are not
        remembered (Flask answers their 404).
        """
        active = self.library.active()
        key = tuple(sorted(str(r.catalog_path) for r in active.values()))
        with self._lock:
            if key != self._types_for:
                self._types_for, self._types = key, {}
            found = self._types.get(sha256)
        if found is not None:
            return found
        media_type = media_type_of(self.library, sha256)
        if media_type is None:
            return None
        found = (media_type, str(self.library.store.path_for(sha256)))
        with self._lock:
            if key == self._types_for:
                if len(self._types) >= TYPES_CACHE_SIZE:
                    self._types.clear()
                self._types[sha256] = found
        return found

def install(app: Flask) -> Flask:
    """Put :class:`FastMedia` in front of ``app``'s WSGI callable; return ``app``."""
    app.wsgi_app = FastMedia(app)  # type: ignore[method-assign]
    return app
