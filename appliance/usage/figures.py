"""The figures behind the usage charts, from the device's database or from statements.

The same :class:`Figures` feeds the dashboard (from ``usage.db``) and the district
report (from ingested xAPI statements, per school and for all schools), so both show
the same charts (:mod:`appliance.usage.charts`):

- lessons taught per week by subject: ``projected`` events (a lesson shown in class);
- most used resources: events per resource (lessons opened, videos, pages, answers);
- tablets active per day: distinct tablet ids of ``view = tablet`` events;
- usage waiting to leave and what left (device only; the district sees what arrived).

Reading writes nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
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


@dataclass
class Figures:
    """What the usage charts show; every list is in display order."""

    weeks: list[str] = field(default_factory=list)                 # "2026-W47"
    taught: dict[str, list[int]] = field(default_factory=dict)     # subject → per week
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
        self.events = 0
        self.last = ""

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
        return Figures(self.weeks, taught, self.top.most_common(TOP), self.days,
                       [len(self.tablets.get(d, ())) for d in self.days], {}, self.events,
                       self.last)


def device_figures(data_dir: Any, settings: Any, today: date | None = None) -> Figures:
    """The device's figures from ``usage.db`` (rollups, plus distinct tablets per day
    from the raw events of the last :data:`DAYS` days)."""
    today = today or datetime.now(UTC).date()
    b = _Builder(today)
    if not db_path(data_dir).exists():
        return b.figures()
    db = UsageDB(data_dir, settings)
    try:
        first = datetime.strptime(b.weeks[0] + "-1", "%G-W%V-%u").date().isoformat()
        for r in db.rollups(first):
            b.add(r["day"], r["type"], r["resource"], r["subject"], "", "", r["events"])
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


def statement_row(st: dict[str, Any]) -> dict[str, str] | None:
    """What the charts need of one statement: school, day, kind, resource, subject,
    view, actor; None for a statement that is not Ketang usage."""
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
            "actor": str(((st.get("actor") or {}).get("account") or {}).get("name", ""))}


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
        schools.setdefault(row["school"], _Builder(today)).add(*args, when=row["when"])
    return everyone.figures(), {k: b.figures() for k, b in sorted(schools.items())}
