"""What the drives are doing, as a small JSON file the projector view and dashboard read.

``drives.status_file`` holds ``{"drives": {"<device>": {...}}}``; each drive has a
``state`` (mounting, importing, writing-report, done, error), byte counts while
importing, and on error an ``error_code`` (see :data:`appliance.words.DRIVE_ERRORS`)
with the ``error`` in detail. Views put them into words (:func:`appliance.words.drive_text`);
``message`` holds the same words in Chinese and English for older readers. Every
write is atomic; progress is written at most a few times a second.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance import words
from content_cache.atomic import atomic_write_json
from content_cache.bundle_check import UnsafeBundleError
from content_cache.errors import (
    BlobError,
    ManifestError,
    ReplayError,
    SignatureError,
    SpaceError,
)

from .mount import DriveError

MIN_INTERVAL = 0.5  # seconds between progress writes


def error_code(e: BaseException) -> str:
    """The ``error_code`` a drive's status gets for ``e`` ("" when none fits)."""
    for kind, code in ((DriveError, "mount"), (SignatureError, "untrusted"),
                       (ManifestError, "manifest"), (BlobError, "blobs"),
                       (ReplayError, "older"), (SpaceError, "space"),
                       (UnsafeBundleError, "bundle"), (OSError, "pulled")):
        if isinstance(e, kind):
            return code
    return ""


def message_for(state: str, done: int = 0, total: int = 0, error: str = "",
                error_code: str = "") -> str:
    """The words for a drive's state in Chinese and English (``中文 / English``), with the
    error's detail when a code says what went wrong."""
    return describe({"state": state, "done_bytes": done, "total_bytes": total,
                     "error": error, "error_code": error_code})


def describe(entry: dict[str, Any]) -> str:
    """A status file entry in words, Chinese and English, for people at a terminal (and
    the ``message`` key); an entry an older version wrote shows its own ``message``."""
    text = words.both(lambda _: words.drive_text(entry, _))
    error, code = str(entry.get("error") or ""), str(entry.get("error_code") or "")
    if entry.get("state") == "error" and error and words.drive_error(code, words.english):
        text += f" ({error})"
    return text


TRANSIENT = ("mounting", "applying-setup", "importing", "writing-report")
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
            error: str = "", throttle: bool = False, error_code: str = "",
            note: str = "", **extra: Any) -> None:
        """Record a drive's state.

        ``note`` (words, Chinese first) goes before the state's message: what was done.
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
                "message": (f"{note}. " if note else "") + message_for(
                    state, done, total, error, error_code),
                "error": error, "error_code": error_code,
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
            self.set(device, "error", error=INTERRUPTED, error_code="interrupted")
        return stuck

    def forget(self, device: str) -> None:
        """Drop a drive from the file (it was removed after finishing)."""
        with self._lock:
            drives = self.read()
            if drives.pop(device, None) is not None:
                self._write(drives)

    def _write(self, drives: dict[str, Any]) -> None:
        doc = {"drives": drives}
        atomic_write_json(self.path, doc)
