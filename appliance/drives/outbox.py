"""The trip back: reports a device writes into a drive's ``KETANG/outbox/<device-id>/``.

Each file is written to a temporary name, fsynced, then renamed into place; a file
already on the drive is never overwritten (a new name is chosen instead). Besides the
status report written here, other parts (usage reports) register a provider with
:func:`register_provider`; each provider returns ``{file name: bytes}``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance import identity
from appliance.config import Settings
from content_cache.atomic import fsync_dir, json_bytes
from content_cache.errors import KetangError

OUTBOX_DIR = "outbox"
Provider = Callable[[Settings], dict[str, bytes]]
Written = Callable[[Settings, list[Path]], None]
_PROVIDERS: list[Provider] = []
_WRITTEN: dict[Provider, Written] = {}
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def register_provider(provider: Provider, written: Written | None = None) -> None:
    """Add a source of outbox files (the usage reports hook).

    ``written(settings, paths)`` is called once the provider's files are on the drive
    (fsynced), so it may then count them as carried.
    """
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)
    if written is not None:
        _WRITTEN[provider] = written


def providers() -> list[Provider]:
    """The registered providers, in order."""
    return list(_PROVIDERS)


def device_id(settings: Settings) -> str:
    """This device's outbox folder name: ``device.id``, else derived from the machine id."""
    return identity.device_id(settings.device.id)


def status_report(settings: Settings, active: dict[str, int], last_sync: dict[str, Any],
                  now: datetime | None = None) -> dict[str, Any]:
    """The status report: device id, school, served versions, disk, last sync."""
    now = now or datetime.now(UTC)
    data_dir = settings.device.data_dir
    probe = data_dir if data_dir.exists() else Path("/")
    usage = shutil.disk_usage(probe)
    return {
        "format": "ketang-status/1",
        "device_id": device_id(settings),
        "school": settings.device.name,
        "written_at": now.isoformat(timespec="seconds"),
        "releases": dict(sorted(active.items())),
        "disk": {"path": str(data_dir), "total_bytes": usage.total,
                 "free_bytes": usage.free, "used_bytes": usage.used},
        "last_sync": last_sync,
    }


def write_new_file(folder: Path, name: str, data: bytes) -> Path:
    """Write ``folder/name`` atomically; if it exists, use ``stem-2.ext``, ``stem-3.ext``…"""
    if not SAFE_NAME.match(name):
        raise KetangError(f"outbox file name {name!r} is not a plain file name; refused.")
    folder.mkdir(parents=True, exist_ok=True)
    stem, dot, ext = name.partition(".")
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        for n in range(1, 10_000):
            final = folder / (name if n == 1 else f"{stem}-{n}{dot}{ext}")
            if not os.path.lexists(final):
                os.rename(tmp, final)
                break
        else:
            raise KetangError(f"{folder} already holds 10,000 files named like {name}.")
        with contextlib.suppress(OSError):  # some FUSE drivers cannot fsync a folder
            fsync_dir(folder)
        return final
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_outbox(bundle: Path, settings: Settings, files: dict[str, bytes]) -> list[Path]:
    """Write ``files`` and every provider's files into ``bundle/outbox/<device-id>/``.

    ``bundle`` is the drive's ``KETANG/`` folder, mounted writable.
    """
    folder = Path(bundle) / OUTBOX_DIR / device_id(settings)
    everything = dict(files)
    given = []
    for provider in _PROVIDERS:
        got = provider(settings)
        everything.update(got)
        given.append((provider, got))
    written = {name: write_new_file(folder, name, data) for name, data in everything.items()}
    for provider, got in given:
        if provider in _WRITTEN and got:
            _WRITTEN[provider](settings, [written[name] for name in got])
    return list(written.values())


def status_file_name(now: datetime | None = None) -> str:
    """``status-20261123T101500Z.json``."""
    now = now or datetime.now(UTC)
    return f"status-{now.strftime('%Y%m%dT%H%M%SZ')}.json"


def encode_json(doc: dict[str, Any]) -> bytes:
    """JSON bytes as written to the outbox (UTF-8, Chinese kept readable)."""
    return json_bytes(doc)
