"""``/admin/classes``: the technician (or a teacher with the password) adds and removes
classes on the dashboard (docs/dashboard.md). The projector adds them with keys; both
land in the same classes database (:mod:`appliance.classes`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.classes.store import ClassError

from .admin import logged_in
from .classes_api import add_class, classes_db, summary, synced_progress
from .context import library, settings

bp = Blueprint("admin_classes", __name__, url_prefix="/admin/classes")


@bp.before_request
def _require_login():
    if not logged_in():
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
    return None


def curricula_choices() -> list[dict[str, Any]]:
    """Every grade · subject · edition a class can follow, across channels."""
    from appliance.classes.progress import curricula

    out = []
    for channel, cat in library().catalogs():
        out += curricula(channel, cat)
    return out


def _page(message: str = "", status: int = 200, form: dict[str, str] | None = None):
    db = synced_progress()
    return render_template("admin/classes.html", device=settings().device,
                           classes=[summary(db, k) for k in db.all()],
                           curricula=curricula_choices(), message=message,
                           form=form or {}), status


@bp.get("/")
def page():
    """The classes, each with its next lesson, and a form to add one."""
    return _page()


@bp.post("/")
def add():
    """Add a class from the form (``name`` and ``curriculum`` = ``channel/node``)."""
    channel, _sep, node = request.form.get("curriculum", "").partition("/")
    try:
        add_class(request.form.get("name", ""), channel, node)
    except ClassError as e:
        words = {"name": _("Give the class a name of at most 20 characters, such as (2)班."),
                 "exists": _("That class is already on this device."),
                 "node": _("Choose a grade, subject and textbook edition from the list.")}
        return _page(f"{words.get(e.code, '')} ({e})", 400, dict(request.form))
    return redirect(url_for(".page"))


@bp.post("/remove")
def remove():
    """Remove a class (form field ``class``) and its progress."""
    raw = request.form.get("class", "")
    try:
        classes_db().remove(int(raw) if raw.isdigit() else -1)
    except ClassError as e:
        return _page(_("There is no such class.") + f" ({e})", 404)
    return redirect(url_for(".page"))
