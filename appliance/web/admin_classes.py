"""``/admin/classes``: the technician (or a teacher with the password) adds and removes
classes on the dashboard (docs/dashboard.md). The projector adds them with keys; both
land in the same classes database (:mod:`appliance.classes`)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.classes.store import ClassError

from .admin import logged_in
from .classes_api import (
    add_class,
    all_curricula,
    class_error_words,
    classes_db,
    summary,
    synced_progress,
)
from .context import settings

bp = Blueprint("admin_classes", __name__, url_prefix="/admin/classes")


@bp.before_request
def _require_login():
    if not logged_in():
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
    return None


def _page(message: str = "", status: int = 200, form: dict[str, str] | None = None):
    db = synced_progress()
    return render_template("admin/classes.html", device=settings().device,
                           classes=[summary(db, k) for k in db.all()],
                           curricula=all_curricula(), message=message,
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
        return _page(class_error_words(e), 400, dict(request.form))
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
