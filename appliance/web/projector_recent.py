"""The lessons the projector opened last, for its first screen.

A small JSON file in the data folder, ``projector-recent.json``:
``{"recent": [{"channel": …, "lesson": …, "opened": "<ISO time>"}, …]}``, newest first.
It is written (atomically) only when the projector opens a lesson that is not
already the newest, so reloading a lesson or an idle projector writes nothing.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from content_cache.atomic import atomic_write_json

FILE_NAME = "projector-recent.json"
_lock = threading.Lock()


def read_recent(data_dir: Path) -> list[dict[str, str]]:
    """The remembered lessons, newest first (empty when none or the file is unreadable)."""
    try:
        doc = json.loads((Path(data_dir) / FILE_NAME).read_text(encoding="utf-8"))
        items = doc["recent"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if not isinstance(items, list):
        return []
    return [i for i in items if isinstance(i, dict) and isinstance(i.get("channel"), str)
            and isinstance(i.get("lesson"), str)]


def remember(data_dir: Path, channel: str, lesson: str, keep: int) -> bool:
    """Put a lesson first in the list (keeping ``keep``); returns whether it wrote."""
    with _lock:
        items = read_recent(data_dir)
        if items and items[0]["channel"] == channel and items[0]["lesson"] == lesson:
            return False
        entry: dict[str, Any] = {"channel": channel, "lesson": lesson,
                                 "opened": datetime.now(UTC).isoformat(timespec="seconds")}
        items = [entry] + [i for i in items
                           if (i["channel"], i["lesson"]) != (channel, lesson)]
        atomic_write_json(Path(data_dir) / FILE_NAME, {"recent": items[:max(keep, 1)]})
        return True
