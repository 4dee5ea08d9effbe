"""The projector's class screens (docs/projector.md, "Classes"), keys only:

- ``/projector/classes/<id>``: a class, its next lesson (in focus: one press opens it),
  the unit map with what is done (M marks the lesson in focus taught, or not), and the
  QR code that opens the tablet front page with the class's lesson for today;
- ``/projector/classes/new``: add a class: choose grade · subject · edition, then a name
  (tiles ``(1)班`` … ``(12)班``, or typed), every step a screen of tiles;
- ``POST /projector/classes/new`` and ``POST /projector/classes/<id>/taught``: forms with
  the session's CSRF token, from the projector only (loopback or its token).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.classes import progress
from appliance.classes.answers import round_of
from appliance.classes.store import ClassError, Klass

from .classes_api import (
    add_class,
    all_curricula,
    class_error_words,
    classes_db,
    from_projector,
    have_classes,
    mark,
    synced_progress,
)
from .context import library, settings

bp = Blueprint("projector_classes", __name__, url_prefix="/projector/classes")
NAMES = [f"({n})班" for n in range(1, 13)]


def render(template: str, status: int = 200, **kw: Any) -> Response:
    """A projector screen (the drive banner fills itself in within seconds)."""
    html = render_template(template, drives=[], device=settings().device, **kw)
    return Response(html, status=status, mimetype="text/html")


def lesson_url(channel: str, lesson: str, class_id: int) -> str:
    """A lesson opened for a class: its projected parts count for the class."""
    args: dict[str, Any] = {"channel": channel, "lesson_id": lesson, "class": class_id}
    return url_for("projector.lesson", **args)


def join_url(class_id: int) -> tuple[str, bool]:
    """What the class's QR code opens on a tablet (the front page with today's lesson),
    and whether tablets can reach it (docs/projector.md, "QR code")."""
    from .projector import join_base

    base, joinable = join_base()
    return f"{base}/?class={class_id}", joinable


def lesson_class(raw: str) -> tuple[Klass | None, str]:
    """The class a lesson is opened for (``?class=N``; None for an unknown one) and the
    round of live answers the projector gives the tablets."""
    klass = None
    if raw.isdigit() and len(raw) < 10 and have_classes():
        klass = classes_db().get(int(raw))
    return klass, round_of(klass.id if klass else 0)


def class_tiles() -> list[dict[str, Any]]:
    """Every class with its next lesson, for the projector's first screen."""
    if not have_classes():
        return []       # no class yet: a page view makes no file
    db = synced_progress()
    out = []
    for k in db.all():
        p = progress.class_progress(db, library(), k)
        nxt = p["next"]
        out.append({"klass": k, "next": nxt, "taught": p["taught"], "total": p["total"],
                    "next_url": lesson_url(k.channel, nxt["id"], k.id) if nxt else None,
                    "url": url_for("projector_classes.page", class_id=k.id)})
    return out


@bp.get("/<int:class_id>")
def page(class_id: int):
    """A class: its next lesson, its unit map with what is done, its QR code."""
    from .projector import qr_svg

    db = synced_progress()
    k = db.get(class_id)
    if k is None:
        abort(404, description=_("There is no such class on this device."))
    p = progress.class_progress(db, library(), k)
    join, joinable = join_url(k.id)
    return render("projector/class.html", klass=k, p=p, join_url=join, qr=qr_svg(join),
                  joinable=joinable,
                  lesson_url=lesson_url, up=url_for("projector.home"),
                  focus=request.args.get("focus", ""), csrf=csrf(),
                  round=round_of(k.id))


def csrf() -> str:
    """The session's CSRF token for the projector's forms ("" without a session key)."""
    from flask_wtf.csrf import generate_csrf
    try:
        return generate_csrf()
    except Exception:  # noqa: BLE001 - no session key: the forms answer 400 and say why
        return ""


@bp.get("/new")
def new():
    """Add a class: first grade · subject · edition, then its name."""
    chosen = request.args.get("curriculum", "")
    everything = all_curricula()
    pick = next((c for c in everything if f"{c['channel']}/{c['node']}" == chosen), None)
    return render("projector/class_new.html", curricula=everything, pick=pick,
                  chosen=chosen, names=NAMES, csrf=csrf(), message="",
                  up=url_for(".new") if pick else url_for("projector.home"))


@bp.post("/new")
def create():
    """The projector adds a class (form: ``curriculum`` = channel/node, ``name``)."""
    if not from_projector():
        abort(403)
    chosen = request.form.get("curriculum", "")
    channel, _sep, node = chosen.partition("/")
    name = request.form.get("other") or request.form.get("name", "")
    try:
        k = add_class(name, channel, node)
    except ClassError as e:
        everything = all_curricula()
        pick = next((c for c in everything if f"{c['channel']}/{c['node']}" == chosen), None)
        return render("projector/class_new.html", status=400, curricula=everything,
                      pick=pick, chosen=chosen, names=NAMES, csrf=csrf(),
                      message=class_error_words(e), up=url_for(".new"))
    return redirect(url_for(".page", class_id=k.id))


@bp.post("/<int:class_id>/taught")
def set_taught(class_id: int):
    """Mark the lesson (form: ``lesson``) taught (``taught=1``) or not (``taught=0``)."""
    if not from_projector():
        abort(403)
    db = synced_progress()
    k = db.get(class_id)
    if k is None:
        abort(404, description=_("There is no such class on this device."))
    lesson = request.form.get("lesson", "")
    try:
        mark(class_id, k.channel, lesson, request.form.get("taught") == "1")
    except ClassError:
        abort(400, description=_("That lesson is not one of this class's lessons."))
    return redirect(url_for(".page", class_id=class_id, focus=lesson))
