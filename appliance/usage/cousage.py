"""Co-usage: which lesson learners went on to after which, from their lesson sequences.

One counting rule serves both sides: the device's own table (from ``usage.db``, kept
up to date by :func:`refresh`, never on a request) and the national table
(``ketang recommend build``, from xAPI statements that came back from schools). For
each pseudonymous actor (a tablet, or a projector's class), lessons are taken in the
order they were opened; each time the lesson changes from A to B, the pair A → B gets
1, and A → the lesson after B gets :data:`SECOND_WEIGHT` (a learner who went A, B, C
also "went on" from A to C). Nothing but lesson ids and counts is kept: no actor,
time or school leaves this module's files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from appliance.config import Settings
from content_cache.atomic import atomic_write_bytes
from content_cache.related import MAX_PER_LESSON, Table

from .db import UsageDB, db_path

FILE_NAME = "cousage.json"
FORMAT = "ketang-cousage/1"
SECOND_WEIGHT = 0.5
KEEP_PER_LESSON = 50     # kept per lesson in the device's file (top by count)
MAX_ACTORS = 20_000      # actors whose last two lessons are remembered between runs
BATCH = 5_000
LESSON_EVENTS = ("lesson-opened", "projected")

Pairs = dict[str, dict[str, float]]


class Counter:
    """Counts lesson-to-lesson moves, fed one (actor, lesson) at a time in time order."""

    def __init__(self, pairs: Pairs | None = None,
                 last: dict[str, list[str]] | None = None) -> None:
        self.pairs: Pairs = pairs or {}
        self.last: dict[str, list[str]] = last or {}

    def add(self, actor: str, lesson: str) -> None:
        """One lesson opened by one actor (repeats of the current lesson count nothing)."""
        seen = self.last.get(actor, [])
        if seen and seen[-1] == lesson:
            return
        if seen:
            self._bump(seen[-1], lesson, 1.0)
            if len(seen) > 1 and seen[-2] != lesson:
                self._bump(seen[-2], lesson, SECOND_WEIGHT)
        self.last.pop(actor, None)          # re-insert: dict order is recency
        self.last[actor] = [*seen[-1:], lesson]

    def _bump(self, a: str, b: str, w: float) -> None:
        row = self.pairs.setdefault(a, {})
        row[b] = row.get(b, 0.0) + w

    def trim(self, per_lesson: int = KEEP_PER_LESSON, actors: int = MAX_ACTORS) -> None:
        """Keep the best ``per_lesson`` moves per lesson and the most recent actors."""
        for a, row in self.pairs.items():
            if len(row) > per_lesson:
                self.pairs[a] = dict(sorted(row.items(), key=lambda p: (-p[1], p[0]))
                                     [:per_lesson])
        while len(self.last) > actors:
            del self.last[next(iter(self.last))]

    def table(self, per_lesson: int = MAX_PER_LESSON) -> Table:
        """Best moves per lesson, as a co-usage table (content_cache.related)."""
        return {a: sorted(row.items(), key=lambda p: (-p[1], p[0]))[:per_lesson]
                for a, row in self.pairs.items() if row}


def table_path(data_dir: Path) -> Path:
    """Where the device's own co-usage table is kept."""
    return Path(data_dir) / FILE_NAME


def load_state(path: Path) -> tuple[int, Counter]:
    """The device's table as last written: (last seq counted, counter). A missing or
    unreadable file starts again from nothing (it is rebuilt from usage.db)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise ValueError("format")
        return int(doc["seq"]), Counter(doc["pairs"], doc["last"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return 0, Counter()


def refresh(settings: Settings) -> int:
    """Count the usage events stored since the last run into ``cousage.json``
    (atomically: temp, fsync, rename); return how many events were read.

    Runs after uploads and on the usage schedule (:mod:`appliance.usage.schedule`),
    never while serving a request. Writes nothing when no event is new.
    """
    data_dir = settings.device.data_dir
    if not db_path(data_dir).exists():
        return 0
    path = table_path(data_dir)
    seq, counter = load_state(path)
    db = UsageDB(data_dir, settings.usage)
    read = 0
    try:
        while True:
            rows = db.db.execute_sql(
                "SELECT seq, actor, lesson, resource, type FROM event WHERE seq > ?"
                " ORDER BY seq LIMIT ?", (seq, BATCH)).fetchall()
            if not rows:
                break
            for s, actor, lesson, resource, kind in rows:
                if kind in LESSON_EVENTS:
                    counter.add(actor, lesson or resource)
                seq = s
            read += len(rows)
    finally:
        db.close()
    if read:
        counter.trim()
        atomic_write_bytes(path, json.dumps(
            {"format": FORMAT, "seq": seq, "pairs": counter.pairs, "last": counter.last},
            separators=(",", ":")).encode())
    return read


class LocalTable:
    """The device's own table for the web side: read again only when the file changes."""

    def __init__(self, data_dir: Path) -> None:
        self.path = table_path(data_dir)
        self._stamp: tuple[int, int] | None = None
        self._pairs: Pairs = {}

    def moves(self, lesson: str) -> dict[str, float]:
        """Where this school's learners went on to from ``lesson``, with counts."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            return {}
        if stamp != self._stamp:
            self._pairs = load_state(self.path)[1].pairs
            self._stamp = stamp
        return self._pairs.get(lesson, {})


def blend(local: dict[str, float], national: Iterable[tuple[str, float]],
          exclude: set[str], limit: int = 5, prior: float = 20.0) -> list[str]:
    """Rank "others went on to": both sources normalised to shares, the school's own
    weighted by how much it has seen (``n / (n + prior)``), the national filling in."""
    nat = dict(national)
    n_local, n_nat = sum(local.values()), sum(nat.values())
    w = n_local / (n_local + prior) if n_local else 0.0
    score: dict[str, float] = {}
    for k, v in local.items():
        score[k] = score.get(k, 0.0) + w * v / n_local
    for k, v in nat.items():
        score[k] = score.get(k, 0.0) + (1 - w) * v / n_nat
    ranked = sorted((k for k in score if k not in exclude), key=lambda k: (-score[k], k))
    return ranked[:limit]


def from_statements(statements: Iterable[dict[str, Any]]) -> Counter:
    """Count co-usage from xAPI statements (any order; sorted by time per actor).

    A lesson is the object of a ``launched``/``attended`` statement whose activity type
    is a lesson; its id is the last part of the activity IRI (docs/usage.md).
    """
    seen: list[tuple[str, str, str]] = []
    for st in statements:
        lesson = statement_lesson(st)
        if lesson is None:
            continue
        actor = st.get("actor", {}).get("account", {})
        who = f"{actor.get('homePage', '')}|{actor.get('name', '')}"
        seen.append((str(st.get("timestamp", "")), who, lesson))
    counter = Counter()
    for _, who, lesson in sorted(seen):
        counter.add(who, lesson)
    return counter


def statement_lesson(st: Any) -> str | None:
    """The lesson id a statement opens, or None when it opens none."""
    from urllib.parse import unquote

    from .xapi import ACTIVITY_TYPES, VERBS

    if not isinstance(st, dict):
        return None
    verb = (st.get("verb") or {}).get("id")
    obj = st.get("object") or {}
    if not isinstance(obj, dict) or verb not in (VERBS["lesson-opened"][0], VERBS["projected"][0]):
        return None
    if (obj.get("definition") or {}).get("type") != ACTIVITY_TYPES["lesson"]:
        return None
    oid = obj.get("id")
    if not isinstance(oid, str) or "/" not in oid:
        return None
    return unquote(oid.rsplit("/", 1)[1]) or None
