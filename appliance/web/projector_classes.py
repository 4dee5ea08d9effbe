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
OTHERS = 3      # "others went on to" tiles on a class screen


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
        part = next((b["part"] for b in progress.begun(db, library(), k)
                     if nxt and b["lesson"]["id"] == nxt["id"]), 0)
        out.append({"klass": k, "next": nxt, "taught": p["taught"], "total": p["total"],
                    "next_url": part_url(k, nxt["id"], part) if nxt else None,
                    "url": url_for("projector_classes.page", class_id=k.id)})
    return out


def class_recommendations(db: Any, k: Klass, p: dict[str, Any]) -> dict[str, Any]:
    """What the class screen offers first, each one press away (docs/projector.md,
    "Classes"): ``next`` (curriculum order) with ``next_url``, going on from the part
    where the class stopped when it was begun; ``continue``: the other lesson begun for
    the class and not finished that was projected last, opened at its first part not
    shown; ``others``: where others
    went on to from the class's last taught lessons (the last first, up to three; the
    lesson begun when none is taught), from the blended co-usage tables the tablet's
    lesson page uses, leaving out what the class was taught and what is offered above."""
    from .recommend import others_after

    nxt = p["next"]
    out: dict[str, Any] = {"next": nxt, "next_part": 0, "continue": None, "others": [],
                           "next_url": lesson_url(k.channel, nxt["id"], k.id) if nxt else ""}
    begun = progress.begun(db, library(), k)
    at_next = next((b for b in begun if nxt and b["lesson"]["id"] == nxt["id"]), None)
    if at_next and nxt:
        out["next_part"] = at_next["part"]
        out["next_url"] = part_url(k, nxt["id"], at_next["part"])
    started = next((b for b in begun if b is not at_next), None)
    if started:
        out["continue"] = dict(started, url=part_url(k, started["lesson"]["id"],
                                                      started["part"]))
    order = [lesson for u in p["units"] for lesson in u["lessons"]]
    taught = [lesson["id"] for lesson in order if lesson.get("taught")]
    anchors = taught[::-1][:3] or [b["lesson"]["id"] for b in begun[:1]]
    cat = library().catalog(k.channel)
    shown = set(taught) | {nxt["id"] if nxt else ""} | {b["lesson"]["id"] for b in begun}
    for anchor in anchors:
        if cat is None:
            break
        for n in others_after(cat, anchor, shown, OTHERS - len(out["others"])):
            out["others"].append(dict(n, url=lesson_url(k.channel, n["id"], k.id)))
            shown.add(n["id"])
        if len(out["others"]) >= OTHERS:
            break
    return out


def part_url(k: Klass, lesson: str, part: int) -> str:
    """A lesson opened for a class at a part (from 0)."""
    url = lesson_url(k.channel, lesson, k.id)
    return f"{url}&part={part}" if part else url


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
                  joinable=joinable, rec=class_recommendations(db, k, p),
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
