"""The catalog: a read-only SQLite database (peewee) built from one activated release.

It holds the node tree, each lesson's resources and a full-text index that works
for Chinese (FTS5 with the trigram tokenizer). A catalog file is built once, beside
the old one, and never written again: readers open it immutable.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from peewee import (
    DatabaseError,
    FloatField,
    IntegerField,
    Model,
    OperationalError,
    SqliteDatabase,
    TextField,
)

from .atomic import fsync_dir
from .errors import KetangError
from .manifest import Manifest
from .questionnaire import Questionnaire
from .search_text import ReadBlob, exercise_text, pinyin_text, syllables

BATCH = 2000


def _models(db: SqliteDatabase) -> tuple[Any, Any, Any]:
    """Model classes bound to one database, so several catalogs can be open at once.

    Typed ``Any``: the classes are made per call, so mypy cannot see their fields.
    """

    class Base(Model):
        class Meta:
            database = db
            legacy_table_names = False

    class Info(Base):
        key = TextField(primary_key=True)
        value = TextField()

    class Node(Base):
        id = TextField(primary_key=True)
        parent = TextField(null=True, index=True)
        kind = TextField()
        position = IntegerField()
        title_zh = TextField(default="")
        title_en = TextField(default="")
        description_zh = TextField(default="")
        description_en = TextField(default="")

    class Resource(Base):
        id = TextField(primary_key=True)
        lesson = TextField(index=True)
        kind = TextField()
        position = IntegerField()
        title_zh = TextField(default="")
        title_en = TextField(default="")
        sha256 = TextField(index=True)
        size = IntegerField()
        media_type = TextField()
        duration = FloatField(null=True)

    return Info, Node, Resource


def shown_part(manifest: Manifest, has_blob: Callable[[str], bool]) -> Manifest:
    """The part of ``manifest`` a device can show: lessons whose every blob it holds.

    Nodes above lessons are kept only when some shown lesson sits under them.
    """
    missing = {r.lesson for r in manifest.resources if not has_blob(r.sha256)}
    if not missing:
        return manifest
    parents = {n.id: n.parent for n in manifest.nodes}
    keep: set[str] = set()
    for n in manifest.nodes:
        if n.kind == "lesson" and n.id not in missing:
            current: str | None = n.id
            while current is not None and current not in keep:
                keep.add(current)
                current = parents.get(current)
    return replace(manifest, nodes=[n for n in manifest.nodes if n.id in keep],
                   resources=[r for r in manifest.resources if r.lesson in keep])


# What a catalog costs on disk, measured (catalogs of short and of 4,000-character random
# titles, the worst case for the full-text indexes): about 270 bytes per row, the stored
# text, and 11-26 bytes per character the search indexes cover (a lesson's titles,
# description and its ancestors' titles; with the pinyin of Chinese text, the most). The
# figures below are about 1.5-2 times those.
ROW_BYTES = 512
STORED_BYTES_PER_CHAR = 6  # UTF-8 takes up to 3 bytes per character; twice that
INDEXED_BYTES_PER_CHAR = 40


def estimate_catalog_bytes(manifest: Manifest) -> int:
    """An upper estimate of the catalog :func:`build_catalog` makes of ``manifest``.

    From the manifest's own text: long titles cost far more than a fixed size per node,
    above all in the search indexes, where each lesson also carries its ancestors' titles.
    """
    own: dict[str, int] = {}
    parents: dict[str, str | None] = {}
    stored = 0
    for n in manifest.nodes:
        t = sum(map(len, n.title.values()))
        own[n.id] = t
        parents[n.id] = n.parent
        stored += t + sum(map(len, n.description.values())) + len(n.id) + len(n.parent or "")
    for r in manifest.resources:
        stored += (sum(map(len, r.title.values())) + len(r.id) + len(r.lesson) + 64
                   + len(r.media_type))
    path_chars: dict[str, int] = {}

    def path_of(node_id: str | None) -> int:
        """Characters of the titles above and including ``node_id`` (iterative)."""
        chain: list[str] = []
        while node_id is not None and node_id not in path_chars and len(chain) <= len(own):
            chain.append(node_id)
            node_id = parents.get(node_id)
        total = path_chars.get(node_id, 0) if node_id is not None else 0
        for nid in reversed(chain):
            total += own.get(nid, 0)
            path_chars[nid] = total
        return total

    indexed = sum(own[n.id] + sum(map(len, n.description.values())) + path_of(n.parent)
                  for n in manifest.nodes if n.kind == "lesson")
    rows = len(manifest.nodes) + len(manifest.resources)
    return (1024 * 1024 + ROW_BYTES * rows + STORED_BYTES_PER_CHAR * stored
            + INDEXED_BYTES_PER_CHAR * indexed)


def build_catalog(manifest: Manifest, path: Path,
                  has_blob: Callable[[str], bool] | None = None,
                  read_blob: ReadBlob | None = None) -> Path:
    """Build the catalog of ``manifest`` at ``path`` (atomically: temp, fsync, rename).

    With ``has_blob``, a lesson is left out unless every blob it names is present
    (a subscription, or a download still under way); see :func:`shown_part`.
    """
    if has_blob is not None:
        manifest = shown_part(manifest, has_blob)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".building")
    tmp.unlink(missing_ok=True)
    try:
        _build(manifest, tmp, read_blob)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    except (DatabaseError, sqlite3.Error, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise CatalogError(f"building the catalog {path} failed: {_first_error(e)}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


class CatalogError(KetangError):
    """A catalog could not be built (its disk is full, or SQLite failed)."""


def _first_error(e: BaseException) -> BaseException:
    """The error that started it: a full disk makes SQLite roll back by itself, and then
    peewee's own rollback fails with "cannot rollback", hiding "database or disk is full"."""
    first = e
    seen = 0
    while first.__context__ is not None and seen < 10:
        first, seen = first.__context__, seen + 1
    return first


def _build(manifest: Manifest, tmp: Path, read_blob: ReadBlob | None) -> None:
    db = SqliteDatabase(str(tmp), pragmas={"journal_mode": "off", "synchronous": "off"})
    Info, Node, Resource = _models(db)
    try:
        with db:
            db.create_tables([Info, Node, Resource])
            # Two contentless full-text indexes keyed by the lesson's rowid in ``node``:
            # trigrams for terms of three or more characters, and CJK-friendly bigrams
            # (see :func:`bigrams`) for two-character terms such as 分数 or 加法.
            # Columns: the lesson's titles, its descriptions, and its ancestors' titles
            # (so 三年级 古诗 or 数学 分数 narrow a search to a grade or subject).
            # ``py``, ``ini``: the pinyin and initials of the title and path
            # (search_text.py);
            # ``body`` also holds the text of the lesson's exercises.
            db.execute_sql("CREATE VIRTUAL TABLE search USING fts5(title, py, ini, body, "
                           "path, tokenize='trigram', content='', columnsize=1)")
            db.execute_sql("CREATE VIRTUAL TABLE search_bi USING fts5(title, py, ini, body, "
                           "path, tokenize='unicode61', content='', columnsize=1)")
            with db.atomic():
                Info.insert_many([
                    ("channel", manifest.channel), ("version", str(manifest.version)),
                    ("created", manifest.created), ("title_zh", manifest.title.get("zh", "")),
                    ("title_en", manifest.title.get("en", "")),
                ], fields=[Info.key, Info.value]).execute()
                rows = [
                    (n.id, n.parent, n.kind, i, n.title.get("zh", ""), n.title.get("en", ""),
                     n.description.get("zh", ""), n.description.get("en", ""))
                    for i, n in enumerate(manifest.nodes)
                ]
                # Plain executemany: peewee's insert_many spends most of a national
                # release's build time generating SQL.
                conn = db.connection()
                conn.executemany(
                    "INSERT INTO node (id, parent, kind, position, title_zh, title_en, "
                    "description_zh, description_en) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                conn.executemany(
                    "INSERT INTO resource (id, lesson, kind, position, title_zh, title_en, "
                    "sha256, size, media_type, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    ((r.id, r.lesson, r.kind, i, r.title.get("zh", ""), r.title.get("en", ""),
                      r.sha256, r.size, r.media_type, r.duration)
                     for i, r in enumerate(manifest.resources)))
                _build_search(db, manifest, read_blob)
                _build_related(conn, manifest)
                conn.execute("CREATE TABLE questionnaire (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
                conn.executemany("INSERT INTO questionnaire VALUES (?, ?)",
                                 ((q.id, json.dumps(q.doc, ensure_ascii=False))
                                  for q in manifest.questionnaires))
    finally:
        db.close()


def _build_related(conn: Any, manifest: Manifest) -> None:
    """The release's national co-usage table (content_cache.related), lessons shown only."""
    conn.execute("CREATE TABLE related (lesson TEXT NOT NULL, other TEXT NOT NULL,"
                 " score REAL NOT NULL, PRIMARY KEY (lesson, other)) WITHOUT ROWID")
    shown = {n.id for n in manifest.nodes if n.kind == "lesson"}
    conn.executemany("INSERT INTO related VALUES (?, ?, ?)",
                     ((lesson, o, sc) for lesson, others in manifest.related.items()
                      if lesson in shown for o, sc in others if o in shown))


def bigrams(text: str) -> str:
    """Every two-character substring of each word of ``text``, plus each word's last character.

    Indexed with FTS5's unicode61 tokenizer, a two-character term is one token, a
    longer term is the phrase of its bigrams (see :func:`bigram_query`), and a
    one-character term is a prefix query (``分*``), so short Chinese words match
    anywhere inside a title, as the trigram index does for longer ones.
    """
    out: list[str] = []
    for word in _WORD_SPLIT.split(text.lower()):
        if word:
            out += [word[i:i + 2] for i in range(len(word) - 1)]
            out.append(word[-1])
    return " ".join(out)


def bigram_query(term: str) -> str | None:
    """The FTS5 query on the bigram index that matches ``term`` as a substring."""
    words = [w for w in _WORD_SPLIT.split(term.lower()) if w]
    if len(words) == 1 and len(words[0]) == 1:
        return _quote(words[0]) + "*"
    grams = [w[i:i + 2] for w in words for i in range(len(w) - 1)]
    return _quote(" ".join(grams)) if grams else None


def term_query(term: str, table: str) -> str | None:
    """One query term as an FTS5 expression on ``table`` (``search``: trigrams, for
    terms of three or more characters; ``search_bi``: bigrams).

    Chinese and other text matches any column as a substring. A Latin term also matches
    as pinyin: whole syllables (``shu`` finds 数学, not 水) or initials (``fs``, 分数).
    """
    def match(t: str) -> str | None:
        return _quote(t) if table == "search" else bigram_query(t)

    plain = match(term)
    if plain is None:
        return None
    if not (term.isascii() and term.isalpha()):
        return plain
    out = ["{title body path} : " + plain]
    parts = syllables(term)
    if parts and table == "search":
        out.append("py : " + _quote("|" + "|".join(parts) + "|"))
    elif parts and len(parts) == 1:  # one short syllable (de, fa): a whole bigram word
        out.append("py : " + _quote(parts[0]))
    out.append("ini : " + plain)
    return " OR ".join(out)


# Runs of letters and digits (CJK included); anything else separates words, as it
# does for the unicode61 tokenizer.
_WORD_SPLIT = re.compile(r"[\W_]+")


def _build_search(db: SqliteDatabase, manifest: Manifest, read_blob: ReadBlob | None) -> None:
    by_id = {n.id: n for n in manifest.nodes}
    paths: dict[str, str] = {}
    exercises: dict[str, list[str]] = {}
    if read_blob is not None:
        for r in manifest.resources:
            if r.kind == "exercise":
                data = read_blob(r.sha256, r.size)
                if data:
                    exercises.setdefault(r.lesson, []).append(exercise_text(data))

    def path_text(node_id: str | None) -> str:
        if node_id is None:
            return ""
        if node_id not in paths:
            n = by_id[node_id]
            paths[node_id] = " ".join(filter(None, (path_text(n.parent), n.title.get("zh", ""),
                                                    n.title.get("en", ""))))
        return paths[node_id]

    rows = []
    for rowid, nid, title_zh, title_en, body, parent in db.execute_sql(
            "SELECT rowid, id, title_zh, title_en, description_zh || ' ' || description_en, "
            "parent FROM node WHERE kind = 'lesson'"):
        path = path_text(parent)
        (t_full, t_ini), (p_full, p_ini) = pinyin_text(title_zh), pinyin_text(path)
        body = " ".join([body, *exercises.get(nid, [])])
        rows.append((rowid, f"{title_zh} {title_en}", f"{t_full} {p_full}", f"{t_ini} {p_ini}",
                     body, path))
    conn = db.connection()
    conn.executemany("INSERT INTO search(rowid, title, py, ini, body, path) "
                     "VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.executemany(
        "INSERT INTO search_bi(rowid, title, py, ini, body, path) VALUES (?, ?, ?, ?, ?, ?)",
        ((r, bigrams(t), bigrams(y), bigrams(i), bigrams(b), bigrams(p))
         for r, t, y, i, b, p in rows))
    for table in ("search", "search_bi"):
        db.execute_sql(f"INSERT INTO {table}({table}) VALUES ('optimize')")


def _node_dict(n: Any) -> dict[str, Any]:
    return {
        "id": n.id, "parent": n.parent, "kind": n.kind,
        "title": {"zh": n.title_zh, "en": n.title_en},
        "description": {"zh": n.description_zh, "en": n.description_en},
    }


def _resource_dict(r: Any) -> dict[str, Any]:
    return {
        "id": r.id, "lesson": r.lesson, "kind": r.kind,
        "title": {"zh": r.title_zh, "en": r.title_en},
        "sha256": r.sha256, "size": r.size, "media_type": r.media_type,
        "duration": r.duration,
    }


class Catalog:
    """Read access to one built catalog. Safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"catalog {self.path} does not exist")
        self.db = SqliteDatabase(f"file:{self.path}?mode=ro&immutable=1", uri=True)
        self.Info, self.Node, self.Resource = _models(self.db)

    def close(self) -> None:
        """Close this thread's connection."""
        self.db.close()

    def info(self) -> dict[str, Any]:
        """Channel, version, created and title of the release this catalog holds."""
        kv = {i.key: i.value for i in self.Info.select()}
        return {
            "channel": kv["channel"], "version": int(kv["version"]),
            "created": kv.get("created", ""),
            "title": {"zh": kv.get("title_zh", ""), "en": kv.get("title_en", "")},
        }

    def node(self, node_id: str) -> dict[str, Any] | None:
        """One node, or None."""
        n = self.Node.get_or_none(self.Node.id == node_id)
        return _node_dict(n) if n else None

    def children(self, node_id: str | None) -> list[dict[str, Any]]:
        """A node's children in teaching order (the stages when ``node_id`` is None)."""
        q = self.Node.select().where(
            self.Node.parent.is_null() if node_id is None else self.Node.parent == node_id
        ).order_by(self.Node.position)
        return [_node_dict(n) for n in q]

    def breadcrumbs(self, node_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The path from the stage down to each node (inclusive), in one query."""
        if not node_ids:
            return {}
        marks = ",".join("?" * len(node_ids))
        sql = (
            "WITH RECURSIVE up(start, id, depth) AS ("
            f" SELECT id, id, 0 FROM node WHERE id IN ({marks})"
            " UNION ALL SELECT up.start, n.parent, up.depth + 1 FROM up JOIN node n"
            " ON n.id = up.id WHERE n.parent IS NOT NULL AND up.depth < 16)"
            " SELECT up.start, up.depth, n.id, n.parent, n.kind, n.title_zh, n.title_en,"
            " n.description_zh, n.description_en FROM up JOIN node n ON n.id = up.id"
            " ORDER BY up.start, up.depth DESC"
        )
        out: dict[str, list[dict[str, Any]]] = {nid: [] for nid in node_ids}
        for start, _depth, *row in self.db.execute_sql(sql, list(node_ids)):
            out[start].append(_row_dict(row))
        return out

    def breadcrumb(self, node_id: str) -> list[dict[str, Any]]:
        """The path from the stage down to ``node_id`` (inclusive)."""
        return self.breadcrumbs([node_id])[node_id]

    def lessons(self, limit: int = 500) -> list[dict[str, Any]]:
        """Lessons in teaching order, each with its breadcrumb titles."""
        q = (self.Node.select().where(self.Node.kind == "lesson")
             .order_by(self.Node.position).limit(limit))
        return self._with_paths([_node_dict(n) for n in q])

    def _with_paths(self, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        paths = self.breadcrumbs([n["id"] for n in nodes]) if nodes else {}
        return [dict(n, path=paths[n["id"]][:-1]) for n in nodes]

    def lesson(self, node_id: str) -> dict[str, Any] | None:
        """A lesson with its resources and breadcrumb, or None (two queries)."""
        path = self.breadcrumb(node_id)
        if not path or path[-1]["kind"] != "lesson":
            return None
        resources = (self.Resource.select().where(self.Resource.lesson == node_id)
                     .order_by(self.Resource.position))
        return dict(path[-1], path=path[:-1], resources=[_resource_dict(r) for r in resources])

    def resource_by_sha256(self, sha256: str) -> dict[str, Any] | None:
        """A resource whose blob is ``sha256`` (any one, if several share it)."""
        r = self.Resource.get_or_none(self.Resource.sha256 == sha256)
        return _resource_dict(r) if r else None

    def following(self, lesson_id: str, limit: int = 3) -> list[dict[str, Any]]:
        """The lessons after ``lesson_id`` in teaching (curriculum) order."""
        here = self.Node.get_or_none(self.Node.id == lesson_id)
        if here is None:
            return []
        q = (self.Node.select().where((self.Node.kind == "lesson")
                                      & (self.Node.position > here.position))
             .order_by(self.Node.position).limit(limit))
        return [_node_dict(n) for n in q]

    def titles(self, node_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Nodes by id, for the ids that exist (one query)."""
        if not node_ids:
            return {}
        q = self.Node.select().where(self.Node.id.in_(node_ids))
        return {n.id: _node_dict(n) for n in q}

    def questionnaires(self) -> list[Questionnaire]:
        """The release's questionnaires (checked when the release was imported)."""
        try:
            rows = self.db.execute_sql("SELECT id, doc FROM questionnaire ORDER BY id").fetchall()
        except OperationalError:
            return []
        return [Questionnaire(r[0], json.loads(r[1])) for r in rows]

    def related(self, lesson_id: str, limit: int = 20) -> list[tuple[str, float]]:
        """The national co-usage of a lesson, best first (empty for catalogs built
        before the table existed)."""
        try:
            rows = self.db.execute_sql(
                "SELECT other, score FROM related WHERE lesson = ? ORDER BY score DESC, other"
                " LIMIT ?", (lesson_id, limit)).fetchall()
        except OperationalError:
            return []
        return [(r[0], float(r[1])) for r in rows]

    def search(self, query: str, limit: int = 50) -> list[dict[str, Any]]:
        """Lessons matching ``query`` in title or description, best first.

        Every whitespace-separated term must occur as a substring (case-insensitive)
        of the lesson's title, description, or the titles above it (grade, subject…).
        Queries of terms with three or more characters use the trigram index; a query
        with a shorter term (e.g. 分数) uses the bigram index. Title matches rank above
        description matches, which rank above path matches (bm25).
        """
        terms: list[str] = []
        for word in re.split(r"\s+", query.strip().lower())[:16]:
            if word.isdigit() and terms:   # "grade 3", "lesson 3": a number goes with
                terms[-1] += " " + word    # the word before it, not anywhere at all
            elif word:
                terms.append(word)
        terms = terms[:8]
        if not terms:
            return []
        rowids: list[int] = []
        phrase = " ".join(terms)
        if len(terms) > 1 and len(phrase) >= 3:
            # "Grade 3", "lesson 3": the words side by side first, so "3" alone does
            # not pull in every lesson with a 3 somewhere in its text.
            rowids = self._match("search", _quote(phrase), limit)
        if not rowids:
            table = "search" if all(len(t) >= 3 for t in terms) else "search_bi"
            parts = [term_query(t, table) for t in terms]
            if None in parts:
                return []
            rowids = self._match(table, " AND ".join(f"({p})" for p in parts if p), limit)
        if not rowids:
            return []
        marks = ",".join("?" * len(rowids))
        rows = {r[0]: r[1:] for r in self.db.execute_sql(
            "SELECT rowid, id, parent, kind, title_zh, title_en, description_zh, "
            f"description_en FROM node WHERE rowid IN ({marks})", rowids)}
        return self._with_paths([_row_dict(rows[r]) for r in rowids if r in rows])

    def _match(self, table: str, match: str, limit: int) -> list[int]:
        """Row ids of lessons matching an FTS5 ``match`` on ``table``, best first: title
        over pinyin over description and exercises over the grade/subject path."""
        sql = (f"SELECT rowid FROM {table} WHERE {table} MATCH ? "
               f"ORDER BY bm25({table}, 10.0, 4.0, 3.0, 2.0, 1.0) LIMIT ?")
        return [row[0] for row in self.db.execute_sql(sql, (match, limit))]


def _quote(term: str) -> str:
    """An FTS5 string literal: the term matched as written."""
    return '"' + term.replace('"', '""') + '"'


def _row_dict(row: Any) -> dict[str, Any]:
    nid, parent, kind, tzh, ten, dzh, den = row
    return {"id": nid, "parent": parent, "kind": kind, "title": {"zh": tzh, "en": ten},
            "description": {"zh": dzh, "en": den}}
