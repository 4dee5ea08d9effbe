"""What the sync service is doing, for ``ketang sync status`` and the dashboard.

The service (in ``ketang serve``) writes ``sync.status_file`` atomically, only when
something in it changed (an idle device writes nothing). :func:`sync_summary` reads it
from any process and adds what can be worked out from the settings alone (the time
windows). docs/sync.md describes the shape.
"""

from __future__ import annotations

import functools
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from appliance import words
from appliance.config import Settings
from appliance.text import human_bytes
from content_cache.errors import KetangError

from .schedule import in_window, next_window, parse_windows


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def window_summary(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Whether the uplink window is open now, and when the next one opens and closes."""
    now = now or datetime.now()
    try:
        windows = parse_windows(settings.sync.windows)
    except KetangError as e:
        return {"windows": list(settings.sync.windows), "open": False, "next_start": None,
                "next_end": None, "error": str(e)}
    nxt = next_window(windows, now)
    return {
        "windows": [str(w) for w in windows],
        "open": in_window(windows, now),
        "next_start": nxt[0].isoformat(timespec="minutes") if nxt else None,
        "next_end": nxt[1].isoformat(timespec="minutes") if nxt else None,
        "error": "",
    }


def read_status_file(path: Path) -> dict[str, Any]:
    """The service's last status document, or {} when there is none (or it is unreadable)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def sync_summary(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Per release: bytes needed/done, rates, peers, web seed state; next window; errors.

    Safe to call from any process, at any time; it never raises for a missing or
    damaged status file (it says so instead). See docs/sync.md for every key.
    """
    doc = read_status_file(settings.sync.status_file)
    running = bool(doc) and _alive(doc.get("pid"))
    out: dict[str, Any] = {
        "enabled": settings.sync.enabled,
        "running": running,
        "updated": doc.get("updated"),
        "state": doc.get("state", "off") if running else "off",
        "message": "",
        "listen_port": doc.get("listen_port") if running else None,
        "window": window_summary(settings, now),
        "quota": doc.get("quota") or {"daily_bytes": settings.sync.daily_quota_mb * 1_000_000,
                                      "used_bytes": 0, "remaining_bytes": None, "day": None},
        "limits": {"upload_kbps": settings.sync.upload_rate_kbps,
                   "download_kbps": settings.sync.download_rate_kbps,
                   "lan_kbps": settings.sync.lan_rate_kbps},
        "feeds": doc.get("feeds", []),
        "township": (doc.get("township") if running else None) or {
            "device_id": "", "hub": "", "hub_name": "", "hub_how": "", "hub_is_self": False,
            "uses_uplink": False, "neighbours": []},
        "releases": doc.get("releases", []),
        # The software channel (docs/updates.md): a bundle being fetched, verified,
        # handed to the installer ("ready") or refused.
        "software": (doc.get("software") if running else None) or {"state": "off",
                                                                     "error": ""},
        "errors": doc.get("errors", []),
    }
    # Words for the CLI and older readers (views say the state themselves).
    out["message"] = words.both(lambda _: words.sync_text({**out, "message": doc.get(
        "message", "")}, _))
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as lines for a person (``ketang sync status``)."""
    lines = [summary["message"] or summary["state"]]
    w = summary["window"]
    if w.get("error"):
        lines.append(f"时间窗口错误 / Window error: {w['error']}")
    elif not w["windows"]:
        lines.append("时间窗口: 全天 / Window: any time")
    else:
        state = "开放 / open" if w["open"] else "关闭 / closed"
        lines.append(f"时间窗口 / Window {', '.join(w['windows'])}: {state}; "
                     f"next {w['next_start']} – {w['next_end']}")
    q = summary["quota"]
    if q.get("daily_bytes"):
        lines.append(f"今日流量 / Today's uplink: {human_bytes(q.get('used_bytes', 0))} of "
                     f"{human_bytes(q['daily_bytes'])}")
    town = summary.get("township") or {}
    if town.get("hub_how"):
        lines.append(words.both(lambda _: words.hub_text(town, _)))
    for f in summary["feeds"]:
        lines.append(f"feed {f['url']}: {f.get('error') or 'ok'} (polled {f.get('polled')})")
    for r in summary["releases"]:
        lines.append(
            f"{r['channel']} v{r['version']}: {r['state']}  "
            f"{human_bytes(r['done_bytes'])} / {human_bytes(r['needed_bytes'])}  "
            f"↓{human_bytes(r['download_rate'])}/s ↑{human_bytes(r['upload_rate'])}/s  "
            f"peers {r['peers']}  web seeds "
            + (", ".join(f"{s['url']} {s['state']}" for s in r["web_seeds"]) or "-"))
        lines.append("  " + words.both(functools.partial(words.sources_text, r)))
        lines += [f"  ! {e}" for e in r.get("errors", [])[-3:]]
    sw = summary.get("software") or {}
    if sw.get("bundle"):
        lines.append(f"软件更新 / Software {sw['bundle']} ({sw.get('version')}): {sw['state']}  "
                     f"{human_bytes(sw.get('done', 0))} / {human_bytes(sw.get('size', 0))}"
                     + (f"  ! {sw['error']}" if sw.get("error") else ""))
    lines += [f"! {e}" for e in summary["errors"][-5:]]
    return "\n".join(lines)
