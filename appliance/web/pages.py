"""The students' tablet pages, server-rendered (docs/tablet.md). Templates are kiosk_ui's.

Every page works with JavaScript off: browsing is links, search is a GET form, the
PDF reader is page images with next/previous links, and an exercise is a form that
sends its answers in a GET form. JavaScript only adds (video resume, following the teacher).

- ``/``: each channel's stages and grades (the browse tree starts at a grade).
- ``/browse/<channel>[/<node>]``: a node's children, paged; units show their lessons.
- ``/lessons/<channel>/<lesson>``: a lesson's video, task sheet, interactive and exercise.
- ``/lessons/<channel>/<lesson>/pdf/<resource>?page=N``: a task sheet, page by page.
- ``GET /lessons/<channel>/<lesson>/exercise/<resource>?q0=…``: the answers checked.
- ``/search?q=``: lessons matching ``q`` across channels, paged.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext

from content_cache.catalog import Catalog

from .apps import IFRAME_SANDBOX, apps_base
from .context import library, settings
from .lookup import catalog_or_404, int_arg
from .pdf_pages import (
    PdfPagesError,
    cache_root,
    cached_page_count,
    cached_page_sizes,
    page_image_urls,
)
from .recommend import recommendations

bp = Blueprint("pages", __name__)
MAX_EXERCISE_BYTES = 256 * 1024
PAGE_SIZE = 30  # list items per page: a list stays one or two screens on a tablet
SEARCH_LIMIT = 200  # search results fetched per channel (then paged)
# Browsing skips a node that has one child (an only edition, an only volume), so a
# student taps less; never past a unit, whose lessons are the point.
SKIP_KINDS = {"stage", "grade", "subject", "edition", "volume"}


def _page() -> int:
    return max(int_arg("page", 1), 1)


def paged(items: list[Any], page: int, size: int = PAGE_SIZE) -> tuple[list[Any], dict[str, Any]]:
    """One page of ``items`` and the pager (page, pages, previous/next URLs) to show with it."""
    pages = max(1, math.ceil(len(items) / size))
    page = min(page, pages)
    view = request.endpoint
    assert view is not None, "paged() runs inside a routed view"
    kw: dict[str, Any] = {k: v for k, v in request.args.items() if k != "page"}
    kw.update(request.view_args or {})
    pager = {
        "page": page, "pages": pages, "total": len(items),
        "prev": url_for(view, **kw, page=page - 1) if page > 1 else None,
        "next": url_for(view, **kw, page=page + 1) if page < pages else None,
    }
    return items[(page - 1) * size: page * size], pager


def _render(template: str, **kw: Any) -> str:
    return render_template(template, device=settings().device, **kw)


@bp.app_template_filter("duration")
def duration(seconds: float | None) -> str:
    """``754`` → ``12:34``."""
    if not seconds:
        return ""
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


def _grades(cat: Catalog) -> list[dict[str, Any]]:
    """The stages of a channel, each with its grades (the first browse screen)."""
    return [dict(stage, children=cat.children(stage["id"])) for stage in cat.children(None)]


CLASS_COOKIE = "ketang_class"


def _todays_class() -> tuple[dict[str, Any] | None, str | None]:
    """The class whose QR code this tablet scanned (``?class=N``, then remembered in a
    cookie) with its lesson for today; and the id to remember (None: keep the cookie)."""
    given = request.args.get("class", "")
    raw = given or request.cookies.get(CLASS_COOKIE, "")
    if not raw.isdigit() or len(raw) > 9:
        return None, None
    from .classes_api import today

    found = today(int(raw))
    return found, (raw if given and found else None)


@bp.route("/")
def index():
    """Every active channel's stages and grades: the browse tree's first screen; with a
    class (its QR code), that class's lesson for today above them."""
    lib = library()
    channels = []
    for _channel, cat in lib.catalogs():
        channels.append({"info": cat.info(), "stages": _grades(cat)})
    klass, remember = _todays_class()
    response = current_app.make_response(_render("index.html", channels=channels,
                                                 klass=klass))
    if remember:
        response.set_cookie(CLASS_COOKIE, remember, max_age=180 * 24 * 3600,
                            httponly=True, samesite="Lax")
    return response


@bp.route("/browse/<channel>")
def channel_root(channel: str):
    """One channel's stages and grades."""
    cat = catalog_or_404(channel)
    return _render("index.html", channels=[{"info": cat.info(), "stages": _grades(cat)}])


@bp.route("/browse/<channel>/<node_id>")
def browse(channel: str, node_id: str):
    """A node's children in teaching order, paged; a unit's lessons are listed under it."""
    cat = catalog_or_404(channel)
    node = cat.node(node_id)
    if node is None:
        abort(404)
    if node["kind"] == "lesson":
        return redirect(url_for("pages.lesson", channel=channel, lesson_id=node_id))
    path = cat.breadcrumb(node_id)
    children = cat.children(node_id)
    while (len(children) == 1 and children[0]["kind"] in SKIP_KINDS
           and node["kind"] in SKIP_KINDS):
        node = children[0]
        path.append(node)
        children = cat.children(node["id"])
    shown, pager = paged(children, _page())
    for child in shown:
        if child["kind"] == "unit":
            lessons = cat.children(child["id"])
            child["lessons"], child["more"] = lessons[:PAGE_SIZE], len(lessons) > PAGE_SIZE
    return _render("browse.html", channel=channel, info=cat.info(), node=node,
                   crumbs=path[:-1], children=shown, pager=pager)


@bp.route("/search")
def search():
    """Lessons whose title, description or grade/subject match ``q``, across channels."""
    q = request.args.get("q", "").strip()[:100]
    results: list[dict[str, Any]] = []
    channels = 0
    if q:
        lib = library()
        for channel, cat in lib.catalogs():
            channels += 1
            title = cat.info()["title"]   # each result says its channel (教师研修, …)
            results += [dict(r, channel=channel, channel_title=title)
                        for r in cat.search(q, limit=SEARCH_LIMIT)]
    shown, pager = paged(results, _page())
    return _render("search.html", q=q, results=shown, pager=pager, many=channels > 1)


def exercise_of(resource: dict[str, Any]) -> dict[str, Any] | None:
    """An exercise's questions, or None when its JSON cannot be shown."""
    if resource["size"] > MAX_EXERCISE_BYTES:
        return None
    path = library().store.path_for(resource["sha256"])
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("questions"), list):
        return None
    for q in doc["questions"]:
        if not isinstance(q, dict) or not isinstance(q.get("choices"), list):
            return None
    return doc


def check_answers(exercise: dict[str, Any], form: Any) -> dict[str, Any]:
    """Mark the answers in ``form`` (field ``q<n>`` = the chosen choice's index)."""
    marks = []
    for i, q in enumerate(exercise["questions"]):
        raw = form.get(f"q{i}", "")
        chosen = int(raw) if raw.isdigit() and int(raw) < len(q["choices"]) else None
        answer = q.get("answer")
        marks.append({"chosen": chosen, "answer": answer,
                      "correct": chosen is not None and chosen == answer})
    right = sum(m["correct"] for m in marks)
    return {"marks": marks, "right": right, "total": len(marks)}


def _lesson_or_404(cat: Catalog, lesson_id: str) -> dict[str, Any]:
    found = cat.lesson(lesson_id)
    if found is None:
        abort(404)
    return found


def siblings(cat: Catalog, lesson: dict[str, Any]) -> tuple[Any, Any]:
    """The lessons before and after ``lesson`` in its unit (or None)."""
    if not lesson["parent"]:
        return None, None
    ids = [c for c in cat.children(lesson["parent"]) if c["kind"] == "lesson"]
    at = next((i for i, c in enumerate(ids) if c["id"] == lesson["id"]), None)
    if at is None:
        return None, None
    return (ids[at - 1] if at > 0 else None), (ids[at + 1] if at + 1 < len(ids) else None)


def _resource_or_404(lesson: dict[str, Any], resource_id: str, kind: str) -> dict[str, Any]:
    """The lesson's resource ``resource_id`` of ``kind``; 404 for anything else."""
    for r in lesson["resources"]:
        if r["id"] == resource_id and r["kind"] == kind:
            return r
    abort(404)


def _lesson_page(channel: str, cat: Catalog, found: dict[str, Any],
                 checked: dict[str, Any] | None = None, checked_id: str | None = None):
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for r in found["resources"]:
        by_kind.setdefault(r["kind"], []).append(r)
    root = cache_root(library().data_dir)
    pdfs = [(r, cached_page_count(root, r["sha256"])) for r in by_kind.get("pdf", [])]
    exercises = [(r, exercise_of(r)) for r in by_kind.get("exercise", [])]
    apps = [(r, app_url(r["sha256"])) for r in by_kind.get("html5", [])]
    prev, nxt = siblings(cat, found)
    return _render("lesson.html", recommend=recommendations(channel, cat, found["id"]),
                   lesson=found, channel=channel, info=cat.info(),
                   by_kind=by_kind, pdfs=pdfs, exercises=exercises, apps=apps,
                   app_sandbox=IFRAME_SANDBOX, prev=prev, next=nxt, checked=checked,
                   checked_id=checked_id,
                   follow=request.args.get("follow") in ("1", "on"))


@bp.route("/lessons/<channel>/<lesson_id>")
def lesson(channel: str, lesson_id: str):
    """One lesson: its video, task sheet, interactive and exercise."""
    cat = catalog_or_404(channel)
    return _lesson_page(channel, cat, _lesson_or_404(cat, lesson_id))


# A GET, not a POST: checking answers is anonymous, stores nothing and changes
# nothing on the device, so it needs no session, cookie or CSRF token, and works in a
# browser with cookies off.
@bp.route("/lessons/<channel>/<lesson_id>/exercise/<resource_id>")
def check_exercise(channel: str, lesson_id: str, resource_id: str):
    """The lesson page again, with the answers to one exercise marked right or wrong."""
    cat = catalog_or_404(channel)
    found = _lesson_or_404(cat, lesson_id)
    exercise = exercise_of(_resource_or_404(found, resource_id, "exercise"))
    if exercise is None:
        abort(404)
    return _lesson_page(channel, cat, found, check_answers(exercise, request.args), resource_id)


@bp.route("/lessons/<channel>/<lesson_id>/pdf/<resource_id>")
def pdf(channel: str, lesson_id: str, resource_id: str):
    """A task sheet as page images: one page with previous/next links, or all (``?all=1``)."""
    cat = catalog_or_404(channel)
    found = _lesson_or_404(cat, lesson_id)
    resource = _resource_or_404(found, resource_id, "pdf")
    kw = {"lesson": found, "channel": channel, "resource": resource, "info": cat.info()}
    try:
        urls = page_image_urls(resource["sha256"])
    except PdfPagesError as e:
        return _render("pdf.html", error=str(e), **kw), 422
    page = min(_page(), len(urls))
    show_all = request.args.get("all") == "1"
    here: dict[str, Any] = {"channel": channel, "lesson_id": lesson_id,
                            "resource_id": resource_id}
    sizes = cached_page_sizes(cache_root(library().data_dir), resource["sha256"])
    return _render("pdf.html", urls=urls, page=page, show_all=show_all, error=None, sizes=sizes,
                   prev=url_for("pages.pdf", **here, page=page - 1) if page > 1 else None,
                   next=url_for("pages.pdf", **here, page=page + 1) if page < len(urls)
                   else None, **kw)


@bp.errorhandler(404)
def not_found(_e):
    """A 404 in the tablet's style, with the way back."""
    channel = (request.view_args or {}).get("channel")
    if channel and library().catalog(channel) is None:
        channel = None
    return _render("not_found.html", channel=channel,
                   message=gettext("There is no such page here.")), 404


@bp.errorhandler(400)
def bad_request(e: Any):
    """A bad query argument (``?page=abc``), said in the tablet's style."""
    return _render("not_found.html", channel=None, heading=gettext("Wrong address"),
                   message=e.description), 400


def app_url(sha256: str) -> str | None:
    """Where an html5 resource runs: its entry page on the apps origin, or None."""
    port = current_app.config.get("KETANG_APPS_PORT")
    if port is None:
        return None
    return f"{apps_base(request.host, port)}/apps/{sha256}/index.html"
