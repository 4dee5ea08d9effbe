"""What the drives are doing, as a small JSON file the projector view and dashboard read.

``drives.status_file`` holds ``{"drives": {"<device>": {...}}}``; each drive has a
``state`` (mounting, importing, writing-report, done, error), byte counts while
importing, and a message in words, Chinese first then English. Every write is atomic;
progress is written at most a few times a second.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.text import human_bytes
from content_cache.atomic import atomic_write_bytes

MIN_INTERVAL = 0.5  # seconds between progress writes


def message_for(state: str, done: int = 0, total: int = 0, error: str = "") -> str:
    """The words a person sees for a drive's state."""
    if state == "mounting":
        return "正在读取 U 盘… / Reading the drive…"
    if state == "importing":
        d, t = human_bytes(done), human_bytes(total)
        return (f"正在导入 {d} / {t}，请勿拔出 U 盘 / "
                f"Importing {d} of {t}, don't remove the drive")
    if state == "writing-report":
        return "正在写入报告，请勿拔出 U 盘 / Writing reports, don't remove the drive"
    if state == "done":
        return "完成，可以安全拔出 U 盘 / Done, safe to remove the drive"
    if state == "error":
        return f"出错，可以拔出 U 盘 / Error, you may remove the drive: {error}"
    return state


TRANSIENT = ("mounting", "importing", "writing-report")
INTERRUPTED = ("导入被中断（Ketang 重新启动）/ the import was interrupted (Ketang restarted); "
               "what was verified is kept: plug the drive in again to resume.")


class DriveStatus:
    """The status file, shared by the watcher's threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._last: dict[str, tuple[str, float]] = {}  # device -> (state, time written)

    def read(self) -> dict[str, Any]:
        """Every drive's status, by device name (empty if none)."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8")).get("drives", {})
        except (FileNotFoundError, ValueError):
            return {}

    def set(self, device: str, state: str, done: int = 0, total: int = 0,
            error: str = "", throttle: bool = False, **extra: Any) -> None:
        """Record a drive's state.

        ``throttle`` skips a write that repeats the drive's last state within MIN_INTERVAL
        (progress); a change of state is always written.
        """
        with self._lock:
            now = time.monotonic()
            last_state, last_time = self._last.get(device, ("", 0.0))
            if throttle and last_state == state and now - last_time < MIN_INTERVAL:
                return
            drives = self.read()
            drives[device] = {
                "state": state, "done_bytes": done, "total_bytes": total,
                "message": message_for(state, done, total, error), "error": error,
                "updated": datetime.now(UTC).isoformat(timespec="seconds"), **extra,
            }
            self._write(drives)
            self._last[device] = (state, now)

    def mark_interrupted(self) -> list[str]:
        """Drives left mid-way by a process that stopped become errors (code ``interrupted``).

        Without this a killed import would leave the dashboard saying "mounting" forever.
        """
        stuck = [d for d, e in self.read().items() if e.get("state") in TRANSIENT]
        for device in stuck:
            self.set(device, "error", error=INTERRUPTED, code="interrupted")
        return stuck

    def forget(self, device: str) -> None:
        """Drop a drive from the file (it was removed after finishing)."""
        with self._lock:
            drives = self.read()
            if drives.pop(device, None) is not None:
                self._write(drives)

    def _write(self, drives: dict[str, Any]) -> None:
        doc = {"drives": drives}
        atomic_write_bytes(self.path, (json.dumps(doc, ensure_ascii=False, indent=2,
                                                  sort_keys=True) + "\n").encode())
