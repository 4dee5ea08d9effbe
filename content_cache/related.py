"""The national co-usage table: "others went on to", shipped inside a signed release.

A table maps a lesson id to up to :data:`MAX_PER_LESSON` other lessons of the same
release, each with a score (how often learners went on from the first to the other,
weighted; see docs/usage.md). It travels as the manifest's optional ``related`` field,
so the release signature covers it, and ``ketang publish --related FILE`` takes it as
a ``ketang-related/1`` file (what ``ketang recommend build`` writes):

    {"format": "ketang-related/1", "lessons": {"<lesson id>": [["<other>", 12.5], …]}}

Everything here is strict: a table that breaks a rule is refused whole with a message
naming where, never half read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ManifestError
from .ids import ID_RE

FORMAT = "ketang-related/1"
MAX_LESSONS = 200_000
MAX_PER_LESSON = 20
MAX_SCORE = 1e12
MAX_FILE_BYTES = 64 * 1024 * 1024

Table = dict[str, list[tuple[str, float]]]


def parse_table(value: Any, where: str, id_ok: Any) -> Table:
    """Validate a ``lessons`` mapping; ``id_ok(str) -> bool`` checks each id.

    Raises ManifestError naming the first rule broken.
    """
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: the co-usage table must map lesson ids to lists.")
    if len(value) > MAX_LESSONS:
        raise ManifestError(f"{where}: the co-usage table lists {len(value)} lessons; "
                            f"the most a device accepts is {MAX_LESSONS}.")
    out: Table = {}
    for lesson, others in value.items():
        if not id_ok(lesson):
            raise ManifestError(f"{where}: co-usage entry {lesson!r} is not a lesson of "
                                "this release.")
        if not isinstance(others, list) or len(others) > MAX_PER_LESSON:
            raise ManifestError(f"{where}: co-usage of {lesson!r} must be a list of at most "
                                f"{MAX_PER_LESSON} [lesson, score] pairs.")
        row: list[tuple[str, float]] = []
        seen: set[str] = set()
        for pair in others:
            if (not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str)
                    or isinstance(pair[1], bool) or not isinstance(pair[1], int | float)):
                raise ManifestError(f"{where}: co-usage of {lesson!r} holds {pair!r}, not a "
                                    "[lesson, score] pair.")
            other, score = pair[0], float(pair[1])
            if not id_ok(other) or other == lesson or other in seen:
                raise ManifestError(f"{where}: co-usage of {lesson!r} names {other!r}, which "
                                    "is not another lesson of this release (or appears twice).")
            if not math.isfinite(score) or not 0 < score <= MAX_SCORE:
                raise ManifestError(f"{where}: co-usage score {pair[1]!r} of {lesson!r} → "
                                    f"{other!r} must be a number above 0 and at most "
                                    f"{MAX_SCORE:g}.")
            seen.add(other)
            row.append((other, score))
        if row:
            out[lesson] = sorted(row, key=lambda p: (-p[1], p[0]))
    return out


def to_doc(table: Mapping[str, Iterable[tuple[str, float]]]) -> dict[str, list[list[Any]]]:
    """The JSON form of a table (lessons sorted, so the same table gives the same bytes)."""
    return {k: [[o, round(s, 4)] for o, s in table[k]] for k in sorted(table) if table[k]}


def load_file(path: Path) -> Table:
    """Read a ``ketang-related/1`` file (any lesson ids; the publisher keeps its own)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ManifestError(f"{path} is larger than {MAX_FILE_BYTES} bytes; refused.")
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path} does not exist: give the file `ketang recommend build` "
                            "wrote.") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ManifestError(f"{path} is not a {FORMAT} file (its 'format' field).")
    return parse_table(doc.get("lessons"), str(path),
                       lambda s: isinstance(s, str) and bool(ID_RE.match(s)))


def write_file(path: Path, table: Mapping[str, Iterable[tuple[str, float]]]) -> Path:
    """Write a ``ketang-related/1`` file atomically."""
    from .atomic import atomic_write_bytes

    data = json.dumps({"format": FORMAT, "lessons": to_doc(table)}, ensure_ascii=False,
                      separators=(",", ":")).encode() + b"\n"
    atomic_write_bytes(Path(path), data)
    return Path(path)


def restrict(table: Table, lessons: set[str]) -> tuple[Table, int]:
    """Keep only pairs between ``lessons``, the best :data:`MAX_PER_LESSON` per lesson;
    also return how many pairs were left out."""
    out: Table = {}
    dropped = 0
    for lesson, others in table.items():
        if lesson not in lessons:
            dropped += len(others)
            continue
        keep = [(o, s) for o, s in others if o in lessons and o != lesson]
        dropped += len(others) - len(keep)
        if keep:
            out[lesson] = keep[:MAX_PER_LESSON]
    return out, dropped
