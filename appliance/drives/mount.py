"""Mounting USB drives: read-only, nosuid, nodev, noexec, under ``drives.mount_root``.

The kernel mounts the drive when it has a driver for the filesystem; for FAT32 and
exFAT on a kernel without one (``/proc/filesystems`` says so), the FUSE driver
(``fusefat``, ``exfat-fuse``) mounts it with the same options. The disks that hold
the device's own ``/``, ``/boot`` and data folder are never mounted or touched.

A drive is writable only inside :func:`writable`, for as long as it takes to write
the outbox; then it is read-only again.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from content_cache.errors import KetangError

log = logging.getLogger(__name__)

SAFE_OPTIONS = "nosuid,nodev,noexec"
SUPPORTED = ("vfat", "exfat", "ext4", "ext3", "ext2")
FUSE_DRIVERS = {"vfat": "fusefat", "exfat": "mount.exfat-fuse"}
FUSE_PACKAGES = {"fusefat": "fusefat", "mount.exfat-fuse": "exfat-fuse"}
FOREGROUND = ("fusefat",)  # FUSE drivers with a quiet foreground mode (-f)
PROTECTED_PATHS = (Path("/"), Path("/boot"), Path("/boot/firmware"))
MOUNT_TIMEOUT = 15.0


class DriveError(KetangError):
    """A drive could not be mounted, remounted or unmounted."""


@dataclass
class Mounted:
    """A drive mounted by this module."""

    device: str
    fstype: str
    mountpoint: Path
    driver: str  # "kernel" or the FUSE program's name
    writable: bool = False
    fuse_pid: int | None = None


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip() or f"exit {proc.returncode}"
        raise DriveError(f"{what} failed: {' '.join(cmd)}: {detail}")


def filesystem_type(device: str) -> str | None:
    """The filesystem on ``device`` as blkid probes it (``vfat``, ``ext4``…), or None.

    ``-p`` probes the device itself, never blkid's cache (a reused loop device lies).
    """
    proc = subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", device],
                          capture_output=True, text=True)
    value = proc.stdout.strip()
    return value or None


def has_partition_table(device: str) -> bool:
    """True if ``device`` is a whole disk whose partitions carry the filesystems."""
    proc = subprocess.run(["blkid", "-p", "-o", "value", "-s", "PTTYPE", device],
                          capture_output=True, text=True)
    return bool(proc.stdout.strip())


def has_media(device: str) -> bool:
    """False for an empty card reader (a block device of size 0)."""
    try:
        with open(device, "rb") as f:
            return f.seek(0, os.SEEK_END) > 0
    except OSError:
        return False


def kernel_has(fstype: str) -> bool:
    """True if the running kernel lists ``fstype`` in /proc/filesystems."""
    try:
        text = Path("/proc/filesystems").read_text()
    except OSError:
        return False
    return fstype in {line.split()[-1] for line in text.splitlines() if line.strip()}


def _disk_of(major: int, minor: int) -> str | None:
    """The whole disk (``sda``, ``mmcblk0``, ``loop3``) holding block device major:minor."""
    sys_path = Path(f"/sys/dev/block/{major}:{minor}")
    if not sys_path.exists():
        return None
    real = sys_path.resolve()
    if (real / "partition").exists():
        real = real.parent
    return real.name


def protected_disks(extra: tuple[Path, ...] = ()) -> set[str]:
    """The disks holding ``/``, ``/boot``, ``/boot/firmware`` and ``extra`` paths."""
    disks = set()
    for p in (*PROTECTED_PATHS, *extra):
        p = Path(p)
        while not p.exists() and p != p.parent:
            p = p.parent
        try:
            st = os.stat(p)
        except OSError:
            continue
        disk = _disk_of(os.major(st.st_dev), os.minor(st.st_dev))
        if disk:
            disks.add(disk)
    return disks


def disk_of_device(device: str) -> str | None:
    """The whole disk a block device node belongs to."""
    st = os.stat(device)
    return _disk_of(os.major(st.st_rdev), os.minor(st.st_rdev))


def check_not_system(device: str, protected: tuple[Path, ...] = ()) -> None:
    """Raise DriveError if ``device`` is on a disk the device itself runs from."""
    try:
        disk = disk_of_device(device)
    except OSError as e:
        raise DriveError(f"{device} is gone or not a block device ({e}).") from e
    if disk is not None and disk in protected_disks(protected):
        raise DriveError(f"{device} is on {disk}, a disk this device runs from "
                         "(/, /boot or the data folder); it is never mounted as a drive.")
    where = mounted_at(device)
    if where:
        raise DriveError(f"{device} is already mounted at {where}; a drive someone else "
                         "mounted is left alone.")


def mounted_at(device: str) -> str | None:
    """Where block device ``device`` is mounted now (by anyone), or None."""
    rdev = os.stat(device).st_rdev
    wanted = f"{os.major(rdev)}:{os.minor(rdev)}"
    real = os.path.realpath(device)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            # fields[2] is major:minor (0:N for FUSE); the source follows the " - " marker.
            source = fields[fields.index("-") + 2] if "-" in fields else ""
            if fields[2] == wanted or os.path.realpath(source) == real:
                return fields[4].replace("\\040", " ")
    return None


def mountpoint_for(device: str, mount_root: Path) -> Path:
    """``mount_root/<device name>``, e.g. ``/media/ketang/sdb1``."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(device).name) or "drive"
    return Path(mount_root) / name


def is_mounted(path: Path) -> bool:
    """True if ``path`` is a mount point now (read from /proc/self/mounts)."""
    target = str(Path(path))
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 1 and fields[1].replace("\\040", " ") == target:
                return True
    return False


def _unescape(field: str) -> str:
    """A path as /proc/self/mountinfo writes it (``\\040`` for a space…), decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(root: Path) -> list[Path]:
    """Mount points strictly below ``root``, deepest first."""
    real = os.path.realpath(root)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4:
                point = _unescape(fields[4])
                if point.startswith(real + "/"):
                    found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


LOCK_NAME = ".ketang-drives.lock"


@contextlib.contextmanager
def mount_root_lock(mount_root: Path) -> Iterator[None]:
    """Hold the lock that says a Ketang process is handling a drive under ``mount_root``.

    While it is held by us, no other Ketang process uses a mount under the root, so any
    mount found there was left by a process that died (see :func:`release_stale_mounts`).
    """
    root = Path(mount_root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_NAME, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise DriveError(f"another Ketang process is handling a drive under {root}; "
                             "wait for it to finish, then plug the drive in again.") from e
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def release_stale_mounts(mount_root: Path) -> list[Path]:
    """Unmount every drive still mounted under Ketang's own ``mount_root``; return them.

    Such a mount was made by a Ketang process that was killed mid-import (the kernel
    keeps the mount, and a FUSE driver outlives its parent). Call holding
    :func:`mount_root_lock`; mounts anywhere else are never touched.
    """
    released = []
    for point in mounts_under(mount_root):
        log.warning("unmounting %s, left mounted by a Ketang process that stopped", point)
        unmount(Mounted("", "", point, "unknown"))
        released.append(point)
    return released


def _start_fuse(program: str, device: str, mountpoint: Path, options: str) -> int | None:
    """Start a FUSE driver (in the foreground where it can, so its pid is ours)."""
    exe = shutil.which(program)
    if exe is None:
        raise DriveError(f"the kernel has no driver for this drive and {program} is not "
                         f"installed; install it (apt-get install {FUSE_PACKAGES[program]}).")
    # Its chatter goes to an unlinked temporary file: a pipe nobody drains would fill
    # and block the driver (and every read of the drive) once it is full.
    if program not in FOREGROUND:
        # exfat-fuse has no quiet foreground mode: let it daemonise (its pid is not kept).
        _run([exe, "-o", options, device, str(mountpoint)], f"{program} mounting {device}")
        if not is_mounted(mountpoint):
            raise DriveError(f"{program} exited but {mountpoint} is not mounted.")
        return None
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([exe, "-f", "-o", options, device, str(mountpoint)],
                                stdout=subprocess.DEVNULL, stderr=log)
        return _wait_mounted(proc, program, device, mountpoint, log)


def _wait_mounted(proc: subprocess.Popen, program: str, device: str, mountpoint: Path,
                  log: Any) -> int:
    deadline = time.monotonic() + MOUNT_TIMEOUT
    while not is_mounted(mountpoint):
        if proc.poll() is not None:
            log.seek(0)
            err = log.read()[-2000:].decode(errors="replace").strip()
            detail = err or f"exit {proc.returncode}"
            raise DriveError(f"{program} could not mount {device}: {detail}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise DriveError(f"{program} did not mount {device} within {MOUNT_TIMEOUT:.0f} s.")
        time.sleep(0.02)
    return proc.pid


def mount_at(device: str, fstype: str, mountpoint: Path, rw: bool) -> Mounted:
    if fstype not in SUPPORTED:
        raise DriveError(f"{device} holds a {fstype} filesystem; Ketang reads drives formatted "
                         "FAT32, exFAT or ext4. Re-format the drive (FAT32 is simplest).")
    mountpoint.mkdir(parents=True, exist_ok=True)
    if is_mounted(mountpoint):
        raise DriveError(f"{mountpoint} is already a mount point; unmount it first.")
    mode = "rw" if rw else "ro"
    if kernel_has(fstype) or fstype not in FUSE_DRIVERS:
        _run(["mount", "-t", fstype, "-o", f"{mode},{SAFE_OPTIONS}", device, str(mountpoint)],
             f"mounting {device}")
        return Mounted(device, fstype, mountpoint, "kernel", rw)
    program = FUSE_DRIVERS[fstype]
    # fusefat spells read-write "rw+"; plain "rw" leaves it read-only.
    fuse_mode = "rw+" if (rw and program == "fusefat") else mode
    pid = _start_fuse(program, device, mountpoint, f"{fuse_mode},{SAFE_OPTIONS}")
    m = Mounted(device, fstype, mountpoint, program, rw, pid)
    if not set(SAFE_OPTIONS.split(",")) <= mount_options(mountpoint):
        # Some drivers (exfat-fuse) drop noexec; set the mount's own flags in place.
        try:
            _run(["mount", "-o", f"remount,bind,{mode},{SAFE_OPTIONS}", str(mountpoint)],
                 f"setting {SAFE_OPTIONS} on {mountpoint}")
        except DriveError:
            unmount(m, remove_dir=False)
            raise
    return m


def mount_options(path: Path) -> set[str]:
    """The options ``path`` is mounted with now (empty if it is not a mount point)."""
    target = str(Path(path))
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 3 and fields[1].replace("\\040", " ") == target:
                return set(fields[3].split(","))
    return set()


def mount_readonly(device: str, mount_root: Path, fstype: str | None = None,
                   protected: tuple[Path, ...] = ()) -> Mounted:
    """Mount ``device`` read-only, nosuid, nodev, noexec under ``mount_root``.

    Refuses the device's own disks (``/``, ``/boot``, and ``protected`` paths such as
    the data folder) and filesystems other than FAT32/exFAT/ext4.
    """
    check_not_system(device, protected)
    fstype = fstype or filesystem_type(device)
    if fstype is None:
        raise DriveError(f"{device} has no filesystem Ketang can read (blkid found none).")
    return mount_at(device, fstype, mountpoint_for(device, mount_root), rw=False)


def _wait_fuse(m: Mounted) -> None:
    if m.fuse_pid is None:
        return
    deadline = time.monotonic() + MOUNT_TIMEOUT
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(m.fuse_pid, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            return
        time.sleep(0.02)


def unmount(m: Mounted, remove_dir: bool = True) -> None:
    """Unmount a drive mounted here (lazily if it was pulled), and remove its folder."""
    if is_mounted(m.mountpoint):
        with contextlib.suppress(OSError):
            os.sync()
        proc = subprocess.run(["umount", str(m.mountpoint)], capture_output=True, text=True)
        if proc.returncode != 0:
            # A pulled drive or a dead FUSE driver: detach the mount so nothing hangs on it.
            _run(["umount", "-l", str(m.mountpoint)], f"unmounting {m.mountpoint}")
    _wait_fuse(m)
    if remove_dir:
        with contextlib.suppress(OSError):
            m.mountpoint.rmdir()


@contextlib.contextmanager
def writable(m: Mounted) -> Iterator[Mounted]:
    """Make a read-only drive writable for the ``with`` block only, then read-only again.

    The kernel remounts in place; a FUSE driver is unmounted and mounted again. Yields
    the writable mount (same mount point). On exit everything is synced to the drive.
    """
    if m.driver == "kernel":
        _run(["mount", "-o", f"remount,rw,{SAFE_OPTIONS}", str(m.mountpoint)],
             f"remounting {m.device} read-write")
        rw = replace(m, writable=True)
        try:
            yield rw
        finally:
            os.sync()
            _run(["mount", "-o", f"remount,ro,{SAFE_OPTIONS}", str(m.mountpoint)],
                 f"remounting {m.device} read-only")
        return
    unmount(m, remove_dir=False)
    rw = mount_at(m.device, m.fstype, m.mountpoint, rw=True)
    try:
        yield rw
    finally:
        unmount(rw, remove_dir=False)
        ro = mount_at(m.device, m.fstype, m.mountpoint, rw=False)
        m.fuse_pid = ro.fuse_pid  # the caller keeps its Mounted; the FUSE driver changed
