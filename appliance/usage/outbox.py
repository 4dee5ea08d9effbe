"""The drive path, device side: pending statements written to a drive at its trip back.

Registered with the drive outbox by :func:`register`, which the device calls. The
statements that have left the device neither by LRS nor by an earlier drive go into
``KETANG/outbox/<device-id>/usage-<first seq>-<last seq>.jsonl.gz`` (gzip, one xAPI
statement per line) with a detached Ed25519 signature beside it (``….jsonl.gz.sig``,
by the device key). The drive cursor moves only after both files are fsynced on the
drive.
"""

from __future__ import annotations

import gzip
import json
import threading

from appliance import identity
from appliance.config import Settings
from appliance.drives import outbox
from content_cache import keys

from . import xapi
from .db import UsageDB, db_path
from .keys import ensure_device_key

MAX_PER_TRIP = 500_000
_LOCK = threading.Lock()
_GIVEN: dict[str, tuple[int, int]] = {}  # file name -> (last seq, statements)


def usage_files(settings: Settings) -> dict[str, bytes]:
    """``{name: bytes}`` of the usage file and its signature (empty when nothing is pending)."""
    if not settings.usage.enabled or not db_path(settings.device.data_dir).exists():
        return {}
    db = UsageDB(settings.device.data_dir, settings.usage)
    try:
        start = max(db.cursor("lrs"), db.cursor("drive"))
        rows = db.after(start, MAX_PER_TRIP)
    finally:
        db.close()
    if not rows:
        return {}
    device = identity.device_id(settings.device.id)
    lines = b"".join(json.dumps(xapi.statement(r, settings, device), ensure_ascii=False,
                                separators=(",", ":"), sort_keys=True).encode() + b"\n"
                     for r in rows)
    data = gzip.compress(lines, mtime=0)
    name = f"usage-{rows[0].seq:012d}-{rows[-1].seq:012d}.jsonl.gz"
    signature = keys.sign(ensure_device_key(settings.device.data_dir), data)
    with _LOCK:
        _GIVEN[name] = (rows[-1].seq, len(rows))
    return {name: data, name + ".sig": signature}


def files_written(settings: Settings, paths: list) -> None:
    """Count the statements of a usage file now on the drive as carried."""
    for p in paths:
        with _LOCK:
            given = _GIVEN.pop(p.name, None) or _GIVEN.pop(_original_name(p.name), None)
        if given is None:
            continue
        db = UsageDB(settings.device.data_dir, settings.usage)
        try:
            db.advance("drive", given[0], "carried", given[1])
        finally:
            db.close()


def _original_name(name: str) -> str:
    """``usage-a-b-2.jsonl.gz`` (renamed beside an existing file) → ``usage-a-b.jsonl.gz``."""
    stem, dot, ext = name.partition(".")
    parts = stem.split("-")
    return "-".join(parts[:3]) + dot + ext if len(parts) == 4 else name


def register() -> None:
    """Add the usage files to the drive outbox's providers (:mod:`appliance.device` calls it)."""
    outbox.register_provider(usage_files, files_written)
