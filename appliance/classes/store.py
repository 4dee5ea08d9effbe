"""The classes database: ``classes.db`` in the data folder (SQLite, WAL, synchronous=FULL).

Tables: ``klass`` (a class: its name such as ``(2)班``, the channel and the catalog node
whose lessons are its curriculum, and the grade, subject and edition titles copied from
the catalog when the class was added, so a class still reads right if a release drops
its node), ``taught`` (per class and lesson: taught or not, by whom: ``projected`` or
``teacher``, and when), ``part`` (the parts of a lesson projected for a class) and
``meta`` (how far the usage events have been read). Every change is one transaction
(``BEGIN IMMEDIATE`` … ``COMMIT``), so a power cut leaves the change whole or absent.
Reading writes nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from peewee import SqliteDatabase

from appliance.usage.db import write_tx

DB_NAME = "classes.db"
NAME_MAX = 20

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS klass (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL, channel TEXT NOT NULL, node TEXT NOT NULL,
        grade TEXT NOT NULL DEFAULT '', subject TEXT NOT NULL DEFAULT '',
        edition TEXT NOT NULL DEFAULT '', created TEXT NOT NULL,
        UNIQUE (channel, node, name))""",
    """CREATE TABLE IF NOT EXISTS taught (
        klass INTEGER NOT NULL, channel TEXT NOT NULL, lesson TEXT NOT NULL,
        taught INTEGER NOT NULL, source TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (klass, channel, lesson)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS part (
        klass INTEGER NOT NULL, channel TEXT NOT NULL, lesson TEXT NOT NULL,
        resource TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (klass, channel, lesson, resource)) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]


class ClassError(ValueError):
    """A class cannot be added or changed as asked; the message says why (English;
    ``code`` lets the views say it in the reader's language)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Klass:
    """One class, e.g. 三年级 (2)班 · 数学 · 人教版."""

    id: int
    name: str
    channel: str
    node: str
    grade: str
    subject: str
    edition: str
    created: str

    def label(self) -> str:
        """``三年级(2)班 · 数学 · 人教版``."""
        return " · ".join(p for p in (self.grade + self.name, self.subject, self.edition) if p)

    def as_json(self) -> dict[str, Any]:
        """The class as the JSON API gives it."""
        return dict(asdict(self), label=self.label())


def now_iso() -> str:
    """The time now, as stored (``2026-11-30T08:15:00.123Z``)."""
    t = datetime.now(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def check_name(name: Any) -> str:
    """A class name (``(2)班``, ``二班``, ``3班``): 1–20 characters on one line."""
    if not isinstance(name, str):
        raise ClassError("name", "the class name must be text such as (2)班")
    name = " ".join(name.split())
    if not name:
        raise ClassError("name", "the class name is empty; give one such as (2)班")
    if len(name) > NAME_MAX:
        raise ClassError("name", f"the class name is {len(name)} characters long; "
                                 f"use at most {NAME_MAX}, such as (2)班")
    if any(not ch.isprintable() or ch in "<>&\"'" for ch in name):
        raise ClassError("name", "the class name holds characters that are not allowed "
                                 "(< > & quotes or control characters); use letters, digits "
                                 "and brackets such as (2)班")
    return name


class ClassesDB:
    """The device's classes database. Safe to share between threads."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = SqliteDatabase(str(self.path), pragmas={
            "journal_mode": "wal", "synchronous": "full", "busy_timeout": 10000,
            "foreign_keys": 0})
        self.lock = threading.RLock()
        if not self.db.execute_sql(
                "SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
            with self.tx():
                for stmt in SCHEMA:
                    self.db.execute_sql(stmt)

    def close(self) -> None:
        """Close this thread's connection."""
        self.db.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[None]:
        """One write transaction, rolled back whole on any error."""
        with self.lock, write_tx(self.db):
            yield

    # -- classes -------------------------------------------------------------------

    def add(self, name: str, channel: str, node: str, grade: str, subject: str,
            edition: str) -> Klass:
        """Add a class (its name checked); raises ClassError when it already exists."""
        name = check_name(name)
        with self.tx():
            if self.db.execute_sql("SELECT 1 FROM klass WHERE channel = ? AND node = ? AND "
                                   "name = ?", (channel, node, name)).fetchone():
                raise ClassError("exists", f"the class {grade}{name} · {subject} is already "
                                           "on this device")
            cur = self.db.execute_sql(
                "INSERT INTO klass (name, channel, node, grade, subject, edition, created)"
                " VALUES (?,?,?,?,?,?,?)", (name, channel, node, grade, subject, edition,
                                            now_iso()))
            new_id = cur.lastrowid
        found = self.get(new_id)
        assert found is not None
        return found

    def remove(self, class_id: int) -> None:
        """Remove a class and its progress; raises ClassError when there is none."""
        with self.tx():
            n = self.db.execute_sql("DELETE FROM klass WHERE id = ?", (class_id,)).rowcount
            if not n:
                raise ClassError("missing", f"there is no class {class_id} on this device")
            self.db.execute_sql("DELETE FROM taught WHERE klass = ?", (class_id,))
            self.db.execute_sql("DELETE FROM part WHERE klass = ?", (class_id,))

    def get(self, class_id: int) -> Klass | None:
        """One class, or None."""
        row = self.db.execute_sql("SELECT id, name, channel, node, grade, subject, edition,"
                                  " created FROM klass WHERE id = ?", (class_id,)).fetchone()
        return Klass(*row) if row else None

    def all(self) -> list[Klass]:
        """Every class, by grade, then subject, then name (the order they were added)."""
        rows = self.db.execute_sql("SELECT id, name, channel, node, grade, subject, edition,"
                                   " created FROM klass ORDER BY id").fetchall()
        return [Klass(*r) for r in rows]

    # -- progress ------------------------------------------------------------------

    def taught(self, class_id: int) -> dict[tuple[str, str], tuple[bool, str, str]]:
        """``(channel, lesson) → (taught, source, at)`` for one class."""
        rows = self.db.execute_sql("SELECT channel, lesson, taught, source, at FROM taught"
                                   " WHERE klass = ?", (class_id,)).fetchall()
        return {(c, lesson): (bool(t), s, at) for c, lesson, t, s, at in rows}

    def started(self, class_id: int) -> list[tuple[str, str, set[str]]]:
        """Lessons begun for a class and not taught: ``(channel, lesson, parts projected)``,
        the one projected last first."""
        rows = self.db.execute_sql(
            "SELECT p.channel, p.lesson, max(p.at), group_concat(p.resource, char(31))"
            " FROM part p LEFT JOIN taught t ON t.klass = p.klass AND t.channel = p.channel"
            " AND t.lesson = p.lesson WHERE p.klass = ? AND coalesce(t.taught, 0) = 0"
            " GROUP BY p.channel, p.lesson ORDER BY 3 DESC, 2", (class_id,)).fetchall()
        return [(c, lesson, set(parts.split("\x1f"))) for c, lesson, _at, parts in rows]

    def mark(self, class_id: int, channel: str, lesson: str, taught: bool) -> None:
        """The teacher marks a lesson taught, or not taught (which also forgets the parts
        projected so far, so projecting it whole again counts it again)."""
        with self.tx():
            if not self.db.execute_sql("SELECT 1 FROM klass WHERE id = ?",
                                       (class_id,)).fetchone():
                raise ClassError("missing", f"there is no class {class_id} on this device")
            self._set_taught(class_id, channel, lesson, taught, "teacher", now_iso())
            if not taught:
                self.db.execute_sql("DELETE FROM part WHERE klass = ? AND channel = ? AND "
                                    "lesson = ?", (class_id, channel, lesson))

    def _set_taught(self, class_id: int, channel: str, lesson: str, taught: bool,
                    source: str, at: str) -> None:
        self.db.execute_sql("INSERT OR REPLACE INTO taught VALUES (?,?,?,?,?,?)",
                            (class_id, channel, lesson, int(taught), source, at))

    def record_parts(self, parts: list[tuple[int, str, str, str, str]], cursor: int,
                     complete: dict[tuple[int, str, str], list[str]]) -> list[tuple[int, str, str]]:
        """Store projected parts ``(class, channel, lesson, resource, at)`` and the usage
        cursor in one transaction; a lesson whose parts (``complete``: its resource ids)
        were all projected becomes taught. Parts older than the teacher's "not taught"
        are ignored. Returns the lessons that became taught."""
        became = []
        with self.tx():
            touched = set()
            for k, channel, lesson, resource, at in parts:
                row = self.db.execute_sql(
                    "SELECT taught, source, at FROM taught WHERE klass = ? AND channel = ? "
                    "AND lesson = ?", (k, channel, lesson)).fetchone()
                if row and not row[0] and row[1] == "teacher" and row[2] >= at:
                    continue   # projected before the teacher said "not taught"
                self.db.execute_sql("INSERT OR IGNORE INTO part VALUES (?,?,?,?,?)",
                                    (k, channel, lesson, resource, at))
                touched.add((k, channel, lesson, at))
            for k, channel, lesson, at in sorted(touched, key=lambda t: t[3]):
                need = complete.get((k, channel, lesson))
                if not need:
                    continue
                have = {r for (r,) in self.db.execute_sql(
                    "SELECT resource FROM part WHERE klass = ? AND channel = ? AND lesson = ?",
                    (k, channel, lesson)).fetchall()}
                row = self.db.execute_sql(
                    "SELECT taught FROM taught WHERE klass = ? AND channel = ? AND lesson = ?",
                    (k, channel, lesson)).fetchone()
                if set(need) <= have and not (row and row[0]):
                    self._set_taught(k, channel, lesson, True, "projected", at)
                    became.append((k, channel, lesson))
            self.db.execute_sql("INSERT OR REPLACE INTO meta VALUES ('usage_seq', ?)",
                                (str(cursor),))
        return became

    def usage_cursor(self) -> int:
        """The last usage event seq read for progress."""
        row = self.db.execute_sql("SELECT value FROM meta WHERE key = 'usage_seq'").fetchone()
        return int(row[0]) if row else 0
