"""Questionnaires (``ketang-questionnaire/1``), signed into a release like its lessons.

A release may carry questionnaires in the manifest's optional ``questionnaires`` list,
so the release signature covers them (a tampered one is refused like any tampered
release). The publisher reads them from ``source.json``'s ``questionnaires`` list of
files. One questionnaire::

    {"format": "ketang-questionnaire/1", "id": "q-2026-autumn",
     "title": {"zh": "…", "en": "…"}, "audience": "teachers",     # or "school"
     "opens": "2026-11-01", "closes": "2026-12-31",               # inclusive, UTC days
     "questions": [
       {"id": "q1", "kind": "single", "text": {"zh": "…"}, "choices": [{"zh": "…"}, …]},
       {"id": "q2", "kind": "multiple", "text": {…}, "choices": [...]},
       {"id": "q3", "kind": "scale", "text": {…}, "min": 1, "max": 5},
       {"id": "q4", "kind": "text", "text": {…}, "max_length": 500}]}

Everything is checked strictly and bounded; a questionnaire that breaks a rule makes
the whole manifest refused, naming the rule (docs/questionnaires.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from .errors import ManifestError
from .ids import ID_RE

FORMAT = "ketang-questionnaire/1"
KINDS = ("single", "multiple", "scale", "text")
AUDIENCES = ("teachers", "school")
MAX_QUESTIONNAIRES = 50
MAX_QUESTIONS = 100
MAX_CHOICES = 20
MAX_TEXT = 2000
MAX_ANSWER = 2000


@dataclass(frozen=True)
class Questionnaire:
    """A checked questionnaire; ``doc`` is its JSON form (kept as published)."""

    id: str
    doc: dict[str, Any]

    def is_open(self, today: date) -> bool:
        """Whether ``today`` (UTC) is between its open and close days, inclusive."""
        return self.doc["opens"] <= today.isoformat() <= self.doc["closes"]


def _texts(value: Any, where: str) -> dict[str, str]:
    if (not isinstance(value, dict) or not value or not all(
            isinstance(k, str) and len(k) <= 8 and isinstance(v, str) and len(v) <= MAX_TEXT
            for k, v in value.items())):
        raise ManifestError(f"{where} must map languages (zh, en) to text of at most "
                            f"{MAX_TEXT} characters.")
    return dict(value)


def _day(value: Any, where: str) -> str:
    message = f"{where} must be a day, YYYY-MM-DD, not {value!r}."
    if not isinstance(value, str) or len(value) != 10:
        raise ManifestError(message)
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ManifestError(message) from None


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _id_of(doc: Any, where: str) -> str:
    """The document's ``id``, checked."""
    qid = doc.get("id")
    if not isinstance(qid, str) or not ID_RE.match(qid):
        raise ManifestError(f"{where}: id {qid!r} is not a valid id.")
    return qid


def _question(q: Any, where: str) -> dict[str, Any]:
    if not isinstance(q, dict):
        raise ManifestError(f"{where} is not an object.")
    qid = _id_of(q, where)
    where = f"{where} ({qid})"
    kind = q.get("kind")
    if kind not in KINDS:
        raise ManifestError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}.")
    out: dict[str, Any] = {"id": qid, "kind": kind, "text": _texts(q.get("text"),
                                                                   f"{where}: text")}
    if kind in ("single", "multiple"):
        choices = q.get("choices")
        if not isinstance(choices, list) or not 2 <= len(choices) <= MAX_CHOICES:
            raise ManifestError(f"{where}: choices must be a list of 2 to {MAX_CHOICES}.")
        out["choices"] = [_texts(c, f"{where}: choice {i + 1}") for i, c in enumerate(choices)]
    elif kind == "scale":
        lo, hi = q.get("min", 1), q.get("max", 5)
        if not (_int(lo) and _int(hi) and 0 <= lo < hi <= 10):
            raise ManifestError(f"{where}: a scale runs from min to max, whole numbers "
                                f"with 0 <= min < max <= 10 (not {lo!r}..{hi!r}).")
        out.update(min=lo, max=hi)
    else:
        n = q.get("max_length", 500)
        if not _int(n) or not 1 <= n <= MAX_ANSWER:
            raise ManifestError(f"{where}: max_length must be 1 to {MAX_ANSWER}.")
        out["max_length"] = n
    return out


def parse_questionnaire(doc: Any, where: str) -> Questionnaire:
    """Check one questionnaire document; raises ManifestError naming what is wrong."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ManifestError(f"{where} is not a {FORMAT} questionnaire (its 'format').")
    qid = _id_of(doc, where)
    where = f"{where} {qid}"
    audience = doc.get("audience")
    if audience not in AUDIENCES:
        raise ManifestError(f"{where}: audience {audience!r} is not one of "
                            f"{', '.join(AUDIENCES)}.")
    opens, closes = _day(doc.get("opens"), f"{where}: opens"), \
        _day(doc.get("closes"), f"{where}: closes")
    if closes < opens:
        raise ManifestError(f"{where}: closes ({closes}) is before opens ({opens}).")
    questions = doc.get("questions")
    if not isinstance(questions, list) or not 1 <= len(questions) <= MAX_QUESTIONS:
        raise ManifestError(f"{where}: questions must be a list of 1 to {MAX_QUESTIONS}.")
    checked = [_question(q, f"{where}: question {i + 1}") for i, q in enumerate(questions)]
    if len({q["id"] for q in checked}) != len(checked):
        raise ManifestError(f"{where}: two questions share an id.")
    return Questionnaire(qid, {"format": FORMAT, "id": qid,
                               "title": _texts(doc.get("title"), f"{where}: title"),
                               "audience": audience, "opens": opens, "closes": closes,
                               "questions": checked})


def parse_list(value: Any, where: str) -> list[Questionnaire]:
    """The manifest's ``questionnaires`` list, checked."""
    if not isinstance(value, list) or len(value) > MAX_QUESTIONNAIRES:
        raise ManifestError(f"{where}: questionnaires must be a list of at most "
                            f"{MAX_QUESTIONNAIRES}.")
    out = [parse_questionnaire(d, f"{where}: questionnaire") for d in value]
    if len({q.id for q in out}) != len(out):
        raise ManifestError(f"{where}: two questionnaires share an id.")
    return out


def check_answers(q: Questionnaire, form: Any) -> dict[str, Any]:
    """The answers in ``form`` (``<question id>`` fields; several for ``multiple``),
    checked against the questions; raises ValueError naming the first wrong one.
    Unanswered questions are left out."""
    answers: dict[str, Any] = {}
    for question in q.doc["questions"]:
        qid, kind = question["id"], question["kind"]
        values = [v for v in form.getlist(qid) if v != ""]
        if not values:
            continue
        if kind == "text":
            text = values[0].strip()
            if len(text) > question["max_length"]:
                raise ValueError(f"{qid}: at most {question['max_length']} characters")
            if text:
                answers[qid] = text
            continue
        if not all(v.isdigit() for v in values):
            raise ValueError(f"{qid}: not a choice")
        nums = sorted({int(v) for v in values})
        if kind == "scale":
            if len(nums) != 1 or not question["min"] <= nums[0] <= question["max"]:
                raise ValueError(f"{qid}: not on the scale")
            answers[qid] = nums[0]
        elif kind == "single":
            if len(nums) != 1 or nums[0] >= len(question["choices"]):
                raise ValueError(f"{qid}: choose one")
            answers[qid] = nums[0]
        else:
            if nums[-1] >= len(question["choices"]):
                raise ValueError(f"{qid}: not a choice")
            answers[qid] = nums
    return answers
