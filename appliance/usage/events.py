"""Usage events: what a page may send, how it is checked, and what a stored event holds.

A batch is ``{"events": [...], "sent_at": "<ISO time on the sender's clock>"}``. Each
event is checked whole; the first wrong one is named (its index, its id and what is
wrong) and the batch is refused. See docs/usage.md for the fields.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from content_cache.library import Library

TYPES = (
    "lesson-opened", "video-played", "video-paused", "video-progress", "video-completed",
    "pdf-page-viewed", "exercise-attempted", "exercise-answered", "app-opened", "projected",
    "part-projected",
)
VIEWS = ("projector", "tablet")
EXTRA_KEYS = {"position": float, "duration": float, "seconds": float, "page": int,
              "correct": bool, "class": int}
EXTRA_LIMITS = {"position": 86400.0, "duration": 86400.0, "seconds": 86400.0, "page": 100000,
                "class": 2**31 - 1}
# Made by the device itself, never accepted from a page: live class answers
# (appliance.classes.answers), one per tablet and question.
DEVICE_TYPES = ("question-answered",)
TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
ACTOR = re.compile(r"^[A-Za-z0-9-]{8,64}$")
EARLIEST = datetime(2020, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(minutes=5)
CLOCK_SLACK = timedelta(seconds=60)


class EventError(ValueError):
    """One event of a batch is wrong; ``index`` and ``event_id`` say which."""

    def __init__(self, index: int | None, event_id: str | None, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.event_id = event_id


@dataclass(frozen=True)
class Event:
    """A checked event, ready to store."""

    id: str
    type: str
    time: str  # UTC, ISO 8601 with milliseconds and "Z"
    actor: str
    view: str
    resource: str
    lesson: str = ""
    channel: str = ""
    version: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    sent_ms: int = 0  # the time as the sender sent it (before clock correction), in ms


def iso(t: datetime) -> str:
    """``2026-11-23T10:15:00.123Z``: the one time format events are stored in."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_time(value: Any) -> datetime:
    """An ISO 8601 time with a zone (``Z`` or ``+08:00``), as sent by ``Date.toISOString()``."""
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("is not an ISO 8601 time string")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueError(f"is not an ISO 8601 time ({value!r})") from e
    if t.tzinfo is None:
        raise ValueError(f"has no time zone ({value!r}); send UTC with a trailing Z")
    return t


def _str(doc: dict, key: str, pattern: re.Pattern, required: bool = True) -> str:
    v = doc.get(key, "")
    if v in ("", None) and not required:
        return ""
    if not isinstance(v, str) or not pattern.match(v):
        raise ValueError(f"{key} must be a short id (letters, digits, _ . : -), not {v!r}")
    return v


def check_event(doc: Any, now: datetime, skew: timedelta, oldest_days: int) -> Event:
    """One event from its JSON form; raises ValueError saying what is wrong."""
    if not isinstance(doc, dict):
        raise ValueError("is not a JSON object")
    unknown = set(doc) - {"id", "type", "time", "actor", "view", "resource", "lesson",
                          "channel", "version", "extra"}
    if unknown:
        raise ValueError(f"has unknown fields {sorted(unknown)}")
    try:
        eid = str(uuid.UUID(doc.get("id") if isinstance(doc.get("id"), str) else ""))
    except ValueError:
        raise ValueError(f"id must be a UUID made where the event happened, not "
                         f"{doc.get('id')!r}") from None
    etype = doc.get("type")
    if etype not in TYPES:
        raise ValueError(f"type {etype!r} is not one of {', '.join(TYPES)}")
    view = doc.get("view")
    if view not in VIEWS:
        raise ValueError(f"view {view!r} is not 'projector' or 'tablet'")
    actor = doc.get("actor")
    if not isinstance(actor, str) or not ACTOR.match(actor):
        raise ValueError("actor must be the tablet's pseudonymous id (8–64 letters, digits "
                         f"or -), not {actor!r}")
    try:
        sent = parse_time(doc.get("time"))
    except ValueError as e:
        raise ValueError(f"time {e}") from None
    t = sent + skew
    if t > now + FUTURE_SLACK:
        raise ValueError(f"time {doc['time']} is in the future (server time {iso(now)})")
    if t < max(EARLIEST, now - timedelta(days=oldest_days)):
        raise ValueError(f"time {doc['time']} is older than {oldest_days} days; too old to keep")
    version = doc.get("version", 0)
    if version in ("", None):
        version = 0
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**31:
        raise ValueError(f"version must be a release number, not {version!r}")
    extra = doc.get("extra", {}) or {}
    if not isinstance(extra, dict):
        raise ValueError("extra must be an object")
    clean: dict[str, Any] = {}
    for k, v in extra.items():
        kind = EXTRA_KEYS.get(k)
        if kind is None:
            raise ValueError(f"extra.{k} is not a known field ({', '.join(EXTRA_KEYS)})")
        if kind is bool:
            ok = isinstance(v, bool)
        else:
            ok = isinstance(v, int | float) and not isinstance(v, bool) and \
                0 <= v <= EXTRA_LIMITS[k] and v == v
        if not ok:
            raise ValueError(f"extra.{k} = {v!r} is not a valid {kind.__name__}")
        clean[k] = round(float(v), 3) if kind is float else v
    return Event(
        id=eid, type=etype, time=iso(t), actor=actor.lower(), view=view,
        resource=_str(doc, "resource", TOKEN),
        lesson=_str(doc, "lesson", TOKEN, required=False),
        channel=_str(doc, "channel", TOKEN, required=False),
        version=version, extra=clean, sent_ms=int(sent.timestamp() * 1000),
    )


def check_batch(doc: Any, max_batch: int, oldest_days: int,
                now: datetime | None = None) -> list[Event]:
    """Every event of a batch, checked; raises EventError naming the first bad one.

    When the sender's clock is more than a minute off (``sent_at`` against our clock),
    its event times are shifted by that difference: cheap tablets often lose the time.
    """
    now = now or datetime.now(UTC)
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise EventError(None, None, 'the body must be a JSON object {"events": [...]}')
    events = doc["events"]
    if not events:
        raise EventError(None, None, "the batch holds no events")
    if len(events) > max_batch:
        raise EventError(None, None, f"the batch holds {len(events)} events; send at most "
                                     f"{max_batch} per request")
    skew = timedelta(0)
    if doc.get("sent_at") is not None:
        try:
            skew = now - parse_time(doc["sent_at"])
        except ValueError as err:
            raise EventError(None, None, f"sent_at {err}") from None
        if abs(skew) < CLOCK_SLACK:
            skew = timedelta(0)
    out = []
    seen = set()
    for i, e in enumerate(events):
        eid = e.get("id") if isinstance(e, dict) and isinstance(e.get("id"), str) else None
        try:
            ev = check_event(e, now, skew, oldest_days)
        except ValueError as err:
            raise EventError(i, eid, f"event {i} ({eid or 'no id'}): {err}") from None
        if ev.id not in seen:
            seen.add(ev.id)
            out.append(ev)
    return out


@dataclass(frozen=True)
class Where:
    """Where a resource sits in the catalog (empty strings when it is not found)."""

    channel: str = ""
    version: int = 0
    lesson: str = ""
    grade: str = ""
    subject: str = ""
    kind: str = ""


class Resolver:
    """Finds each event's channel, version, lesson, grade and subject in the active catalogs."""

    def __init__(self, library: Library | None) -> None:
        self.library = library
        self._cache: dict[tuple, Where] = {}

    def where(self, channel: str, resource: str) -> Where:
        """The catalog place of ``resource`` (a resource id or a lesson id)."""
        if self.library is None:
            return Where(channel=channel)
        try:
            active = self.library.active()
        except Exception:  # noqa: BLE001 - a broken library must not refuse usage events
            return Where(channel=channel)
        channels = [channel] if channel in active else sorted(active)
        for ch in channels:
            version = active[ch].version
            key = (ch, version, resource)
            if key in self._cache:
                found = self._cache[key]
            else:
                found = self._lookup(ch, version, resource)
                if len(self._cache) > 50_000:
                    self._cache.clear()
                self._cache[key] = found
            if found.lesson:
                return found
        return Where(channel=channel)

    def _lookup(self, channel: str, version: int, resource: str) -> Where:
        assert self.library is not None, "where() looks up only with a library"
        cat = self.library.catalog(channel)
        if cat is None:
            return Where()
        r = cat.Resource.get_or_none(cat.Resource.id == resource)
        lesson = r.lesson if r is not None else resource
        path = cat.breadcrumb(lesson)
        if not path or path[-1]["kind"] != "lesson":
            return Where()
        by_kind = {n["kind"]: n["title"]["zh"] or n["id"] for n in path}
        return Where(channel, version, lesson, by_kind.get("grade", ""),
                     by_kind.get("subject", ""), r.kind if r is not None else "lesson")
