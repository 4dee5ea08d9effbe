"""Live class answers: tablets following the projector answer its exercise question.

Anonymous, one answer per tablet per question and *round*: a round is one class's
(or no class's) day, ``20261130-c3`` (``c0`` without a class), which the projector
gives the tablets in the follow state. The first answer counts; a tablet that answers
again is told which answer was kept.

Each answer is a usage event of type ``question-answered`` (made by the device, never
accepted from a page), stored through the usage writer like every other event, so it
reaches the LRS as an xAPI ``answered`` statement with its result. Its id is derived
from the round, the question and the tablet (a UUID 5), and its dedup time is the
round's day, so the usage database itself keeps one per tablet and question even
across restarts. The tally the projector reads lives in memory and is rebuilt from the
usage database the first time a round is asked for after a start.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from appliance.usage.db import UsageDB, db_path
from appliance.usage.events import ACTOR, TOKEN, Event, iso

TYPE = "question-answered"
NAMESPACE = uuid.UUID("6f1c2a4e-93b5-5d0e-9a47-1c3b5e7f9d21")
ROUND = re.compile(r"^(\d{8})-c(\d{1,9})$")
MAX_QUESTIONS = 1000
MAX_CHOICES = 26


class AnswerError(ValueError):
    """An answer that cannot be taken; the message says what is wrong."""


@dataclass(frozen=True)
class Answer:
    """One checked answer."""

    round: str
    tablet: str
    channel: str
    lesson: str
    resource: str
    question: int   # from 0
    choice: int     # from 0
    correct: bool
    version: int = 0

    def key(self) -> tuple[str, str, str, int]:
        """What makes answers the same question of the same round."""
        return (self.round, self.channel, self.resource, self.question)

    def event_id(self) -> str:
        """The same for every answer of this tablet to this question in this round."""
        name = f"{self.round}/{self.channel}/{self.resource}/{self.question}/{self.tablet}"
        return str(uuid.uuid5(NAMESPACE, name))


def round_of(class_id: int, when: datetime | None = None) -> str:
    """The round of a class today (device local time): ``20261130-c3``."""
    day = (when or datetime.now()).strftime("%Y%m%d")
    return f"{day}-c{int(class_id)}"


def round_class(round_: str) -> int:
    """The class id a round belongs to (0: none)."""
    m = ROUND.match(round_)
    return int(m.group(2)) if m else 0


def round_day_ms(round_: str) -> int:
    """The round's day as milliseconds since 1970 (the dedup time of its answers)."""
    m = ROUND.match(round_)
    assert m, round_
    day = datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=UTC)
    return int(day.timestamp() * 1000)


def check(doc: Any) -> dict[str, Any]:
    """The fields of an answer as a tablet posts it, checked for form (the catalog
    check — does the exercise have that question and choice — is the caller's)."""
    if not isinstance(doc, dict):
        raise AnswerError('the answer must be a JSON object {"round", "tablet", "channel", '
                          '"lesson", "resource", "question", "choice"}')
    unknown = set(doc) - {"round", "tablet", "channel", "lesson", "resource", "question",
                          "choice"}
    if unknown:
        raise AnswerError(f"unknown fields {sorted(unknown)}")
    out: dict[str, Any] = {}
    rnd = doc.get("round")
    if not isinstance(rnd, str) or not ROUND.match(rnd):
        raise AnswerError(f"round must be the projector's round such as 20261130-c3, "
                          f"not {rnd!r}")
    try:
        datetime.strptime(rnd[:8], "%Y%m%d")
    except ValueError:
        raise AnswerError(f"round {rnd!r} does not start with a real date") from None
    out["round"] = rnd
    tablet = doc.get("tablet")
    if not isinstance(tablet, str) or not ACTOR.match(tablet):
        raise AnswerError(f"tablet must be the tablet's pseudonymous id (8–64 letters, "
                          f"digits or -), not {tablet!r}")
    out["tablet"] = tablet.lower()
    for key in ("channel", "lesson", "resource"):
        v = doc.get(key)
        if not isinstance(v, str) or not TOKEN.match(v):
            raise AnswerError(f"{key} must be a short id (letters, digits, _ . : -), not {v!r}")
        out[key] = v
    for key, top in (("question", MAX_QUESTIONS), ("choice", MAX_CHOICES)):
        v = doc.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < top:
            raise AnswerError(f"{key} must be a whole number from 0 to {top - 1}, not {v!r}")
        out[key] = v
    return out


def to_event(answer: Answer, now: datetime | None = None) -> Event:
    """The usage event that stores ``answer``."""
    return Event(
        id=answer.event_id(), type=TYPE, time=iso(now or datetime.now(UTC)),
        actor=answer.tablet, view="tablet", resource=answer.resource, lesson=answer.lesson,
        channel=answer.channel, version=answer.version,
        extra={"question": answer.question, "choice": answer.choice,
               "correct": answer.correct, "class": round_class(answer.round),
               "round": answer.round},
        sent_ms=round_day_ms(answer.round))


@dataclass
class _Question:
    choices: dict[str, int] = field(default_factory=dict)   # tablet → choice


class Tally:
    """The answers of each question, in memory; filled as answers are acknowledged and,
    after a start, from the usage database."""

    def __init__(self, usage_dir: Path) -> None:
        self.usage_dir = usage_dir
        self._lock = threading.Lock()
        self._questions: dict[tuple[str, str, str, int], _Question] = {}
        self._pending: set[tuple[tuple[str, str, str, int], str]] = set()
        self._loaded: set[str] = set()

    def _load(self, round_: str) -> None:
        """Read a round's stored answers (once per round after a start)."""
        if round_ in self._loaded:
            return
        self._loaded.add(round_)
        if not db_path(self.usage_dir).exists():
            return
        since = iso(datetime.fromtimestamp(round_day_ms(round_) / 1000, UTC)
                    - timedelta(days=1))
        usage = UsageDB(self.usage_dir)
        try:
            rows = usage.of_type(TYPE, since)
        finally:
            usage.close()
        for r in rows:
            if r.extra.get("round") != round_:
                continue
            a = Answer(round_, r.actor, r.channel, r.lesson, r.resource,
                       int(r.extra.get("question", -1)), int(r.extra.get("choice", -1)),
                       bool(r.extra.get("correct")))
            if r.id != a.event_id():
                continue   # not made by this module: not counted
            self._questions.setdefault(a.key(), _Question()).choices.setdefault(
                a.tablet, a.choice)

    def submit(self, answer: Answer, store: Callable[[list[Event]], list[bool]]
               ) -> tuple[bool, int]:
        """Store ``answer`` durably unless this tablet already answered; return
        ``(counted, kept choice)``. ``store`` is the usage writer's ``submit``."""
        key = answer.key()
        with self._lock:
            self._load(answer.round)
            q = self._questions.setdefault(key, _Question())
            if answer.tablet in q.choices:
                return False, q.choices[answer.tablet]
            if (key, answer.tablet) in self._pending:
                return False, answer.choice
            self._pending.add((key, answer.tablet))
        try:
            store([to_event(answer)])   # committed before we count it
            with self._lock:
                q.choices.setdefault(answer.tablet, answer.choice)
                return True, q.choices[answer.tablet]
        finally:
            with self._lock:
                self._pending.discard((key, answer.tablet))

    def counts(self, round_: str, channel: str, resource: str, question: int,
               choices: int) -> dict[str, Any]:
        """``{"answered": n, "counts": [per choice], "shares": [0..1 per choice]}``."""
        with self._lock:
            self._load(round_)
            q = self._questions.get((round_, channel, resource, question))
            picked = list(q.choices.values()) if q else []
        counts = [0] * choices
        for c in picked:
            if 0 <= c < choices:
                counts[c] += 1
        n = len(picked)
        return {"answered": n, "counts": counts,
                "shares": [round(c / n, 4) if n else 0.0 for c in counts]}
