"""Questionnaires on the dashboard: the open ones, a form to answer, the answer stored.

``/admin/questionnaires/<channel>/<id>``: GET shows the form (server-rendered, CSRF
like every dashboard form), POST checks the answers and stores them
(:mod:`appliance.usage.answers`) before saying so. One answer per device.
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


def _find(channel: str, qid: str) -> tuple[Questionnaire, int]:
    cat = library().catalog(channel)
    if cat is None:
        abort(404)
    for q in cat.questionnaires():
        if q.id == qid and q.is_open(datetime.now(UTC).date()):
            return q, cat.info()["version"]
    abort(404)


@bp.route("/<channel>/<qid>", methods=["GET", "POST"])
def answer(channel: str, qid: str):
    """One questionnaire: the form, or the answers stored."""
    q, version = _find(channel, qid)
    s = settings()
    done = usage_answers.answered(s, channel, qid)
    error = ""
    if request.method == "POST" and not done:
        try:
            answers = check_answers(q, request.form)
            if not answers:
                raise ValueError(_("Answer at least one question."))
            usage_answers.store(s, channel, version, q, answers)
            return redirect(url_for("questionnaires.answer", channel=channel, qid=qid,
                                    saved=1))
        except ValueError as e:
            error = str(e)
    return render_template("admin/questionnaire.html", device=s.device, channel=channel,
                           q=q.doc, answered=done, saved=bool(request.args.get("saved")),
                           error=error, form=request.form), 400 if error else 200
