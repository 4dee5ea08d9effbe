"""Questionnaires on the projector (docs/projector.md, "Questionnaires"), keys only.

The first screen lists the open questionnaires this device has not answered
(:func:`open_unanswered`); ``/projector/questionnaires/<channel>/<id>`` shows one as a
screen of tiles (a choice, a point of a scale, a short-text field, then "Send"),
which a clicker or keyboard answers: arrows or PageUp/PageDown move, Enter, Space or
F5 chooses (kiosk_ui/static/projector/questionnaire.js). The POST comes from the
projector only (loopback or its token) with the session's CSRF token, and is stored
through the dashboard's own code (:func:`.questionnaires.submit`): one answer per
device, committed before the teacher is told, leaving as xAPI exactly once.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, request, url_for
from flask_babel import gettext as _

from appliance.usage import answers as usage_answers

from .classes_api import from_projector
from .context import settings
from .projector_classes import csrf, render
from .questionnaires import find_open, open_questionnaires, submit

bp = Blueprint("projector_questionnaires", __name__, url_prefix="/projector/questionnaires")


def open_unanswered() -> list[dict[str, Any]]:
    """The open questionnaires not answered yet on this device, for the first screen
    (reading writes nothing)."""
    return [dict(item, url=url_for("projector_questionnaires.answer", channel=item["channel"],
                                   qid=item["q"].id))
            for item in open_questionnaires() if not item["answered"]]


@bp.route("/<channel>/<qid>", methods=["GET", "POST"])
def answer(channel: str, qid: str):
    """One questionnaire as a screen of tiles, or the answers stored."""
    q, version = find_open(channel, qid)
    done = usage_answers.answered(settings(), channel, qid)
    error, status = "", 200
    if request.method == "POST" and not done:
        if not from_projector():
            abort(403)
        try:
            submit(channel, version, q, request.form, view="projector")
            return redirect(url_for(".answer", channel=channel, qid=qid, saved=1))
        except ValueError as e:
            error, status = str(e), 400
    return render("projector/questionnaire.html", status=status, q=q.doc, channel=channel,
                  answered=done, saved=bool(request.args.get("saved")), error=error,
                  form=request.form, csrf=csrf(), up=url_for("projector.home"),
                  focus="home" if done else "")


@bp.errorhandler(403)
def forbidden(_e: Any):
    """Another machine without the projector's token: nothing stored, said plainly."""
    return render("projector/error.html", status=403, heading=_("Not from the projector"),
                  message=_("Only the projector may answer here; nothing was saved. "
                            "Answer on the dashboard instead."),
                  up=url_for("projector.home"))
