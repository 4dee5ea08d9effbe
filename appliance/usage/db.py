"""The usage database: its own SQLite file (WAL) in the data folder.

Events are written in batches by one writer thread (group commit: every request that
arrived while the previous transaction was committing goes into the next one), and a
request is answered only after its transaction is committed with ``synchronous=FULL``,
so an acknowledged event survives a power cut. Nothing runs on a timer: an idle device
writes nothing.

Tables: ``event`` (raw events, ``seq`` grows forever; its unique key is the time as
sent and the id, a key that grows with time, so a commit touches a few index pages
rather than one per event as a random UUID key would; an id already stored with
another time is found in the writer's in-memory set of stored ids), ``rollup`` (per
day, resource, grade, subject, view and type: how many events and seconds), ``cursor``
(how far the LRS upload and the drive outbox have got), ``meta`` (counters, last
error), ``failed`` (statements the LRS refused for good). Raw events are kept up to
``usage.raw_max_days`` and ``usage.raw_max_mb``, rollups up to ``usage.rollup_max_days``,
and SQLite itself refuses to grow the file past ``usage.max_mb``. Room is made only by
removing events that have left the device; when none is left, new events are refused
(:class:`UsageFull`) and the acknowledged ones kept.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from peewee import OperationalError, SqliteDatabase

from appliance.config import UsageSettings

from .events import Event, Resolver, iso

DB_NAME = "usage.db"
PAGE_SIZE = 4096
PRUNE_EVERY = 600.0  # seconds between retention checks (only ever on a write)

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS event (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL, sent_ms INTEGER NOT NULL, type TEXT NOT NULL, time TEXT NOT NULL,
        actor TEXT NOT NULL, view TEXT NOT NULL, resource TEXT NOT NULL,
        lesson TEXT NOT NULL DEFAULT '',
        channel TEXT NOT NULL DEFAULT '', version INTEGER NOT NULL DEFAULT 0,
        grade TEXT NOT NULL DEFAULT '', subject TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL DEFAULT '', extra TEXT NOT NULL DEFAULT '{}',
        UNIQUE (sent_ms, id))""",
    "CREATE INDEX IF NOT EXISTS event_time ON event(time)",
    """CREATE TABLE IF NOT EXISTS rollup (
        day TEXT NOT NULL, resource TEXT NOT NULL, grade TEXT NOT NULL, subject TEXT NOT NULL,
        view TEXT NOT NULL, type TEXT NOT NULL, events INTEGER NOT NULL,
        seconds REAL NOT NULL, PRIMARY KEY (day, resource, grade, subject, view, type)
    ) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS cursor (name TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS failed (seq INTEGER PRIMARY KEY, id TEXT NOT NULL,
        error TEXT NOT NULL, at TEXT NOT NULL)""",
]
COLUMNS = ("seq", "id", "type", "time", "actor", "view", "resource", "lesson", "channel",
           "version", "grade", "subject", "kind", "extra")


class UsageFull(Exception):
    """The database reached ``usage.max_mb`` even after pruning."""


def db_path(data_dir: Path) -> Path:
    """Where the usage database lives."""
    return Path(data_dir) / DB_NAME


@dataclass(frozen=True)
class Row:
    """A stored event, as read back for upload or export."""

    seq: int
    id: str
    type: str
    time: str
    actor: str
    view: str
    resource: str
    lesson: str
    channel: str
    version: int
    grade: str
    subject: str
    kind: str
    extra: dict[str, Any]


@contextlib.contextmanager
def write_tx(db: SqliteDatabase) -> Iterator[None]:
    """A write transaction (BEGIN IMMEDIATE … COMMIT); rolled back on any error.

    SQLite rolls back by itself on some errors (a full database), so a failed
    ROLLBACK is not an error of its own.
    """
    db.execute_sql("BEGIN IMMEDIATE")
    try:
        yield
        db.execute_sql("COMMIT")
    except BaseException:
        with contextlib.suppress(OperationalError):
            db.execute_sql("ROLLBACK")
        raise


class UsageDB:
    """One usage database. Safe to share between threads (one connection per thread)."""

    def __init__(self, data_dir: Path, settings: UsageSettings | None = None) -> None:
        self.settings = settings or UsageSettings()
        self.path = db_path(data_dir)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = SqliteDatabase(str(self.path), pragmas={
            "journal_mode": "wal",
            "synchronous": "full",
            "foreign_keys": 0,
            "busy_timeout": 10000,
            "page_size": PAGE_SIZE,
            "max_page_count": max(64, self.settings.max_mb * 1_000_000 // PAGE_SIZE),
            "journal_size_limit": 4_000_000,
        })
        if not self.db.execute_sql("SELECT 1 FROM sqlite_master WHERE name = 'failed'"
                                   ).fetchone():
            with self.tx():
                for stmt in SCHEMA:
                    self.db.execute_sql(stmt)
        self._last_prune = 0.0
        self._ids: set[int] | None = None

    def close(self) -> None:
        """Close this thread's connection."""
        self.db.close()

    def tx(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction on the usage database (see :func:`write_tx`)."""
        return write_tx(self.db)

    # -- writing -------------------------------------------------------------------

    def store(self, batches: Iterable[list[tuple[Event, Any]]]) -> list[list[bool]]:
        """Insert several requests' events in one transaction; per event, was it new?

        Each event comes with its catalog place (a :class:`~appliance.usage.events.Where`).
        An id already stored is not stored again, whatever time it comes with. Raises
        UsageFull, storing nothing, when the raw events fill ``usage.raw_max_mb`` (or
        nine tenths of ``usage.max_mb``) and no event that has left the device is left
        to remove: events acknowledged but not yet sent are never removed for room.
        """
        batches = list(batches)
        if self.used_bytes() > self.room_limit():
            self.prune()
            if self.used_bytes() > self.room_limit():
                raise self._full()
        try:
            return self._store(batches)
        except OperationalError as e:
            if "full" not in str(e):
                raise
        self.prune()
        try:
            return self._store(batches)
        except OperationalError as e:
            if "full" in str(e):
                raise self._full() from e
            raise

    def room_limit(self) -> int:
        """Bytes the raw events may fill: ``usage.raw_max_mb``, at most 90 % of
        ``usage.max_mb`` (the rest is headroom for cursors, counters and rollups)."""
        s = self.settings
        return min(s.raw_max_mb * 1_000_000, s.max_mb * 900_000)

    def _full(self) -> UsageFull:
        pending = self.count_after(max(self.cursor("lrs"), self.cursor("drive")))
        return UsageFull(
            f"the usage database is full (usage.raw_max_mb {self.settings.raw_max_mb} MB, "
            f"usage.max_mb {self.settings.max_mb} MB) with {pending} events that have not "
            "left the device yet; they are kept, and new ones are refused until an upload "
            "or a drive's trip back takes them")

    def known_ids(self) -> set[int]:
        """The ids of the stored events (as UUID integers), loaded on the first write.

        Kept in memory by the writer so a repeated id is found whatever time it comes
        with, without an on-disk index on the random id (which would cost one index page
        written per event: see docs/usage.md). About 90 bytes per kept event.
        """
        if self._ids is None:
            self._ids = {_id_key(r[0]) for r in
                         self.db.execute_sql("SELECT id FROM event").fetchall()}
        return self._ids

    def _store(self, batches: list[list[tuple[Event, Any]]]) -> list[list[bool]]:
        out: list[list[bool]] = []
        known = self.known_ids()
        added: set[int] = set()
        with self.tx():
            for batch in batches:
                flags = []
                for ev, where in batch:
                    key = _id_key(ev.id)
                    if key in known or key in added:
                        flags.append(False)
                        continue
                    cur = self.db.execute_sql(
                        "INSERT OR IGNORE INTO event (id, sent_ms, type, time, actor, view,"
                        " resource, lesson, channel, version, grade, subject, kind, extra)"
                        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (ev.id, ev.sent_ms, ev.type, ev.time, ev.actor, ev.view, ev.resource,
                         ev.lesson or where.lesson, ev.channel or where.channel,
                         ev.version or where.version, where.grade, where.subject, where.kind,
                         json.dumps(ev.extra, separators=(",", ":"), sort_keys=True)))
                    new = cur.rowcount == 1
                    flags.append(new)
                    if new:
                        added.add(key)
                        self.db.execute_sql(
                            "INSERT INTO rollup VALUES (?,?,?,?,?,?,1,?) ON CONFLICT DO UPDATE"
                            " SET events = events + 1, seconds = seconds + excluded.seconds",
                            (ev.time[:10], ev.resource, where.grade, where.subject, ev.view,
                             ev.type, float(ev.extra.get("seconds", 0))))
                out.append(flags)
        known |= added      # only once committed
        if time.monotonic() - self._last_prune > PRUNE_EVERY:
            self.prune()
        return out

    def prune(self, now: datetime | None = None) -> int:
        """Apply the retention settings; return how many raw events were removed.

        Runs only after a write (never on a timer). Raw events older than
        ``usage.raw_max_days`` go, counted in ``meta.dropped`` if they never left the
        device; to keep under :meth:`room_limit`, only events that left the device (by
        the LRS or a drive) are removed, oldest first.
        """
        self._last_prune = time.monotonic()
        now = now or datetime.now(UTC)
        s = self.settings
        removed = 0
        with self.tx():
            cut = iso(now - timedelta(days=s.raw_max_days))
            removed += self._drop("time < ?", (cut,))
            day = (now - timedelta(days=s.rollup_max_days)).strftime("%Y-%m-%d")
            self.db.execute_sql("DELETE FROM rollup WHERE day < ?", (day,))
        while self.used_bytes() > self.room_limit():
            sent = max(self.cursor("lrs"), self.cursor("drive"))
            with self.tx():
                n = self._drop("seq IN (SELECT seq FROM event WHERE seq <= ? ORDER BY seq"
                               " LIMIT 2000)", (sent,))
            removed += n
            if n == 0:
                break
        if removed:
            self._ids = None    # read again at the next write
        return removed

    def _drop(self, where: str, args: tuple) -> int:
        sent = max(self.cursor("lrs"), self.cursor("drive"))
        (unsent,) = self.db.execute_sql(
            f"SELECT count(*) FROM event WHERE ({where}) AND seq > ?", (*args, sent)).fetchone()
        n = self.db.execute_sql(f"DELETE FROM event WHERE {where}", args).rowcount
        if unsent:
            self.bump("dropped", unsent)
        return n

    # -- cursors and counters ------------------------------------------------------

    def cursor(self, name: str) -> int:
        """Highest seq that left the device this way (``lrs`` or ``drive``)."""
        row = self.db.execute_sql("SELECT seq FROM cursor WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    def advance(self, name: str, seq: int, counter: str, count: int,
                failed: Sequence[tuple[int, str, str]] = ()) -> None:
        """Move a cursor forward and count what went, in one transaction."""
        with self.tx():
            self.db.execute_sql(
                "INSERT INTO cursor VALUES (?, ?) ON CONFLICT DO UPDATE"
                " SET seq = max(seq, excluded.seq)", (name, seq))
            self.bump(counter, count)
            at = iso(datetime.now(UTC))
            for fseq, fid, err in failed:
                self.db.execute_sql("INSERT OR REPLACE INTO failed VALUES (?,?,?,?)",
                                    (fseq, fid, err[:500], at))

    def bump(self, key: str, n: int) -> None:
        """Add ``n`` to a counter in ``meta``."""
        if n:
            self.db.execute_sql(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT DO UPDATE"
                " SET value = CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER)",
                (key, str(n)))

    def set_meta(self, **values: str) -> None:
        """Set text values in ``meta`` (last error, last upload time)."""
        with self.tx():
            for k, v in values.items():
                self.db.execute_sql("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, v))

    def meta(self) -> dict[str, str]:
        """Everything in ``meta``."""
        return dict(self.db.execute_sql("SELECT key, value FROM meta").fetchall())

    # -- reading -------------------------------------------------------------------

    def after(self, seq: int, limit: int) -> list[Row]:
        """Up to ``limit`` events with a seq above ``seq``, in order."""
        return self._rows("seq > ? ORDER BY seq LIMIT ?", (seq, limit))

    def _rows(self, where: str, args: tuple) -> list[Row]:
        rows = self.db.execute_sql(
            f"SELECT {', '.join(COLUMNS)} FROM event WHERE {where}", args).fetchall()
        return [Row(*r[:-1], json.loads(r[-1])) for r in rows]  # type: ignore[call-arg]

    def count_after(self, seq: int) -> int:
        """How many events have a seq above ``seq``."""
        return self.db.execute_sql("SELECT count(*) FROM event WHERE seq > ?",
                                   (seq,)).fetchone()[0]

    def has(self, event_id: str) -> bool:
        """Is this event stored?"""
        return self.db.execute_sql("SELECT 1 FROM event WHERE id = ?",
                                   (event_id,)).fetchone() is not None

    def of_type(self, type_: str, since: str) -> list[Row]:
        """Every event of one type from ``since`` (an ISO time) on, in order."""
        return self._rows("time >= ? AND type = ? ORDER BY seq", (since, type_))

    def ids(self) -> set[str]:
        """Every stored event id (for tests and benchmarks)."""
        return {r[0] for r in self.db.execute_sql("SELECT id FROM event").fetchall()}

    def rollups(self, since: str = "") -> list[dict[str, Any]]:
        """Daily rollups from ``since`` (YYYY-MM-DD) on."""
        rows = self.db.execute_sql(
            "SELECT day, resource, grade, subject, view, type, events, seconds FROM rollup"
            " WHERE day >= ? ORDER BY day, resource, view, type", (since,)).fetchall()
        keys = ("day", "resource", "grade", "subject", "view", "type", "events", "seconds")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def failed_count(self) -> int:
        """Statements the LRS refused for good."""
        return self.db.execute_sql("SELECT count(*) FROM failed").fetchone()[0]

    def used_bytes(self) -> int:
        """Bytes of the database file in use (free pages not counted)."""
        pages = self.db.execute_sql("PRAGMA page_count").fetchone()[0]
        free = self.db.execute_sql("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * PAGE_SIZE


def _id_key(event_id: str) -> int:
    """An event id as the integer of its UUID (ids are checked UUIDs)."""
    return uuid.UUID(event_id).int


class _Request:
    __slots__ = ("items", "done", "result", "error")

    def __init__(self, items: list[tuple[Event, Any]]) -> None:
        self.items = items
        self.done = threading.Event()
        self.result: list[bool] = []
        self.error: BaseException | None = None


class BatchWriter:
    """Group commit: callers block in :meth:`submit` until their events are committed."""

    def __init__(self, db: UsageDB, resolver: Resolver | None = None,
                 delay: float = 0.02) -> None:
        self.db = db
        self.resolver = resolver or Resolver(None)
        self.delay = delay
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="ketang-usage-writer",
                                        daemon=True)
        self._thread.start()

    def submit(self, events: list[Event], timeout: float = 30.0) -> list[bool]:
        """Store ``events`` durably; per event, was it new (False: a repeated id)?"""
        where = [(ev, self.resolver.where(ev.channel, ev.resource)) for ev in events]
        req = _Request(where)
        self._queue.put(req)
        if not req.done.wait(timeout):
            raise TimeoutError("the usage database did not commit in time")
        if req.error is not None:
            raise req.error
        return req.result

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if self.delay:
                time.sleep(self.delay)  # let concurrent requests join this commit
            batch = [first]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                results = self.db.store([r.items for r in batch])
                for r, flags in zip(batch, results, strict=True):
                    r.result = flags
            except BaseException as e:  # noqa: BLE001 - every waiter must hear of it
                for r in batch:
                    r.error = e
            for r in batch:
                r.done.set()
