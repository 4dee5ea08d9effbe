"""The last setup file's outcome, for the dashboard and the projector's first screen.

``ketang provision --apply`` keeps it on the data partition as
``<data_dir>/provisioning/last-result.json`` (format in docs/provisioning.md: ``ok``,
``finished``, ``first_boot``, ``applied`` and ``unchanged`` with secrets already hidden,
``problems`` as setting, line and message, ``warnings``). The web reads that documented
file and never imports ``provisioning``. Reading writes nothing.
"""

from __future__ import annotations

import calendar
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from appliance import words

RESULT = Path("provisioning", "last-result.json")
FINISHED_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
# How long the projector's first screen says a setup file was applied (errors stay while
# they are this boot's: until a file applies or the card has none).
SUCCESS_SHOWN_S = 30 * 60
NAMES_SHOWN = 4          # settings (or problems) named on the projector's one line


def last_setup(data_dir: Path) -> dict[str, Any] | None:
    """The last apply's outcome, or None when no setup file was ever applied (or the
    record cannot be read: the dashboard then simply has nothing to say)."""
    try:
        doc = json.loads((Path(data_dir) / RESULT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
        return None
    for key in ("applied", "unchanged"):
        if not isinstance(doc.get(key), dict):
            doc[key] = {}
    for key in ("problems", "warnings"):
        if not isinstance(doc.get(key), list):
            doc[key] = []
    doc["problems"] = [p for p in doc["problems"] if isinstance(p, dict)]
    return doc


def finished_at(result: dict[str, Any]) -> float | None:
    """When the apply finished (seconds since the epoch), or None if the time is unreadable."""
    try:
        return float(calendar.timegm(time.strptime(str(result.get("finished")),
                                                   FINISHED_FORMAT)))
    except ValueError:
        return None


def projector_note(data_dir: Path, now: float | None = None,
                   boot_time: float | None = None) -> dict[str, Any] | None:
    """The one line the projector's first screen shows about the setup file, or None when
    there is nothing to say: the last apply was not during this boot (the card has no
    file, or the note is old news), or it succeeded more than SUCCESS_SHOWN_S ago.

    ``{"ok", "zh", "en", "detail"}``: Chinese, then English, then the settings (or the
    problems' settings and lines), which are the file's own names and values.
    """
    result = last_setup(data_dir)
    if result is None:
        return None
    done = finished_at(result)
    now = time.time() if now is None else now
    boot_time = psutil.boot_time() if boot_time is None else boot_time
    if done is None or done < boot_time:
        return None
    if result["ok"] and now - done > SUCCESS_SHOWN_S:
        return None
    if result["ok"]:
        names = [f"{k} = {v}" for k, v in result["applied"].items()]
    else:
        names = []
        for p in result["problems"]:
            where = ""
            if p.get("line"):
                where = f" ({words.both(partial(words.setup_line, p['line']))})"
            names.append(f"{p.get('setting') or '?'}{where}")
    detail = " · ".join(names[:NAMES_SHOWN])
    if len(names) > NAMES_SHOWN:
        more = len(names) - NAMES_SHOWN
        detail += " · " + words.both(partial(words.setup_more, more))
    if not result["ok"]:
        detail += " · " + words.both(words.setup_see_result)
    return {"ok": result["ok"], "zh": words.setup_headline(result, words.chinese),
            "en": words.setup_headline(result, words.english), "detail": detail.strip(" ·")}
