"""Server-rendered pages: the lesson list, a lesson, search. Templates are kiosk_ui's."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, current_app, render_template, request

from .apps import IFRAME_SANDBOX, apps_base
from .context import library, settings

bp = Blueprint("pages", __name__)
MAX_EXERCISE_BYTES = 256 * 1024


def _channels() -> list[dict[str, Any]]:
    lib = library()
    out = []
    for channel in sorted(lib.active()):
        cat = lib.catalog(channel)
        if cat is not None:
            out.append({"info": cat.info(), "lessons": cat.lessons()})
    return out


@bp.route("/")
def index():
    """Every active channel with its lessons."""
    return render_template("index.html", channels=_channels(), device=settings().device)


@bp.route("/search")
def search():
    """Lessons whose title or description matches ``q``, across channels."""
    q = request.args.get("q", "").strip()[:100]
    results = []
    if q:
        lib = library()
        for channel in sorted(lib.active()):
            cat = lib.catalog(channel)
            if cat is not None:
                results += [dict(r, channel=channel) for r in cat.search(q)]
    return render_template("search.html", q=q, results=results, device=settings().device)


def _exercise(resource: dict[str, Any]) -> dict[str, Any] | None:
    if resource["size"] > MAX_EXERCISE_BYTES:
        return None
    path = library().store.path_for(resource["sha256"])
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("questions"), list):
        return None
    return doc


@bp.route("/lessons/<channel>/<lesson_id>")
def lesson(channel: str, lesson_id: str):
    """One lesson: its video, task sheet, interactive and exercise."""
    cat = library().catalog(channel)
    found = cat.lesson(lesson_id) if cat else None
    if found is None:
        abort(404)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for r in found["resources"]:
        by_kind.setdefault(r["kind"], []).append(r)
    exercises = [(r, _exercise(r)) for r in by_kind.get("exercise", [])]
    apps = [(r, app_url(r["sha256"])) for r in by_kind.get("html5", [])]
    return render_template("lesson.html", lesson=found, channel=channel, by_kind=by_kind,
                           exercises=exercises, apps=apps, app_sandbox=IFRAME_SANDBOX,
                           device=settings().device)


def app_url(sha256: str) -> str | None:
    """Where an html5 resource runs: its entry page on the apps origin, or None."""
    port = current_app.config.get("KETANG_APPS_PORT")
    if port is None:
        return None
    return f"{apps_base(request.host, port)}/apps/{sha256}/index.html"
