"""Real drive images on loop devices, for the USB drive tests (root, /dev/loop*, FUSE)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from appliance.drives.mount import mount_at, unmount


def loop_skip_reason() -> str | None:
    """Why drive tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "drive tests need root (losetup, mount)"
    for cmd in ("losetup", "mkfs.vfat", "mkfs.ext4", "mkfs.exfat", "blkid", "fusefat",
                "mount.exfat-fuse"):
        if shutil.which(cmd) is None:
            return f"drive tests need {cmd} (make test installs it)"
    if not Path("/dev/loop-control").exists():
        return "no loop devices on this machine (/dev/loop-control missing)"
    if not Path("/dev/fuse").exists():
        return "no FUSE on this machine (/dev/fuse missing), so FAT32 cannot be mounted"
    return None


# Skips a test where drives cannot be made (with CI=true: fails); see tests/conftest.py.
needs_loop = pytest.mark.usefixtures("loop_devices")


def make_image(path: Path, fstype: str, size_mb: int = 32, content: Path | None = None) -> Path:
    """A fresh filesystem image holding a copy of ``content`` (if given)."""
    with open(path, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    if fstype == "ext4":
        cmd = ["mkfs.ext4", "-q", "-F"] + (["-d", str(content)] if content else []) + [str(path)]
        subprocess.run(cmd, check=True, capture_output=True)
        return path
    if fstype == "exfat":
        subprocess.run(["mkfs.exfat", "-L", "KETANGTEST", str(path)], check=True,
                       capture_output=True)
    else:
        subprocess.run(["mkfs.vfat", "-F", "32", "-n", "KETANGTEST", str(path)], check=True,
                       capture_output=True)
    if content is not None:
        with loop(path) as dev:
            mnt = path.with_suffix(".fill")
            m = mount_at(dev, fstype, mnt, rw=True)
            try:
                copy_plain(content, mnt)
            finally:
                unmount(m)
    return path


def copy_plain(src: Path, dst: Path) -> None:
    """Copy a tree's folders and file bytes only (FAT keeps no modes or times for us)."""
    for item in sorted(src.iterdir()):
        if item.is_dir():
            (dst / item.name).mkdir(exist_ok=True)
            copy_plain(item, dst / item.name)
        else:
            shutil.copyfile(item, dst / item.name)


@contextmanager
def loop(image: Path) -> Iterator[str]:
    """Attach ``image`` to a free loop device; detach it afterwards."""
    dev = subprocess.run(["losetup", "-f", "--show", str(image)], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


@contextmanager
def small_disk(path: Path, size_mb: int = 16, inodes: int | None = None) -> Iterator[Path]:
    """A real tmpfs of ``size_mb`` (and ``inodes`` files, if given) mounted at ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size_mb}m" + (f",nr_inodes={inodes}" if inodes else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True,
                   capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_files(folder: Path, leave: int = 1) -> None:
    """Create empty files in ``folder`` until its disk has no inode left, then free ``leave``."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    try:
        while True:
            p = folder / f"filler-{len(made)}"
            p.touch()
            made.append(p)
    except OSError:
        pass
    for p in made[-leave:]:
        p.unlink()
