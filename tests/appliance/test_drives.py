"""Mounting real drive images (ext4, FAT32) read-only, briefly read-write, and unmounting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.drives.mount import (
    DriveError,
    check_not_system,
    is_mounted,
    mount_readonly,
    protected_disks,
    unmount,
    writable,
)

from .loopdev import loop, make_image, needs_loop

pytestmark = needs_loop


def _content(tmp_path: Path) -> Path:
    src = tmp_path / "content"
    (src / "KETANG").mkdir(parents=True)
    (src / "KETANG" / "hello.txt").write_text("你好")
    return src


@pytest.mark.parametrize("fstype", ["ext4", "vfat", "exfat"])
def test_mount_readonly_then_writable_then_unmount(tmp_path, fstype):
    img = make_image(tmp_path / f"d.{fstype}", fstype, 32, _content(tmp_path))
    root = tmp_path / "media"
    with loop(img) as dev:
        m = mount_readonly(dev, root)
        try:
            assert m.mountpoint == root / Path(dev).name
            assert is_mounted(m.mountpoint)
            opts = _options(m.mountpoint)
            assert {"ro", "nosuid", "nodev", "noexec"} <= opts
            assert (m.mountpoint / "KETANG" / "hello.txt").read_text() == "你好"
            with pytest.raises(OSError):
                (m.mountpoint / "KETANG" / "new.txt").write_text("x")
            with writable(m) as rw:
                assert "rw" in _options(rw.mountpoint)
                (rw.mountpoint / "KETANG" / "new.txt").write_text("written")
            assert "ro" in _options(m.mountpoint)
            assert (m.mountpoint / "KETANG" / "new.txt").read_text() == "written"
        finally:
            unmount(m)
        assert not is_mounted(m.mountpoint)
        assert not m.mountpoint.exists()


def test_the_kernel_or_fuse_mounts_fat32(tmp_path):
    img = make_image(tmp_path / "d.img", "vfat", 32)
    with loop(img) as dev:
        m = mount_readonly(dev, tmp_path / "media")
        try:
            kernel_vfat = "vfat" in Path("/proc/filesystems").read_text().split()
            assert m.driver == ("kernel" if kernel_vfat else "fusefat")
        finally:
            unmount(m)


def test_a_device_without_filesystem_is_refused(tmp_path):
    img = tmp_path / "blank.img"
    img.write_bytes(b"\0" * 4 * 1024 * 1024)
    with loop(img) as dev:
        with pytest.raises(DriveError, match="no filesystem"):
            mount_readonly(dev, tmp_path / "media")
    assert not (tmp_path / "media" / Path(dev).name).exists() or not is_mounted(
        tmp_path / "media" / Path(dev).name)


def test_the_devices_own_disks_are_never_mounted(tmp_path):
    img = make_image(tmp_path / "d.img", "ext4", 16)
    with loop(img) as dev:
        # A data folder that lives on this loop device makes it a protected disk.
        m = mount_readonly(dev, tmp_path / "media")
        try:
            assert Path(dev).name in protected_disks((m.mountpoint,))
            with pytest.raises(DriveError, match="never mounted"):
                check_not_system(dev, (m.mountpoint / "data",))
        finally:
            unmount(m)
    root_dev = os.stat("/").st_dev
    disks = protected_disks()
    if Path(f"/sys/dev/block/{os.major(root_dev)}:{os.minor(root_dev)}").exists():
        assert disks, "the root filesystem's disk must be protected"


def _options(mountpoint: Path) -> set[str]:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        f = line.split()
        if f[1] == str(mountpoint):
            return set(f[3].split(","))
    raise AssertionError(f"{mountpoint} is not mounted")


def test_a_device_mounted_by_someone_else_is_left_alone(tmp_path):
    img = make_image(tmp_path / "d.img", "ext4", 16)
    with loop(img) as dev:
        m = mount_readonly(dev, tmp_path / "elsewhere")
        try:
            with pytest.raises(DriveError, match="already mounted at"):
                mount_readonly(dev, tmp_path / "media")
            assert not (tmp_path / "media" / Path(dev).name).exists()
        finally:
            unmount(m)
