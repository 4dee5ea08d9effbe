"""What the technician dashboard shows, gathered into one JSON-ready dict.

Reading it writes nothing. Sync and usage come from modules other parts own
(``appliance.sync.service.sync_summary`` and ``appliance.usage.upload.usage_summary``);
they are imported lazily, and when one is missing or fails the section says so
instead of breaking the page.
"""

from __future__ import annotations

import importlib
import json
import logging
from typing import Any

from flask import current_app

from appliance.config import Settings
from appliance.drives.status import DriveStatus, human_bytes
from appliance.health import health_report
from content_cache.library import Library

log = logging.getLogger(__name__)
_logged: set[str] = set()

# The summaries later parts provide: the function, and the modules that may hold it
# (first found wins).
SUMMARIES = {
    "sync": ("sync_summary", ("appliance.sync.service", "appliance.sync.status")),
    "usage": ("usage_summary", ("appliance.usage.upload",)),
}


def releases(library: Library) -> list[dict[str, Any]]:
    """Each active channel: version, title, when it was made, how many lessons."""
    out = []
    for channel in sorted(library.active()):
        cat = library.catalog(channel)
        if cat is None:
            continue
        info = cat.info()
        lessons = cat.Node.select().where(cat.Node.kind == "lesson").count()
        out.append(dict(info, lessons=lessons))
    return out


def subscriptions(settings: Settings) -> dict[str, list[str]]:
    """The ``[subscriptions]`` lists (empty lists keep everything)."""
    s = settings.subscriptions
    return {"stages": list(s.stages), "grades": list(s.grades),
            "subjects": list(s.subjects), "editions": list(s.editions)}


def drives(settings: Settings) -> list[dict[str, Any]]:
    """Each drive in the status file, with a percentage when it is importing."""
    out = []
    for device, d in sorted(DriveStatus(settings.drives.status_file).read().items()):
        done, total = int(d.get("done_bytes") or 0), int(d.get("total_bytes") or 0)
        percent = min(100, round(100 * done / total)) if total > 0 else None
        out.append(dict(d, device=device, percent=percent, done_human=human_bytes(done),
                        total_human=human_bytes(total)))
    return out


def peers() -> list[dict[str, Any]] | None:
    """Ketang devices zeroconf found, or None when this server does not browse."""
    disco = current_app.extensions.get("ketang_discovery")
    return None if disco is None else disco.peers()


def summary(name: str, settings: Settings) -> dict[str, Any] | None:
    """The named later-part summary, None when its module is not installed yet."""
    function, modules = SUMMARIES[name]
    try:
        for module_name in modules:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as e:
                if e.name != module_name:
                    raise
                continue
            if hasattr(module, function):
                break
        else:
            return None
        result = getattr(module, function)(settings)
        # Whatever it holds (paths, dates…) becomes plain JSON for the page and the poll.
        result = json.loads(json.dumps(result, default=str))
    except Exception as e:  # one broken part must not take the dashboard down
        problem = f"{type(e).__name__}: {e}"
        if problem not in _logged:     # the page polls every 2 s: say it once
            _logged.add(problem)
            log.exception("the %s summary failed", name)
        return {"error": problem}
    return result if isinstance(result, dict) else {"value": result}


def dashboard_status(settings: Settings, library: Library) -> dict[str, Any]:
    """Everything the dashboard shows, for the page and ``/admin/status.json``."""
    return {
        "health": health_report(library, current_app.config.get("KETANG_STARTED")),
        "releases": releases(library),
        "subscriptions": subscriptions(settings),
        "drives": drives(settings),
        "peers": peers(),
        "sync": summary("sync", settings),
        "usage": summary("usage", settings),
    }
