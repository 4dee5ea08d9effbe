"""The dashboard's usage charts: ``/admin/charts/<name>.svg`` (technician session only).

Drawn on the server (:mod:`appliance.usage.charts`) and shown as ``<img>``: no
JavaScript on the page or in the SVG. Figures are read from ``usage.db`` at most once
a minute per chart (kept in memory), so the dashboard's refresh costs no query.
"""

from __future__ import annotations

import threading
import time

from flask import Blueprint, Response, abort, redirect, url_for

from appliance.usage.charts import CHARTS, chart
from appliance.usage.figures import Figures, device_figures

from .admin import logged_in
from .context import library, settings

bp = Blueprint("admin_charts", __name__, url_prefix="/admin/charts")
KEEP_SECONDS = 60.0
_lock = threading.Lock()
_kept: dict[tuple[str, str], tuple[float, str]] = {}


@bp.before_request
def _require_login():
    if not logged_in():
        return redirect(url_for("admin.login", next=url_for("admin.dashboard")))
    return None


def resource_names(ids: list[str]) -> dict[str, str]:
    """A readable name per resource or lesson id: its lesson's title and its own."""
    names: dict[str, str] = {}
    for _channel, cat in library().catalogs():
        missing = [i for i in ids if i not in names]
        if not missing:
            break
        found = cat.titles(missing)
        for nid, node in found.items():
            names[nid] = node["title"].get("zh") or nid
        rows = cat.Resource.select().where(cat.Resource.id.in_(missing))
        lessons = cat.titles(list({r.lesson for r in rows}))
        for r in rows:
            lesson = lessons.get(r.lesson, {}).get("title", {}).get("zh", r.lesson)
            names[r.id] = f"{lesson} · {r.title_zh or r.kind}"
    return names


def class_labels() -> dict[int, str]:
    """Each class's label (三年级(2)班 · 数学 · 人教版) by id, for the chart by class
    (reading makes no file when no class was ever added)."""
    from .classes_api import classes_db, have_classes

    return {k.id: k.label() for k in classes_db().all()} if have_classes() else {}


def _figures() -> Figures:
    s = settings()
    return device_figures(s.device.data_dir, s.usage, class_labels=class_labels())


@bp.get("/<name>.svg")
def svg(name: str):
    """One usage chart of this device."""
    if name not in CHARTS:
        abort(404)
    key = (str(settings().device.data_dir), name)
    with _lock:
        kept = _kept.get(key)
        if kept is None or time.monotonic() - kept[0] > KEEP_SECONDS:
            fig = _figures()
            names = resource_names([r for r, _ in fig.top]) if name == "top" else {}
            kept = (time.monotonic(), chart(name, fig, names))
            _kept[key] = kept
    return Response(kept[1], mimetype="image/svg+xml",
                    headers={"Cache-Control": "private, max-age=60",
                             "Content-Security-Policy": "default-src 'none'; "
                                                        "style-src 'unsafe-inline'"})
