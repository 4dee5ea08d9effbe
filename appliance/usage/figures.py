"""The figures behind the usage charts, from the device's database or from statements.

The same :class:`Figures` feeds the dashboard (from ``usage.db``) and the district
report (from ingested xAPI statements, per school and for all schools), so both show
the same charts (:mod:`appliance.usage.charts`):

- lessons taught per week by subject: ``projected`` events (a lesson shown in class);
- lessons taught per week by class: the lessons whose parts the projector showed for a
  class that week (``part-projected`` events with ``extra.class``; a lesson counts once
  per class and week). On the device a class is named by its label from ``classes.db``
  (given by the caller: usage does not import classes); a class's name does not leave
  the device, so the district names it by school, grade, subject and its number;
- most used resources: events per resource (lessons opened, videos, pages, answers);
- tablets active per day: distinct tablet ids of ``view = tablet`` events;
- usage waiting to leave and what left (device only; the district sees what arrived).

Reading writes nothing.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from .db import UsageDB, db_path
from .xapi import EXT, VERBS

WEEKS = 8
DAYS = 14
TOP = 10
UNKNOWN_SUBJECT = "其他 other"
CLASS_SERIES = 8            # classes drawn one by one; the rest added up as one
OTHER_CLASSES = "其他班级 other classes"


@dataclass
class Figures:
    """What the usage charts show; every list is in display order."""

    weeks: list[str] = field(default_factory=list)                 # "2026-W47"
    taught: dict[str, list[int]] = field(default_factory=dict)     # subject → per week
    classes: dict[str, list[int]] = field(default_factory=dict)    # class → per week
    top: list[tuple[str, int]] = field(default_factory=list)       # resource id, events
    days: list[str] = field(default_factory=list)                  # "2026-11-23"
    tablets: list[int] = field(default_factory=list)               # per day
    outbox: dict[str, int] = field(default_factory=dict)           # pending, sent, …
    events: int = 0
    last: str = ""                                                 # newest event time


def week_of(day: str) -> str:
    """ISO week of a ``YYYY-MM-DD`` day, as ``YYYY-Www``."""
    y, w, _ = date.fromisoformat(day[:10]).isocalendar()
    return f"{y}-W{w:02d}"


def _frame(today: date) -> tuple[list[str], list[str]]:
    weeks = sorted({week_of((today - timedelta(weeks=i)).isoformat()) for i in range(WEEKS)})
    days = [(today - timedelta(days=i)).isoformat() for i in range(DAYS - 1, -1, -1)]
    return weeks, days


class _Builder:
    def __init__(self, today: date) -> None:
        self.weeks, self.days = _frame(today)
        self.taught: dict[str, Counter[str]] = defaultdict(Counter)
        self.top: Counter[str] = Counter()
        self.tablets: dict[str, set[str]] = defaultdict(set)
        self.by_class: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.class_label: dict[str, str] = {}
        self.events = 0
        self.last = ""

    def add_class(self, key: str, label: str, day: str, lesson: str) -> None:
        """A part of ``lesson`` projected on ``day`` for the class ``key``, named ``label``."""
        week = week_of(day)
        if lesson and week in self.weeks:
            self.by_class[key][week].add(lesson)
            self.class_label.setdefault(key, label)

    def _classes(self) -> dict[str, list[int]]:
        rows = {k: [len(c.get(w, ())) for w in self.weeks] for k, c in self.by_class.items()}
        ranked = sorted((k for k in rows if any(rows[k])), key=lambda k: (-sum(rows[k]), k))
        named: dict[str, str] = {}
        for k in sorted(ranked[:CLASS_SERIES]):     # two classes of one name stay two
            label = self.class_label[k]
            n = 2
            while label in named.values():
                label, n = f"{self.class_label[k]} ({n})", n + 1
            named[k] = label
        out = {named[k]: rows[k] for k in sorted(named, key=lambda k: named[k])}
        rest = ranked[CLASS_SERIES:]
        if rest:
            out[OTHER_CLASSES] = [sum(rows[k][i] for k in rest) for i in range(len(self.weeks))]
        return out

    def add(self, day: str, kind: str, resource: str, subject: str, view: str, actor: str,
            n: int = 1, when: str = "") -> None:
        self.events += n
        self.last = max(self.last, when or day)
        if kind == "projected":
            self.taught[subject or UNKNOWN_SUBJECT][week_of(day)] += n
        if kind not in ("video-progress", "video-paused", "questionnaire-answered"):
            self.top[resource] += n
        if view == "tablet" and actor:
            self.tablets[day[:10]].add(actor)

    def figures(self) -> Figures:
        taught = {s: [c[w] for w in self.weeks] for s, c in sorted(self.taught.items())
                  if any(c[w] for w in self.weeks)}
        return Figures(self.weeks, taught, self._classes(), self.top.most_common(TOP),
                       self.days, [len(self.tablets.get(d, ())) for d in self.days], {},
                       self.events, self.last)


def class_number(extra: Any) -> int | None:
    """The class an event or statement was for (a whole number above 0), or None."""
    k = extra.get("class") if isinstance(extra, dict) else extra
    return k if isinstance(k, int) and not isinstance(k, bool) and k > 0 else None


def device_figures(data_dir: Any, settings: Any, today: date | None = None,
                   class_labels: Mapping[int, str] | None = None) -> Figures:
    """The device's figures from ``usage.db`` (rollups, plus distinct tablets per day
    and the lessons projected for each class from the raw events of the window);
    ``class_labels`` names the classes (``classes.db``'s labels, by class id)."""
    today = today or datetime.now(UTC).date()
    labels = class_labels or {}
    b = _Builder(today)
    if not db_path(data_dir).exists():
        return b.figures()
    db = UsageDB(data_dir, settings)
    try:
        first = datetime.strptime(b.weeks[0] + "-1", "%G-W%V-%u").date().isoformat()
        for r in db.rollups(first):
            b.add(r["day"], r["type"], r["resource"], r["subject"], "", "", r["events"])
        for when, lesson, extra in db.db.execute_sql(
                "SELECT time, lesson, extra FROM event WHERE type = 'part-projected' AND"
                " view = 'projector' AND time >= ? AND extra LIKE '%\"class\"%'",
                (first,)).fetchall():
            try:
                k = class_number(json.loads(extra))
            except ValueError:
                continue
            if k is not None:
                b.add_class(str(k), labels.get(k) or f"班级 class {k}", when[:10], lesson)
        for day, actors in db.db.execute_sql(
                "SELECT substr(time, 1, 10), count(DISTINCT actor) FROM event"
                " WHERE view = 'tablet' AND time >= ? GROUP BY 1", (b.days[0],)).fetchall():
            b.tablets[day] = {str(i) for i in range(actors)}
        fig = b.figures()
        lrs, drive = db.cursor("lrs"), db.cursor("drive")
        meta = db.meta()
        fig.outbox = {"pending": db.count_after(max(lrs, drive)),
                      "sent": int(meta.get("sent", 0)),
                      "carried": int(meta.get("carried", 0)),
                      "failed": db.failed_count(), "dropped": int(meta.get("dropped", 0))}
    finally:
        db.close()
    return fig


_TYPES = {v[0]: k for k, v in VERBS.items() if k != "app-opened"}


def _parent_lesson(st: dict[str, Any]) -> str:
    """The lesson a statement's object is part of (its ``parent`` activity's id)."""
    try:
        parents = st["context"]["contextActivities"]["parent"]
        return unquote(str(parents[0]["id"]).rsplit("/", 1)[-1])
    except (KeyError, TypeError, IndexError):
        return ""


def statement_row(st: dict[str, Any]) -> dict[str, str] | None:
    """What the charts need of one statement: school, day, kind, resource, subject,
    view, actor, and for a part projected for a class its lesson, class number, grade;
    None for a statement that is not Ketang usage."""
    try:
        ext = st["context"]["extensions"]
        verb = st["verb"]["id"]
        obj = st["object"]["id"]
        when = str(st["timestamp"])
    except (KeyError, TypeError):
        return None
    if not isinstance(ext, dict) or verb not in _TYPES or not isinstance(obj, str):
        return None
    return {"school": str(ext.get(EXT + "school", "")) or "(unnamed)",
            "device": str(ext.get(EXT + "device", "")),
            "day": when[:10], "when": when, "kind": _TYPES[verb],
            "resource": unquote(obj.rsplit("/", 1)[-1]),
            "subject": str(ext.get(EXT + "subject", "")),
            "view": str(ext.get(EXT + "view", "")),
            "actor": str(((st.get("actor") or {}).get("account") or {}).get("name", "")),
            "class": str(class_number(ext.get(EXT + "class")) or ""),
            "grade": str(ext.get(EXT + "grade", "")), "lesson": _parent_lesson(st)}


def statement_figures(statements: Iterable[dict[str, Any]], today: date | None = None
                      ) -> tuple[Figures, dict[str, Figures]]:
    """Figures for all schools and per school (by ``device.name``) from statements."""
    today = today or datetime.now(UTC).date()
    everyone = _Builder(today)
    schools: dict[str, _Builder] = {}
    for st in statements:
        row = statement_row(st)
        if row is None:
            continue
        try:
            week_of(row["day"])
        except ValueError:
            continue
        args = (row["day"], row["kind"], row["resource"], row["subject"], row["view"],
                f"{row['device']}|{row['actor']}")
        everyone.add(*args, when=row["when"])
        school = schools.setdefault(row["school"], _Builder(today))
        school.add(*args, when=row["when"])
        if row["class"] and row["kind"] == "part-projected" and row["view"] == "projector":
            key = f"{row['school']}|{row['device']}|{row['class']}"
            label = f"{row['grade']}{row['subject']} 班级 class {row['class']}".strip()
            school.add_class(key, label, row["day"], row["lesson"] or row["resource"])
            everyone.add_class(key, f"{row['school']} · {label}", row["day"],
                               row["lesson"] or row["resource"])
    return everyone.figures(), {k: b.figures() for k, b in sorted(schools.items())}
