"""What the technician dashboard shows, gathered into one JSON-ready dict.

Reading it writes nothing. Sync and usage come from the packages that own them
(:func:`appliance.sync.status.sync_summary`, :func:`appliance.usage.upload.usage_summary`);
when one fails, its section says so instead of breaking the page.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.config import Settings
from appliance.drives.status import DriveStatus
from appliance.health import health_report
from appliance.sync.status import sync_summary
from appliance.text import human_bytes
from appliance.usage.upload import usage_summary
from content_cache.library import Library

from . import context
from .setup_result import last_setup

log = logging.getLogger(__name__)
_logged: set[str] = set()

# Each section the services report, by name. A summary returning None shows "not set up".
SUMMARIES: dict[str, Callable[[Settings], Any]] = {
    "sync": sync_summary,
    "usage": usage_summary,
}


def releases(library: Library) -> list[dict[str, Any]]:
    """Each active channel: version, title, when it was made, how many lessons."""
    out = []
    for _channel, cat in library.catalogs():
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


def wifi() -> dict[str, Any] | None:
    """The classroom access point (state, SSID, clients, leases, the board's client
    limit), or None when this server has no access point to report on."""
    probe = context.state().wifi_status
    if probe is None:
        return None
    try:
        return probe()
    except Exception as e:  # one broken part must not take the dashboard down
        log.warning("the Wi-Fi status failed: %s", e)
        return {"state": "UNKNOWN", "error": f"{type(e).__name__}: {e}"}


def peers() -> list[dict[str, Any]] | None:
    """Ketang devices zeroconf found, or None when this server does not browse."""
    disco = context.discovery()
    return None if disco is None else disco.peers()


def summary(name: str, settings: Settings) -> dict[str, Any] | None:
    """The named service's summary as plain JSON; None when it says it is not set up."""
    try:
        result = SUMMARIES[name](settings)
        if result is None:
            return None
        # Whatever it holds (paths, dates…) becomes plain JSON for the page and the poll.
        result = json.loads(json.dumps(result, default=str))
    except Exception as e:  # one broken part must not take the dashboard down
        problem = f"{type(e).__name__}: {e}"
        if problem not in _logged:     # the page polls every 2 s: say it once
            _logged.add(problem)
            log.exception("the %s summary failed", name)
        return {"error": problem}
    return result if isinstance(result, dict) else {"value": result}


UPDATES_STATUS = Path("updates") / "status.json"   # under device.data_dir (docs/updates.md)
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def software_updates(settings: Settings, boot_id_file: Path = BOOT_ID) -> dict[str, Any] | None:
    """Both root slots, the one running, the next boot, the last update and its outcome,
    the last refusal and health check, as ``ketang update`` recorded them; None when this
    device never recorded any (not an image with A/B slots)."""
    try:
        doc = json.loads((settings.device.data_dir / UPDATES_STATUS).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    last = doc.get("last_update")
    if isinstance(last, dict) and last.get("outcome") == "installing":
        # As provisioning.update.summary: an install recorded in another boot never
        # finished (the device restarted while the slot was written).
        try:
            boot_id = boot_id_file.read_text("utf-8").strip()
        except OSError:
            boot_id = ""
        if last.get("boot_id") and last.get("boot_id") != boot_id:
            doc["last_update"] = dict(last, outcome="interrupted")
    slots = doc.get("slots")
    doc["slots"] = {name: slot for name, slot in sorted(slots.items())
                    if isinstance(slot, dict)} if isinstance(slots, dict) else {}
    return doc


def dashboard_status(settings: Settings, library: Library) -> dict[str, Any]:
    """Everything the dashboard shows, for the page and ``/admin/status.json``."""
    return {
        "health": health_report(library, context.state().started),
        "setup": last_setup(settings.device.data_dir),
        "wifi": wifi(),
        "releases": releases(library),
        "subscriptions": subscriptions(settings),
        "drives": drives(settings),
        "peers": peers(),
        "sync": summary("sync", settings),
        "usage": summary("usage", settings),
        "updates": software_updates(settings),
    }
