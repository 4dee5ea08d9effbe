"""Classes, their progress and live class answers over JSON (docs/projector.md).

- ``GET /api/v1/classes``: every class with its next lesson; ``GET /api/v1/classes/<id>``
  adds the unit map with what is done; ``GET /api/v1/classes/curricula``: what a class
  can follow (grade · subject · edition) in each channel.
- ``POST /api/v1/classes`` ``{"name", "channel", "node"}``, ``DELETE /api/v1/classes/<id>``,
  ``POST /api/v1/classes/<id>/taught`` ``{"channel", "lesson", "taught": true|false}``:
  only the projector (loopback or its token) or a logged-in technician.
- ``POST /api/v1/answers``: a following tablet's answer to the projected question (one
  per tablet and question; the first counts).
- ``GET /projector/answers?round=&channel=&resource=&question=``: the projector's counts.

Errors are ``{"error": {"status", "message"}}``, Chinese first, and change nothing.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Blueprint, jsonify, request

from appliance.classes import progress
from appliance.classes.answers import Answer, AnswerError, Tally, check
from appliance.classes.store import ClassError, ClassesDB, Klass

from . import context
from .api import PREFIX, error_body
from .context import library, settings
from .follow import is_projector
from .pages import exercise_of
from .projector import TOKEN_COOKIE, TOKEN_HEADER

bp = Blueprint("classes_api", __name__)
_LOCK = threading.Lock()
CLASS_WORDS = {
    "name": "班级名称不合适。",
    "exists": "这个班级已经有了。",
    "missing": "没有这个班级。",
}


def classes_db() -> ClassesDB:
    """The device's classes database (opened on first use)."""
    return _once("classes", ClassesDB)


def tally() -> Tally:
    """The live answers of this server's rounds."""
    return _once("answers", Tally)


def _once(name: str, make: Any) -> Any:
    """The app state's ``name``, made from the data folder on first use."""
    st = context.state()
    if getattr(st, name) is None:
        with _LOCK:
            if getattr(st, name) is None:
                setattr(st, name, make(st.settings.device.data_dir))
    return getattr(st, name)


def from_projector() -> bool:
    """Loopback (the kiosk browser) or a request carrying the projector's token."""
    given = request.headers.get(TOKEN_HEADER) or request.cookies.get(TOKEN_COOKIE)
    return is_projector(request.remote_addr, settings().projector.token, given)


def may_change_classes() -> bool:
    """The projector, or a technician logged in to the dashboard."""
    if from_projector():
        return True
    from .admin import logged_in
    return logged_in()


def synced_progress() -> ClassesDB:
    """The classes database, with the usage events that arrived since last time read in."""
    db = classes_db()
    progress.sync(db, settings().device.data_dir, library())
    return db


def summary(db: ClassesDB, k: Klass) -> dict[str, Any]:
    """A class with its next lesson and how much is done."""
    p = progress.class_progress(db, library(), k)
    nxt = p["next"]
    return dict(k.as_json(), taught=p["taught"], total=p["total"], missing=p["missing"],
                next=({"id": nxt["id"], "title": nxt["title"]} if nxt else None))


def today(class_id: int) -> dict[str, Any] | None:
    """A class with its lesson for today (its next lesson), or None when there is none."""
    if not have_classes():
        return None     # no class was ever added: make no file for a tablet's page view
    db = classes_db()
    k = db.get(class_id)
    if k is None:
        return None
    progress.sync(db, settings().device.data_dir, library())
    return dict(summary(db, k), channel=k.channel)


def _refuse(status: int, zh: str, en: str):
    return error_body(status, f"{zh} {en}")


def _not_allowed():
    return _refuse(403, "只有投影机或登录的管理员可以修改班级。",
                   "Only the projector (this device's screen) or a technician logged in to "
                   "the dashboard may change classes; nothing was changed.")


def _json_body() -> Any:
    if not request.is_json:
        return None
    return request.get_json(silent=True)


def have_classes() -> bool:
    """Whether a class was ever added (reading makes no file before that)."""
    from appliance.classes.store import DB_NAME

    return (settings().device.data_dir / DB_NAME).exists()


@bp.get(f"{PREFIX}/classes")
def list_classes():
    """Every class with its next lesson."""
    if not have_classes():
        return jsonify(classes=[])
    db = synced_progress()
    return jsonify(classes=[summary(db, k) for k in db.all()])


@bp.get(f"{PREFIX}/classes/curricula")
def list_curricula():
    """What a class can follow: grade · subject · edition, in each channel."""
    return jsonify(curricula=all_curricula())


@bp.get(f"{PREFIX}/classes/<int:class_id>")
def get_class(class_id: int):
    """A class, its unit map with what is done, and its next lesson."""
    db = synced_progress() if have_classes() else None
    k = db.get(class_id) if db else None
    if db is None or k is None:
        return _refuse(404, "没有这个班级。", f"There is no class {class_id} on this device.")
    p = progress.class_progress(db, library(), k)
    units = [{"unit": {"id": u["unit"]["id"], "title": u["unit"]["title"]},
              "lessons": [{"id": le["id"], "title": le["title"], "taught": le["taught"],
                           "source": le["source"]} for le in u["lessons"]]}
             for u in p["units"]]
    return jsonify(dict(summary(db, k), units=units))


def all_curricula() -> list[dict[str, Any]]:
    """Every grade · subject · edition a class can follow, across channels."""
    out = []
    for channel, cat in library().catalogs():
        out += progress.curricula(channel, cat)
    return out


def class_error_words(e: ClassError) -> str:
    """What a teacher reads when a class cannot be added, in her language."""
    from flask_babel import gettext as _

    words = {"name": _("Give the class a name of at most 20 characters, such as (2)班."),
             "exists": _("That class is already on this device."),
             "node": _("Choose a grade, subject and textbook edition from the list.")}
    return f"{words.get(e.code, '')} ({e})".strip()


def add_class(name: Any, channel: Any, node: Any) -> Klass:
    """Add a class following ``node`` of ``channel``; raises ClassError saying what is wrong."""
    if not isinstance(channel, str) or not isinstance(node, str):
        raise ClassError("node", "give the channel and the catalog node (grade · subject · "
                                 "edition) the class follows")
    cat = library().catalog(channel)
    found = next((c for c in progress.curricula(channel, cat)
                  if c["node"] == node), None) if cat is not None else None
    if found is None:
        raise ClassError("node", f"{channel}/{node} is not a subject or textbook edition "
                                 "of a grade on this device; choose one from "
                                 f"{PREFIX}/classes/curricula")
    return classes_db().add(name, channel, node, found["grade"], found["subject"],
                            found["edition"])


def _class_error(e: ClassError):
    status = {"exists": 409, "missing": 404}.get(e.code, 400)
    return _refuse(status, CLASS_WORDS.get(e.code, "无法保存班级。"),
                   f"The class was not saved: {e}.")


@bp.post(f"{PREFIX}/classes")
def create_class():
    """Add a class: ``{"name": "(2)班", "channel": "…", "node": "<subject or edition>"}``."""
    if not may_change_classes():
        return _not_allowed()
    doc = _json_body()
    if not isinstance(doc, dict):
        return _refuse(400, "请求应为 JSON。", 'Send JSON such as {"name": "(2)班", '
                       '"channel": "…", "node": "…"} with Content-Type: application/json.')
    try:
        k = add_class(doc.get("name"), doc.get("channel"), doc.get("node"))
    except ClassError as e:
        return _class_error(e)
    return jsonify(k.as_json()), 201


@bp.delete(f"{PREFIX}/classes/<int:class_id>")
def delete_class(class_id: int):
    """Remove a class and its progress."""
    if not may_change_classes():
        return _not_allowed()
    try:
        classes_db().remove(class_id)
    except ClassError as e:
        return _class_error(e)
    return jsonify(removed=class_id)


def mark(class_id: int, channel: Any, lesson: Any, taught: Any) -> None:
    """Mark a lesson of a class's curriculum taught or not; raises ClassError."""
    db = classes_db()
    k = db.get(class_id)
    if k is None:
        raise ClassError("missing", f"there is no class {class_id} on this device")
    if not isinstance(taught, bool):
        raise ClassError("taught", "taught must be true or false")
    cat = library().catalog(k.channel)
    order = progress.lessons_in_order(cat, k.node) if cat is not None else []
    if channel != k.channel or lesson not in {le["id"] for le in order}:
        raise ClassError("lesson", f"{channel}/{lesson} is not a lesson of "
                                   f"{k.label()}'s curriculum")
    db.mark(class_id, k.channel, lesson, taught)


@bp.post(f"{PREFIX}/classes/<int:class_id>/taught")
def mark_taught(class_id: int):
    """The teacher marks a lesson taught (``"taught": true``) or not (``false``)."""
    if not may_change_classes():
        return _not_allowed()
    doc = _json_body()
    if not isinstance(doc, dict):
        return _refuse(400, "请求应为 JSON。", 'Send JSON such as {"channel": "…", '
                       '"lesson": "…", "taught": true}.')
    synced_progress()   # events projected before the mark are read first
    try:
        mark(class_id, doc.get("channel"), doc.get("lesson"), doc.get("taught"))
    except ClassError as e:
        return _class_error(e)
    db = classes_db()
    k = db.get(class_id)
    assert k is not None
    return jsonify(summary(db, k))


# ---- live class answers --------------------------------------------------------------

def _question(channel: str, lesson: str, resource: str, question: int
              ) -> tuple[dict[str, Any], int] | None:
    """The exercise question (and the release version), or None when it is not there."""
    cat = library().catalog(channel)
    found = cat.lesson(lesson) if cat is not None else None
    if cat is None or found is None:
        return None
    r = next((r for r in found["resources"] if r["id"] == resource
              and r["kind"] == "exercise"), None)
    ex = exercise_of(r) if r is not None else None
    if ex is None or not 0 <= question < len(ex["questions"]):
        return None
    return ex["questions"][question], cat.info()["version"]


@bp.post(f"{PREFIX}/answers")
def post_answer():
    """A tablet's answer: ``{"round", "tablet", "channel", "lesson", "resource",
    "question", "choice"}`` (question and choice from 0). Answered once it is durably
    stored; a second answer from the same tablet to the same question is not counted."""
    from .usage_api import rate_limited, writer

    if not settings().usage.enabled:
        return _refuse(403, "本设备未开启使用记录，课堂作答无法保存。",
                       "Usage recording is turned off on this device (usage.enabled), so "
                       "class answers cannot be kept.")
    if (request.content_length or 0) > 4096:
        return _refuse(413, "请求过大。", "An answer is a few hundred bytes; this one is "
                       "too large.")
    try:
        fields = check(_json_body())
    except AnswerError as e:
        return _refuse(400, "作答有误，未保存。", f"The answer was not kept: {e}.")
    found = _question(fields["channel"], fields["lesson"], fields["resource"],
                      fields["question"])
    if found is None:
        return _refuse(404, "没有这道题。", f"There is no question {fields['question']} in "
                       f"exercise {fields['resource']} of lesson {fields['lesson']}.")
    q, version = found
    if fields["choice"] >= len(q["choices"]):
        return _refuse(400, "没有这个选项。", f"Question {fields['question']} has "
                       f"{len(q['choices'])} choices; choice {fields['choice']} is not one.")
    limited = rate_limited(1)
    if limited is not None:
        return limited
    answer = Answer(correct=fields["choice"] == q.get("answer"), version=version, **fields)
    try:
        counted, kept = tally().submit(answer, writer().submit)
    except Exception as e:  # noqa: BLE001 - full disk, I/O error: nothing acknowledged
        return _refuse(503, "作答暂时无法保存，请再试一次。",
                       f"The answer could not be stored ({e}); nothing was kept. Try again.")
    return jsonify(counted=counted, choice=kept)


@bp.get("/projector/answers")
def answer_counts():
    """How many tablets answered the projected question, and how many chose each choice."""
    if not from_projector():
        return _refuse(403, "只有投影机可以查看全班作答。",
                       "Only the projector may see the class's answers.")
    a = request.args
    try:
        question = int(a.get("question", ""))
    except ValueError:
        return _refuse(400, "题号应为整数。", "question must be a whole number from 0.")
    found = _question(a.get("channel", ""), a.get("lesson", ""), a.get("resource", ""),
                      question)
    if found is None:
        return _refuse(404, "没有这道题。", "There is no such exercise question.")
    rnd = a.get("round", "")
    counts = tally().counts(rnd, a.get("channel", ""), a.get("resource", ""), question,
                            len(found[0]["choices"]))
    return jsonify(dict(counts, round=rnd, question=question))
