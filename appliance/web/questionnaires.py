"""Questionnaires on the dashboard: the open ones, a form to answer, the answer stored.

``/admin/questionnaires/<channel>/<id>``: GET shows the form (server-rendered, CSRF
like every dashboard form), POST checks the answers and stores them
(:mod:`appliance.usage.answers`) before saying so. One answer per device. The
projector's screens (:mod:`.projector_questionnaires`) answer through the same
:func:`find_open` and :func:`submit`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _

from appliance.usage import answers as usage_answers
from content_cache.questionnaire import Questionnaire, check_answers

from .admin import logged_in
from .context import library, settings

bp = Blueprint("questionnaires", __name__, url_prefix="/admin/questionnaires")


@bp.before_request
def _require_login():
    if not logged_in():
        return redirect(url_for("admin.login", next=request.path))
    return None


def open_questionnaires() -> list[dict[str, Any]]:
    """Every questionnaire of the active releases open today, with whether it was answered."""
    today = datetime.now(UTC).date()
    out = []
    s = settings()
    for channel, cat in library().catalogs():
        for q in cat.questionnaires():
            if q.is_open(today):
                out.append({"channel": channel, "q": q,
                            "answered": usage_answers.answered(s, channel, q.id)})
    return out


def find_open(channel: str, qid: str) -> tuple[Questionnaire, int]:
    """An open questionnaire and its release's version; 404 when it is not open today."""
    cat = library().catalog(channel)
    if cat is None:
        abort(404)
    for q in cat.questionnaires():
        if q.id == qid and q.is_open(datetime.now(UTC).date()):
            return q, cat.info()["version"]
    abort(404)


def submit(channel: str, version: int, q: Questionnaire, form: Any,
           view: str = usage_answers.VIEW) -> bool:
    """Check the answers in ``form`` and store them durably (once per device); returns
    False when this device had answered already (nothing stored). Raises ValueError
    saying what is wrong with the answers (nothing stored). ``view``: where it was
    answered (``dashboard`` or ``projector``)."""
    answers = check_answers(q, form)
    if not answers:
        raise ValueError(_("Answer at least one question."))
    return usage_answers.store(settings(), channel, version, q, answers, view) is not None


@bp.route("/<channel>/<qid>", methods=["GET", "POST"])
def answer(channel: str, qid: str):
    """One questionnaire: the form, or the answers stored."""
    q, version = find_open(channel, qid)
    s = settings()
    done = usage_answers.answered(s, channel, qid)
    error = ""
    if request.method == "POST" and not done:
        try:
            submit(channel, version, q, request.form)
            return redirect(url_for("questionnaires.answer", channel=channel, qid=qid,
                                    saved=1))
        except ValueError as e:
            error = str(e)
    return render_template("admin/questionnaire.html", device=s.device, channel=channel,
                           q=q.doc, answered=done, saved=bool(request.args.get("saved")),
                           error=error, form=request.form), 400 if error else 200
