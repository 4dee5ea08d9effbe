"""The hot-plug watcher: a drive is plugged in, lessons come in, reports go out.

On a udev ``add`` of a block device carrying a filesystem, :class:`DriveWatcher`
mounts it read-only (:mod:`appliance.drives.mount`); if it holds ``KETANG/`` it refuses
unsafe entries, imports the bundle with the content cache's importer (trusted keys
from the configuration), remounts the drive read-write just long enough to write a
status report into ``KETANG/outbox/<device-id>/``, and unmounts it. The status file
(``drives.status_file``) says what is happening in words throughout.

Drives are handled one after the other (one lock), never mixed up. Where no udev
runs, ``ketang drives insert DEVICE`` calls the same handler.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.config import Settings
from content_cache.bundle import BUNDLE_DIR
from content_cache.bundle_check import check_bundle_entries
from content_cache.errors import BlobError, KetangError
from content_cache.importer import ImportResult, import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.progress import Progress

from . import mount as drives
from .mount import DriveError, Mounted, check_not_system, filesystem_type, mount_readonly
from .outbox import encode_json, status_file_name, status_report, write_outbox
from .status import DriveStatus, error_code

log = logging.getLogger(__name__)



@dataclass
class DriveOutcome:
    """What handling one drive did."""

    device: str
    state: str  # "done", "error" or "ignored"
    message: str = ""
    results: list[ImportResult] = field(default_factory=list)
    outbox: list[Path] = field(default_factory=list)
    code: str = ""  # on error: the drive status error_code (appliance.drives.status)


class DriveWatcher:
    """Handles drive events; feed it from a pyudev MonitorObserver or by hand."""

    def __init__(self, settings: Settings, on_progress: Progress | None = None) -> None:
        self.settings = settings
        self.status = DriveStatus(settings.drives.status_file)
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self._mounted: dict[str, Mounted] = {}

    # pyudev.MonitorObserver(monitor, callback=watcher) calls this with device.action set.
    def __call__(self, device: Any) -> DriveOutcome | None:
        return self.handle_event(device.action or "", device)

    def handle_event(self, action: str, device: Any) -> DriveOutcome | None:
        """Handle one udev event (``add`` or ``remove``) for a ``pyudev.Device``."""
        if getattr(device, "subsystem", None) != "block" or not device.device_node:
            return None
        node = device.device_node
        if action == "remove":
            self.removed(node)
            return None
        if action not in ("add", "change"):
            return None
        if device.properties.get("DEVTYPE") not in ("disk", "partition"):
            return None
        fstype = device.properties.get("ID_FS_TYPE") or None
        return self.insert(node, fstype)

    def insert(self, node: str, fstype: str | None = None) -> DriveOutcome:
        """Do everything for a drive that just appeared at ``node``."""
        name = Path(node).name
        protected = (self.settings.device.data_dir,)
        try:
            check_not_system(node, protected)
        except DriveError as e:
            log.info("ignoring %s: %s", node, e)
            return DriveOutcome(name, "ignored", str(e))
        fstype = fstype or filesystem_type(node)
        if fstype is None:  # a whole disk with a partition table, or an empty one
            return DriveOutcome(name, "ignored", f"{node} carries no filesystem")
        with self._lock:
            return self._handle(node, name, fstype, protected)

    def removed(self, node: str) -> None:
        """A drive went away: detach its mount if still there; forget it once done."""
        name = Path(node).name
        m = self._mounted.pop(name, None)
        if m is not None:
            try:
                drives.unmount(m)
            except DriveError as e:
                log.warning("%s", e)
        if self.status.read().get(name, {}).get("state") == "done":
            self.status.forget(name)

    def _handle(self, node: str, name: str, fstype: str,
                protected: tuple[Path, ...]) -> DriveOutcome:
        self.status.set(name, "mounting")
        try:
            m = mount_readonly(node, self.settings.drives.mount_root, fstype, protected)
        except KetangError as e:
            self.status.set(name, "error", error=str(e), error_code="mount")
            return DriveOutcome(name, "error", str(e), code="mount")
        self._mounted[name] = m
        outcome = DriveOutcome(name, "done")
        try:
            outcome = self._work(m, name)
        finally:
            try:
                if self._mounted.pop(name, None) is not None:
                    drives.unmount(m)
            except DriveError as e:
                log.warning("%s", e)
        if outcome.state == "done":
            self.status.set(name, "done", **_summary(outcome))
        else:
            self.status.set(name, "error", error=outcome.message, error_code=outcome.code,
                            **_summary(outcome))
        return outcome

    def _work(self, m: Mounted, name: str) -> DriveOutcome:
        bundle = m.mountpoint / BUNDLE_DIR
        if not bundle.exists() and not bundle.is_symlink():
            return DriveOutcome(name, "done", "no KETANG/ folder on this drive")
        results: list[ImportResult] = []
        error = note = code = ""
        try:
            check_bundle_entries(bundle)
        except KetangError as e:
            return DriveOutcome(name, "error", str(e), code=error_code(e))
        except OSError as e:
            return DriveOutcome(name, "error", _pulled(e), code="pulled")
        updated, refused = self._install_update(bundle, name)
        if (updated or refused) and not (bundle / "releases").is_dir():
            return DriveOutcome(name, "error" if refused else "done", refused or updated,
                                code="update" if refused else "")
        library = Library(self.settings.device.data_dir)

        def progress(done: int, total: int) -> None:
            self.status.set(name, "importing", done, total, throttle=done < total)
            if self.on_progress:
                self.on_progress(done, total)

        try:
            results = import_bundle(m.mountpoint, library,
                                    load_trusted_keys(self.settings.trust.keys_dir),
                                    progress=progress,
                                    reserve_bytes=self.settings.device.reserve_mb * 1_000_000,
                                    subscription=self.settings.subscriptions.subscription(),
                                    keep_partial=self.settings.sync.enabled)
        except KetangError as e:
            error, code = str(e), error_code(e)
            if isinstance(e, BlobError) and self.settings.sync.enabled:
                handed = self._hand_to_sync(m, library)
                if handed:
                    error, note, code = "", "; ".join(handed), ""
        except OSError as e:
            # The drive went away mid-import: blobs already verified stay; no partial one.
            return DriveOutcome(name, "error", _pulled(e), results, code="pulled")
        outbox: list[Path] = []
        self.status.set(name, "writing-report")
        try:
            outbox = self._write_reports(m, library, results, error)
        except (KetangError, OSError) as e:
            error = (error + "; " if error else "") + f"writing the report failed: {e}"
            code = code or "report"
        return DriveOutcome(name, "error" if error else "done", error or note, results, outbox,
                            code if error else "")

    def _install_update(self, bundle: Path, name: str) -> tuple[str, str]:
        """``KETANG/updates/*.raucb``: hand the newest to the software-update installer
        (docs/updates.md; it verifies first). (what was installed, why refused)."""
        folder = bundle / "updates"
        if not folder.is_dir():
            return "", ""
        from provisioning.update import Device, install_from_folder

        self.status.set(name, "updating")
        try:
            return install_from_folder(Device(data_dir=self.settings.device.data_dir),
                                       folder), ""
        except KetangError as e:
            log.warning("software update refused: %s", e)
            return "", str(e)

    def _hand_to_sync(self, m: Mounted, library: Library) -> list[str]:
        """A bundle that lacks blobs but carries its torrent: the sync service fetches
        the rest from peers and web seeds (docs/sync.md). [] when it cannot."""
        from appliance.sync.feed import hand_to_sync

        active = {ch: rel.version for ch, rel in library.active().items()}
        try:
            return hand_to_sync(self.settings.device.data_dir, self.settings.trust.keys_dir,
                                m.mountpoint, active)
        except KetangError as e:
            log.info("not handed to the sync service: %s", e)
            return []

    def _write_reports(self, m: Mounted, library: Library, results: list[ImportResult],
                       error: str) -> list[Path]:
        now = datetime.now(UTC)
        active = {ch: rel.version for ch, rel in library.active().items()}
        last_sync = {
            "at": now.isoformat(timespec="seconds"), "via": "usb",
            "imported": [r.summary() for r in results],
            "error": error,
        }
        report = status_report(self.settings, active, last_sync, now)
        with drives.writable(m) as rw:
            return write_outbox(rw.mountpoint / BUNDLE_DIR, self.settings,
                                {status_file_name(now): encode_json(report)})

    def start(self) -> Any:
        """Watch udev for block devices in a background thread; return the observer."""
        import pyudev

        context = pyudev.Context()
        monitor = pyudev.Monitor.from_netlink(context)
        monitor.filter_by("block")
        observer = pyudev.MonitorObserver(monitor, callback=self, name="ketang-drives")
        observer.start()
        return observer


def _pulled(e: OSError) -> str:
    return (f"读取 U 盘失败（是否被拔出？）/ reading the drive failed (was it pulled out?): "
            f"{e}. The device still serves what it served; plug the drive in again to "
            "resume, files already verified are not copied again.")


def _summary(outcome: DriveOutcome) -> dict[str, Any]:
    return {
        "imported": [r.summary() for r in outcome.results],
        "outbox": [p.name for p in outcome.outbox],
    }
