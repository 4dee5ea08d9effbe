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

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.config import Settings
from content_cache.bundle import BUNDLE_DIR, NoCase, find_releases
from content_cache.bundle_check import check_bundle_entries
from content_cache.errors import BlobError, BundleReadError, DataDiskError, KetangError
from content_cache.importer import ImportResult, import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.progress import Progress

from . import mount as drives
from .mount import DriveError, Mounted, check_not_system, filesystem_type, mount_readonly
from .outbox import encode_json, status_file_name, status_report, write_outbox
from .status import DriveStatus, error_code

if TYPE_CHECKING:
    from provisioning.apply import Outcome
    from provisioning.runtime import DriveSetup

log = logging.getLogger(__name__)
CARRY_ONLY = ("U 盘上没有课程，报告已写入 / no lessons on this drive (no release in KETANG/); "
              "reports written to it")



@dataclass
class DriveOutcome:
    """What handling one drive did."""

    device: str
    state: str  # "done", "error" or "ignored"
    message: str = ""
    results: list[ImportResult] = field(default_factory=list)
    outbox: list[Path] = field(default_factory=list)
    code: str = ""  # on error: the drive status error_code (appliance.drives.status)
    params: dict[str, Any] = field(default_factory=dict)  # the error's parameters, if any
    setup: str = ""  # KETANG/setup/ketang-setup.toml: "applied", "unchanged" or ""


class DriveWatcher:
    """Handles drive events; feed it from a pyudev MonitorObserver or by hand."""

    def __init__(self, settings: Settings, on_progress: Progress | None = None,
                 setup: DriveSetup | None = None) -> None:
        """``setup``: applies a drive's ``KETANG/setup/ketang-setup.toml`` to this device
        (``provisioning.runtime.drive_setup``); None (a laptop, tests of imports) ignores
        setup files."""
        self.settings = settings
        self.setup = setup
        self.status = DriveStatus(settings.drives.status_file)
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self._mounted: dict[str, Mounted] = {}

    # pyudev.MonitorObserver(monitor, callback=watcher) calls this with device.action set.
    # An exception escaping here would end the observer's thread, and with it every
    # later drive: log it and go on.
    def __call__(self, device: Any) -> DriveOutcome | None:
        try:
            return self.handle_event(device.action or "", device)
        except Exception:
            log.exception("handling a udev event for %s failed",
                          getattr(device, "device_node", "?"))
            return None

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
        """Do everything for a drive that just appeared at ``node``.

        Never raises: whatever one drive does, it is reported (status file and outcome),
        unmounted, and the watcher goes on to the next drive.
        """
        name = Path(node).name
        try:
            return self._insert(node, name, fstype)
        except Exception as e:
            log.exception("handling %s failed", node)
            outcome = _unexpected(name, e)
            try:
                self.status.set(name, "error", error=outcome.message, error_code=outcome.code,
                                **_summary(outcome))
            except Exception:
                log.exception("could not record %s's error in the status file", node)
            return outcome

    def _insert(self, node: str, name: str, fstype: str | None) -> DriveOutcome:
        protected = (self.settings.device.data_dir,)
        root = self.settings.drives.mount_root
        with self._lock, contextlib.ExitStack() as stack:
            try:
                stack.enter_context(drives.mount_root_lock(root))
            except DriveError as e:
                self.status.set(name, "error", error=str(e), error_code="drives-busy")
                return DriveOutcome(name, "error", str(e), code="drives-busy")
            # Holding the lock, every mount under our root is one a killed Ketang process
            # left: release it, or this very drive would look "mounted by someone else".
            drives.release_stale_mounts(root)
            try:
                check_not_system(node, protected)
            except DriveError as e:
                log.info("ignoring %s: %s", node, e)
                return DriveOutcome(name, "ignored", str(e))
            fstype = fstype or filesystem_type(node)
            if fstype is None:
                if drives.has_partition_table(node) or not drives.has_media(node):
                    # its partitions come as events of their own; an empty card reader
                    return DriveOutcome(name, "ignored", f"{node} carries no filesystem")
                return self._no_filesystem(node, name)
            return self._handle(node, name, fstype, protected)

    def _no_filesystem(self, node: str, name: str) -> DriveOutcome:
        message = (f"U 盘无法识别 / {node} holds no filesystem Ketang can read (no partition "
                   "table either: its first sector is blank or damaged). Nothing was read from "
                   "it and nothing changed on this device. Remove it; on a computer, format it "
                   "FAT32 and copy the KETANG/ folder onto it again (`ketang export` or "
                   "`ketang publish`).")
        outcome = DriveOutcome(name, "error", message, code="no-filesystem",
                               params={"device": node})
        self.status.set(name, "error", error=message, error_code=outcome.code,
                        **_summary(outcome))
        return outcome

    def recover(self) -> list[Path]:
        """At start: unmount what a killed Ketang process left mounted under the mount root,
        and mark the drives it was handling as interrupted. Returns the mounts released."""
        with self._lock, drives.mount_root_lock(self.settings.drives.mount_root):
            released = drives.release_stale_mounts(self.settings.drives.mount_root)
            self.status.mark_interrupted()
        return released

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
        try:
            outcome = self._work(m, name)
        except Exception as e:  # a bug must not leave the drive mounted or the status stuck
            log.exception("handling %s failed", node)
            outcome = _unexpected(name, e)
        finally:
            try:
                if self._mounted.pop(name, None) is not None:
                    drives.unmount(m)
            except DriveError as e:
                log.warning("%s", e)
        if outcome.state == "done":
            self.status.set(name, "done", note=outcome.message,
                            note_code="reports-only" if outcome.message.endswith(CARRY_ONLY)
                            else "", **_summary(outcome))
        else:
            self.status.set(name, "error", error=outcome.message, error_code=outcome.code,
                            **_summary(outcome))
        return outcome

    def _work(self, m: Mounted, name: str) -> DriveOutcome:
        bundle = m.mountpoint / BUNDLE_DIR
        results: list[ImportResult] = []
        error = note = code = setup = ""
        carry_only = not bundle.exists() and not bundle.is_symlink()
        if not carry_only:
            try:
                check_bundle_entries(bundle)
            except KetangError as e:
                return DriveOutcome(name, "error", str(e), code=error_code(e))
            except OSError as e:
                return DriveOutcome(name, "error", _pulled(e), code="pulled")
            setup, refusal = self._apply_setup(m, bundle, name)
            if refusal is not None:
                return refusal
            updated, refused = self._install_update(bundle, name)
            if (updated or refused) and not (bundle / "releases").is_dir():
                return DriveOutcome(name, "error" if refused else "done", refused or updated,
                                    code="update" if refused else "")
            try:
                # Only a drive with nothing under KETANG/releases/ is one brought to carry
                # reports; release folders that are all unreadable are a broken drive.
                carry_only = not find_releases(bundle) and not _release_entries(bundle)
            except KetangError as e:
                return DriveOutcome(name, "error", str(e), code=error_code(e))
            except OSError as e:
                return DriveOutcome(name, "error", _pulled(e), code="pulled")
        library = Library(self.settings.device.data_dir)
        if carry_only:  # a drive brought only to carry the reports out: a normal case
            done = self._reports_only(m, name, library)
            done.setup = setup
            if setup and done.state == "done":
                done.message = f"{_setup_note(setup)}; {done.message}"
            return done

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
        except BundleReadError as e:
            # The drive went away mid-import: blobs already verified stay; no partial one.
            return DriveOutcome(name, "error", _pulled(e), results, code="pulled",
                                params={"device": m.device})
        except DataDiskError as e:
            # Our own disk, not the drive: say so (the report still goes onto the drive).
            error, code = str(e), "data-disk"
        except KetangError as e:
            error, code = str(e), error_code(e)
            if isinstance(e, BlobError) and self.settings.sync.enabled:
                handed = self._hand_to_sync(m, library)
                if handed:
                    error, note, code = "", "; ".join(handed), ""
        except OSError as e:
            return DriveOutcome(name, "error", _pulled(e), results, code="pulled",
                                params={"device": m.device})
        outbox: list[Path] = []
        self.status.set(name, "writing-report")
        try:
            outbox = self._write_reports(m, library, results, error)
        except (KetangError, OSError) as e:
            error = (error + "; " if error else "") + f"writing the report failed: {e}"
            code = code or "report"
        if setup and not error:
            note = "; ".join(filter(None, (_setup_note(setup), note)))
        return DriveOutcome(name, "error" if error else "done", error or note, results, outbox,
                            code=code if error else "",
                            params={"data_dir": str(library.data_dir)} if code == "data-disk"
                            else {}, setup=setup)

    def _reports_only(self, m: Mounted, name: str, library: Library) -> DriveOutcome:
        self.status.set(name, "writing-report")
        try:
            outbox = self._write_reports(m, library, [], "")
        except (KetangError, OSError) as e:
            return DriveOutcome(name, "error", f"writing the report failed: {e}")
        return DriveOutcome(name, "done", CARRY_ONLY, outbox=outbox)

    def _apply_setup(self, m: Mounted, bundle: Path, name: str,
                     ) -> tuple[str, DriveOutcome | None]:
        """``KETANG/setup/ketang-setup.toml``: apply it to this device, as a later setup file
        on the boot partition would be (security settings only before the seal), and make
        the services take it. The technician's file is never changed; the result goes
        beside it as ``ketang-setup-result.txt`` and onto the dashboard. ("applied" or
        "unchanged", None) when it applied, ("", None) when there is none, and a
        DriveOutcome (error ``setup``, one line: the first problem) when it did not."""
        setup = NoCase(bundle).path(*SETUP_PATH)
        if self.setup is None or not setup.is_file():
            return "", None
        self.status.set(name, "applying-setup")
        outcome = self.setup(setup)
        self._write_setup_result(m, outcome)
        if not outcome.ok:
            first = outcome.problems[0] if outcome.problems else None
            return "", DriveOutcome(name, "error", _setup_problem(outcome), code="setup",
                                    params={"setting": first.setting if first else "",
                                            "line": first.line if first else None},
                                    setup="refused")
        self.settings = self.setup.settings_after(outcome, self.settings)
        return ("applied" if outcome.applied else "unchanged"), None

    def _write_setup_result(self, m: Mounted, outcome: Outcome) -> None:
        """The result beside the setup file (Windows line ends, as on the boot partition);
        a drive that cannot take it still has the result on the dashboard."""
        from content_cache.atomic import atomic_write_bytes

        text = outcome.result_text().replace("\n", "\r\n").encode("utf-8")
        try:
            with drives.writable(m) as rw:
                folder = NoCase(rw.mountpoint / BUNDLE_DIR).path(*SETUP_PATH[:-1])
                atomic_write_bytes(folder / SETUP_RESULT, text)
        except (KetangError, OSError) as e:
            log.warning("could not write the setup result onto %s: %s", m.device, e)

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

        self.recover()
        context = pyudev.Context()
        monitor = pyudev.Monitor.from_netlink(context)
        monitor.filter_by("block")
        observer = pyudev.MonitorObserver(monitor, callback=self, name="ketang-drives")
        observer.start()
        return observer


SETUP_PATH = ("setup", "ketang-setup.toml")   # under KETANG/ (provisioning.setupfile)
SETUP_RESULT = "ketang-setup-result.txt"


def _setup_note(setup: str) -> str:
    if setup == "applied":
        return "设置文件已应用 / the setup file was applied"
    return "设置文件无需更改 / the setup file changed nothing: already in place"


def _setup_problem(outcome: Outcome) -> str:
    """The setup file's first problem in one line (all of them are in the result file)."""
    first = str(outcome.problems[0]) if outcome.problems else "?"
    more = len(outcome.problems) - 1
    return (f"设置文件未应用，设备保持原样 / the setup file was not applied, nothing changed: "
            f"{' '.join(first.split())}"
            + (f" (+{more})" if more > 0 else "")
            + f" — KETANG/setup/{SETUP_RESULT}")


def _release_entries(bundle: Path) -> bool:
    """Whether ``KETANG/releases/`` holds anything at all (names matched ignoring case)."""
    releases = NoCase(bundle).path("releases")
    return releases.is_dir() and not releases.is_symlink() and any(releases.iterdir())


def _pulled(e: Exception) -> str:
    return (f"读取 U 盘失败（是否被拔出？）/ reading the drive failed (was it pulled out?): "
            f"{e}. The device still serves what it served; plug the drive in again to "
            "resume, files already verified are not copied again.")


def _unexpected(name: str, e: BaseException) -> DriveOutcome:
    what = f"{type(e).__name__}: {e}"[:300]
    return DriveOutcome(
        name, "error",
        f"处理 U 盘时出现意外错误 / unexpected error while handling the drive ({what}). "
        "Nothing from it was activated, the drive was unmounted and the device still "
        "serves what it served; you may remove it. Please report this (the log has details).",
        code="internal", params={"error": what})


def _summary(outcome: DriveOutcome) -> dict[str, Any]:
    extra: dict[str, Any] = {"error_params": outcome.params} if outcome.params else {}
    if outcome.setup:
        extra["setup"] = outcome.setup
    return {
        **extra,
        "imported": [r.summary() for r in outcome.results],
        "outbox": [p.name for p in outcome.outbox],
    }
