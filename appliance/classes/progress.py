"""What a class has been taught, and its next lesson.

A class's curriculum is the lessons under its catalog node (a subject, edition or
volume) in teaching order. A lesson counts as taught for a class when every one of its
parts was projected for that class — the projector's ``part-projected`` usage events
carry the class (``extra.class``) while a lesson is opened from the class — or when
the teacher marks it; she can unmark it. The next lesson is the first one after the
last taught lesson in curriculum order (the first lesson when none is taught; none
when the last is taught).

:func:`sync` reads the usage events that arrived since it last looked (a cursor in the
classes database) and records the parts projected; it writes only when there are new
events, so an idle device writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from appliance.usage.db import UsageDB, db_path

from .store import ClassesDB, Klass

PART_TYPES = ("part-projected", "projected")
BATCH = 2000


class Catalogs(Protocol):
    """What progress needs of the content library (``content_cache.library.Library``)."""

    def catalog(self, channel: str) -> Any: ...


def units(cat: Any, node_id: str) -> list[dict[str, Any]]:
    """The curriculum under ``node_id``: its units in teaching order, each
    ``{"unit": node, "lessons": [lesson nodes]}`` (lessons not under a unit are grouped
    under their parent)."""
    out: list[dict[str, Any]] = []

    def walk(node: dict[str, Any]) -> None:
        children = cat.children(node["id"])
        lessons = [c for c in children if c["kind"] == "lesson"]
        if lessons:
            out.append({"unit": node, "lessons": lessons})
        for c in children:
            if c["kind"] != "lesson":
                walk(c)

    top = cat.node(node_id)
    if top is not None:
        walk(top)
    return out


def lessons_in_order(cat: Any, node_id: str) -> list[dict[str, Any]]:
    """Every lesson under ``node_id``, in teaching order."""
    return [lesson for u in units(cat, node_id) for lesson in u["lessons"]]


def next_lesson(order: list[dict[str, Any]], taught: set[str]) -> dict[str, Any] | None:
    """The lesson after the last taught one (the first when none is; None when the last is)."""
    last = max((i for i, lesson in enumerate(order) if lesson["id"] in taught), default=-1)
    return order[last + 1] if last + 1 < len(order) else None


def class_progress(db: ClassesDB, library: Catalogs, klass: Klass) -> dict[str, Any]:
    """A class's unit map with what is done, and its next lesson.

    ``{"units": [{"unit", "lessons": [{…lesson, "taught": bool, "source": str}]}],
    "next": lesson or None, "taught": n, "total": n, "missing": bool}``; ``missing``
    when the class's channel or node is no longer in the catalog.
    """
    cat = library.catalog(klass.channel)
    tree = units(cat, klass.node) if cat is not None else []
    marks = db.taught(klass.id)
    done: set[str] = set()
    for u in tree:
        for lesson in u["lessons"]:
            state = marks.get((klass.channel, lesson["id"]))
            lesson["taught"] = bool(state and state[0])
            lesson["source"] = state[1] if state and state[0] else ""
            if lesson["taught"]:
                done.add(lesson["id"])
    order = [lesson for u in tree for lesson in u["lessons"]]
    nxt = next_lesson(order, done)
    return {"units": tree, "next": nxt, "taught": len(done), "total": len(order),
            "missing": not tree}


def begun(db: ClassesDB, library: Catalogs, klass: Klass) -> list[dict[str, Any]]:
    """The lessons a class began and did not finish, the one projected last first, each
    with the part to go on from: ``{"lesson": node, "part": index of its first part not
    projected}`` (lessons no longer in the catalog are left out)."""
    cat = library.catalog(klass.channel)
    if cat is None:
        return []
    out = []
    for channel, lesson_id, projected in db.started(klass.id):
        found = cat.lesson(lesson_id) if channel == klass.channel else None
        if found is None:
            continue
        ids = [r["id"] for r in found["resources"]]
        part = next((i for i, r in enumerate(ids) if r not in projected), 0)
        node = {k: found[k] for k in ("id", "kind", "title") if k in found}
        out.append({"lesson": node, "part": part})
    return out


def _parts_of(library: Catalogs, channel: str, lesson: str,
              cache: dict[tuple[str, str], list[str]]) -> list[str]:
    key = (channel, lesson)
    if key not in cache:
        cat = library.catalog(channel)
        found = cat.lesson(lesson) if cat is not None else None
        if found is None:
            cache[key] = []
        else:
            cache[key] = [r["id"] for r in found["resources"]] or [lesson]
    return cache[key]


def _class_of(extra: dict[str, Any]) -> int | None:
    k = extra.get("class")
    return k if isinstance(k, int) and not isinstance(k, bool) and k > 0 else None


def sync(db: ClassesDB, usage_dir: Path, library: Catalogs) -> int:
    """Read new usage events into the classes' progress; return how many lessons became
    taught. Writes nothing when no event arrived since the last call."""
    if not db_path(usage_dir).exists():
        return 0
    usage = UsageDB(usage_dir)
    became = 0
    cache: dict[tuple[str, str], list[str]] = {}
    with db.lock:
        try:
            while True:
                cursor = db.usage_cursor()
                rows = usage.after(cursor, BATCH)
                if not rows:
                    break
                parts = []
                for r in rows:
                    k = _class_of(r.extra)
                    if r.type not in PART_TYPES or r.view != "projector" or k is None:
                        continue
                    if not r.lesson or not r.channel:
                        continue
                    parts.append((k, r.channel, r.lesson, r.resource, r.time))
                complete = {(k, c, lesson): _parts_of(library, c, lesson, cache)
                            for k, c, lesson, _r, _t in parts}
                became += len(db.record_parts(parts, rows[-1].seq, complete))
                if len(rows) < BATCH:
                    break
        finally:
            usage.close()
    return became


def taught_ids(db: ClassesDB, klass: Klass) -> Iterable[str]:
    """The lessons taught to a class."""
    return [lesson for (c, lesson), (t, _s, _a) in db.taught(klass.id).items()
            if t and c == klass.channel]


def curricula(channel: str, cat: Any) -> list[dict[str, Any]]:
    """What a class can follow in one channel: each grade's subjects, one per edition
    when a subject has several (``{"channel", "node", "grade", "subject", "edition"}``).
    Channels without grades (teacher training) offer none."""
    out = []
    for stage in cat.children(None):
        for grade in cat.children(stage["id"]):
            if grade["kind"] != "grade":
                continue
            for subject in cat.children(grade["id"]):
                if subject["kind"] != "subject":
                    continue
                editions = [e for e in cat.children(subject["id"]) if e["kind"] == "edition"]
                for node, edition in ([(e, e["title"]["zh"]) for e in editions]
                                      or [(subject, "")]):
                    out.append({"channel": channel, "node": node["id"],
                                "grade": grade["title"]["zh"],
                                "subject": subject["title"]["zh"], "edition": edition,
                                "grade_en": grade["title"]["en"],
                                "subject_en": subject["title"]["en"],
                                "edition_en": node["title"]["en"] if edition else ""})
    return out
