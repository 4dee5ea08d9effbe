"""The catalog: a read-only SQLite database (peewee) built from one activated release.

It holds the node tree, each lesson's resources and a full-text index that works
for Chinese (FTS5 with the trigram tokenizer). A catalog file is built once, beside
the old one, and never written again: readers open it immutable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from peewee import (
    FloatField,
    IntegerField,
    Model,
    SqliteDatabase,
    TextField,
)

from .atomic import fsync_dir
from .manifest import Manifest

BATCH = 2000


def _models(db: SqliteDatabase) -> tuple[type[Model], type[Model], type[Model]]:
    """Model classes bound to one database, so several catalogs can be open at once."""

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


def build_catalog(manifest: Manifest, path: Path) -> Path:
    """Build the catalog of ``manifest`` at ``path`` (atomically: temp, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".building")
    tmp.unlink(missing_ok=True)
    db = SqliteDatabase(str(tmp), pragmas={"journal_mode": "off", "synchronous": "off"})
    Info, Node, Resource = _models(db)
    try:
        with db:
            db.create_tables([Info, Node, Resource])
            db.execute_sql(
                "CREATE VIRTUAL TABLE search USING fts5(node_id UNINDEXED, title, body, "
                "tokenize='trigram')"
            )
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
                fields = [Node.id, Node.parent, Node.kind, Node.position, Node.title_zh,
                          Node.title_en, Node.description_zh, Node.description_en]
                for i in range(0, len(rows), BATCH):
                    Node.insert_many(rows[i:i + BATCH], fields=fields).execute()
                rrows = [
                    (r.id, r.lesson, r.kind, i, r.title.get("zh", ""), r.title.get("en", ""),
                     r.sha256, r.size, r.media_type, r.duration)
                    for i, r in enumerate(manifest.resources)
                ]
                rfields = [Resource.id, Resource.lesson, Resource.kind, Resource.position,
                           Resource.title_zh, Resource.title_en, Resource.sha256, Resource.size,
                           Resource.media_type, Resource.duration]
                for i in range(0, len(rrows), BATCH):
                    Resource.insert_many(rrows[i:i + BATCH], fields=rfields).execute()
                db.execute_sql(
                    "INSERT INTO search(node_id, title, body) SELECT id, "
                    "title_zh || ' ' || title_en, description_zh || ' ' || description_en "
                    "FROM node WHERE kind = 'lesson'"
                )
    finally:
        db.close()
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


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

    def breadcrumb(self, node_id: str) -> list[dict[str, Any]]:
        """The path from the stage down to ``node_id`` (inclusive)."""
        path: list[dict[str, Any]] = []
        current: str | None = node_id
        while current is not None and len(path) < 16:
            n = self.node(current)
            if n is None:
                break
            path.append(n)
            current = n["parent"]
        return list(reversed(path))

    def lessons(self, limit: int = 500) -> list[dict[str, Any]]:
        """Lessons in teaching order, each with its breadcrumb titles."""
        q = (self.Node.select().where(self.Node.kind == "lesson")
             .order_by(self.Node.position).limit(limit))
        return [dict(_node_dict(n), path=self.breadcrumb(n.id)[:-1]) for n in q]

    def lesson(self, node_id: str) -> dict[str, Any] | None:
        """A lesson with its resources and breadcrumb, or None."""
        n = self.Node.get_or_none((self.Node.id == node_id) & (self.Node.kind == "lesson"))
        if n is None:
            return None
        resources = (self.Resource.select().where(self.Resource.lesson == node_id)
                     .order_by(self.Resource.position))
        return dict(_node_dict(n), path=self.breadcrumb(node_id)[:-1],
                    resources=[_resource_dict(r) for r in resources])

    def resource_by_sha256(self, sha256: str) -> dict[str, Any] | None:
        """A resource whose blob is ``sha256`` (any one, if several share it)."""
        r = self.Resource.get_or_none(self.Resource.sha256 == sha256)
        return _resource_dict(r) if r else None

    def search(self, query: str, limit: int = 50) -> list[dict[str, Any]]:
        """Lessons matching ``query`` in title or description, best first.

        Every whitespace-separated term must match. Terms of three or more characters
        use the trigram index; shorter ones (e.g. 分数) fall back to a substring scan.
        """
        terms = [t for t in re.split(r"\s+", query.strip()) if t][:8]
        if not terms:
            return []
        long_terms = [t for t in terms if len(t) >= 3]
        short_terms = [t for t in terms if len(t) < 3]
        where, params = [], []
        if long_terms:
            where.append("search MATCH ?")
            params.append(" AND ".join('"' + t.replace('"', '""') + '"' for t in long_terms))
        for t in short_terms:
            where.append("(title LIKE ? ESCAPE '\\' OR body LIKE ? ESCAPE '\\')")
            like = "%" + t.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [like, like]
        order = "bm25(search, 10.0, 1.0)" if long_terms else \
            "(CASE WHEN title LIKE ? ESCAPE '\\' THEN 0 ELSE 1 END), rowid"
        if not long_terms:
            params.append(params[0])
        sql = (f"SELECT node_id FROM search WHERE {' AND '.join(where)} "
               f"ORDER BY {order} LIMIT ?")
        ids = [row[0] for row in self.db.execute_sql(sql, (*params, limit))]
        out = []
        for nid in ids:
            n = self.Node.get_by_id(nid)
            out.append(dict(_node_dict(n), path=self.breadcrumb(nid)[:-1]))
        return out
