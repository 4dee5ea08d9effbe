"""The JSON API, versioned under ``/api/v1/`` (documented in docs/api.md).

Every answer is JSON. Errors are ``{"error": {"status": N, "message": "…"}}`` with the
message in Simplified Chinese first, English second, saying what was wrong and what
to do. Nothing here writes to disk.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, wraps
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from content_cache.catalog import Catalog

from .context import discovery, library, settings, state
from .lookup import Explained, catalog_or_404, int_arg

API_VERSION = 1
PREFIX = "/api/v1"
MAX_QUERY = 100
MAX_LIMIT = 200
SEARCH_CACHE_SIZE = 512
RESPONSE_CACHE_SIZE = 1024

bp = Blueprint("api", __name__, url_prefix=PREFIX)


class ApiError(HTTPException):
    """An HTTP error whose JSON body carries ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(description=message)
        self.code = status


def error_body(status: int, message: str):
    """The JSON error response every API error uses."""
    response = jsonify({"error": {"status": status, "message": message}})
    response.status_code = status
    return response


def _software_version() -> str:
    try:
        return version("ketang")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def _channel_summary(channel: str, cat: Catalog) -> dict[str, Any]:
    info = cat.info()
    return dict(info, url=url_for("api.channel", channel=channel))


def _resource(channel: str, r: dict[str, Any]) -> dict[str, Any]:
    out = dict(r, url=url_for("media.blob", sha256=r["sha256"]))
    if r["kind"] == "html5":
        from .pages import app_url

        out["app_url"] = app_url(r["sha256"])
    return out


def _node(channel: str, n: dict[str, Any]) -> dict[str, Any]:
    out = dict(n, url=url_for("api.node", channel=channel, node_id=n["id"]))
    if n["kind"] == "lesson":
        out["lesson_url"] = url_for("api.lesson", channel=channel, lesson_id=n["id"])
        out["page_url"] = url_for("pages.lesson", channel=channel, lesson_id=n["id"])
    return out


@bp.get("/")
def root():
    """What this API offers: its version and its entry points."""
    return jsonify({
        "api_version": API_VERSION,
        "channels": url_for("api.channels"),
        "search": url_for("api.search"),
        "device": url_for("api.device"),
        "health": url_for("api.health"),
        "peers": url_for("api.peers"),
    })


@bp.get("/channels")
def channels():
    """Every channel this device serves, with its active release."""
    return jsonify({"channels": [_channel_summary(channel, cat)
                                 for channel, cat in library().catalogs()]})


def _releases(channel: str) -> list[dict[str, Any]]:
    lib = library()
    active = lib.active_version(channel)
    base = lib.data_dir / "releases" / channel
    versions = sorted((int(p.name) for p in base.iterdir() if p.name.isdigit()
                       and (p / "manifest.json").is_file()), reverse=True) if base.is_dir() else []
    return [{"version": v, "active": v == active} for v in versions]


@bp.get("/channels/<channel>")
def channel(channel: str):
    """One channel: its active release, the releases kept on the device, its top nodes."""
    cat = catalog_or_404(channel)
    return jsonify(dict(_channel_summary(channel, cat), releases=_releases(channel),
                        children=[_node(channel, n) for n in cat.children(None)]))


@bp.get("/channels/<channel>/releases")
def releases(channel: str):
    """The verified releases of a channel kept on this device, newest first."""
    catalog_or_404(channel)
    return jsonify({"channel": channel, "releases": _releases(channel)})


def catalog_cached(view: Callable[..., Response]) -> Callable[..., Response]:
    """Keep the JSON a view gives for one channel, keyed by that channel's catalog file.

    For views whose answer depends only on the active catalog and the URL root their
    links use (app links name the Host). A catalog file never changes (activating a
    release builds a new one), so a kept answer is never stale: a class opening the
    same lesson costs one set of queries. Errors are not kept.
    """

    @lru_cache(maxsize=RESPONSE_CACHE_SIZE)
    def rendered(catalog_path: str, host_url: str, args: tuple) -> bytes:
        return view(**dict(args)).get_data()

    @wraps(view)
    def cached(**kwargs: str) -> Response:
        cat = catalog_or_404(kwargs["channel"])
        body = rendered(str(cat.path), request.host_url, tuple(sorted(kwargs.items())))
        return Response(body, mimetype="application/json")

    return cached


@bp.get("/channels/<channel>/nodes/<node_id>")
@catalog_cached
def node(channel: str, node_id: str):
    """One node of the tree with its breadcrumb and its children (browse the tree)."""
    cat = catalog_or_404(channel)
    found = cat.node(node_id)
    if found is None:
        raise ApiError(404, f"频道 {channel} 中没有节点 {node_id!r}。No node {node_id!r} in "
                            f"channel {channel}; browse from {PREFIX}/channels/{channel}.")
    return jsonify(dict(_node(channel, found),
                        path=[_node(channel, p) for p in cat.breadcrumb(node_id)[:-1]],
                        children=[_node(channel, c) for c in cat.children(node_id)]))


@bp.get("/channels/<channel>/lessons/<lesson_id>")
@catalog_cached
def lesson(channel: str, lesson_id: str):
    """One lesson with its resources, each with the URL of its media."""
    cat = catalog_or_404(channel)
    found = cat.lesson(lesson_id)
    if found is None:
        raise ApiError(404, f"频道 {channel} 中没有课 {lesson_id!r}。No lesson {lesson_id!r} in "
                            f"channel {channel}; search with {PREFIX}/search?q=….")
    return jsonify(dict(_node(channel, found),
                        path=[_node(channel, p) for p in found["path"]],
                        resources=[_resource(channel, r) for r in found["resources"]]))


@lru_cache(maxsize=SEARCH_CACHE_SIZE)
@bp.get("/channels/<channel>/lessons/<lesson_id>/recommendations")
def recommendations(channel: str, lesson_id: str):
    """What to watch after a lesson: ``next`` (curriculum order) and ``others``
    ("others went on to", from co-usage); see docs/usage.md."""
    from .recommend import recommendations as recommend

    cat = catalog_or_404(channel)
    if cat.node(lesson_id) is None:
        raise ApiError(404, f"频道 {channel} 中没有课 {lesson_id!r}。No lesson {lesson_id!r} in "
                            f"channel {channel}.")
    return jsonify(dict(recommend(channel, cat, lesson_id), lesson=lesson_id,
                        channel=channel))


def _search_body(catalog_paths: tuple[str, ...], host_url: str, q: str, limit: int,
                 chans: tuple[str, ...]) -> bytes:
    """The JSON of one search, kept per set of catalog files (see catalog_cached): a
    class searching the same words costs one query."""
    results: list[dict[str, Any]] = []
    for ch in chans:
        results += [dict(_node(ch, r), channel=ch)
                    for r in catalog_or_404(ch).search(q, limit=limit)]
    return jsonify({"q": q, "results": results[:limit]}).get_data()


@bp.get("/search")
def search():
    """Lessons matching ``q`` (all channels, or ``channel``), best first, at most ``limit``."""
    q = request.args.get("q", "").strip()
    if not q:
        raise ApiError(400, "请给出搜索词 q。Give a search term: ?q=分数")
    if len(q) > MAX_QUERY:
        raise ApiError(400, f"搜索词太长（最多 {MAX_QUERY} 字）。The search term is longer than "
                            f"{MAX_QUERY} characters; shorten it.")
    limit = int_arg("limit", 50, 1, MAX_LIMIT)
    wanted = request.args.get("channel")
    chans = tuple([wanted] if wanted else sorted(library().active()))
    paths = tuple(str(catalog_or_404(ch).path) for ch in chans)
    body = _search_body(paths, request.host_url, q, limit, chans)
    return Response(body, mimetype="application/json")


@bp.get("/device")
def device():
    """Who this device is: its name, software and API version, active releases."""
    from appliance.discovery import device_id

    lib = library()
    return jsonify({
        "id": device_id(settings().device.id),
        "name": settings().device.name,
        "software_version": _software_version(),
        "api_version": API_VERSION,
        "active": {ch: rel.version for ch, rel in sorted(lib.active().items())},
    })


@bp.get("/peers")
def peers():
    """Other Ketang devices seen on the LAN by zeroconf (``_ketang._tcp``)."""

    disco = discovery()
    return jsonify({"enabled": disco is not None,
                    "peers": disco.peers() if disco is not None else []})


@bp.get("/health")
def health():
    """Disk, memory, load, CPU temperature, uptime, active releases (see health.py)."""

    from appliance.health import health_report

    return jsonify(health_report(library(), state().started))


def json_error(e: HTTPException):
    """An HTTP error under ``/api/`` as the API's JSON error body."""
    status = e.code or 500
    if isinstance(e, ApiError):
        return error_body(status, e.description or "")
    if isinstance(e, Explained):
        return error_body(status, e.both())
    messages = {
        404: f"没有这个地址。No such API address: {request.path}; see {PREFIX}/.",
        405: f"{request.path} 不接受 {request.method}。{request.path} does not accept "
             f"{request.method}; use GET.",
    }
    return error_body(status, messages.get(status, f"{e.name}: {e.description}"))


def install_error_handlers(app: Flask) -> None:
    """Answer HTTP errors (and crashes) under ``/api/`` as JSON; pages keep HTML errors."""

    @app.errorhandler(HTTPException)
    def handle(e: HTTPException):
        if request.path == "/api" or request.path.startswith("/api/"):
            return json_error(e)
        return e
