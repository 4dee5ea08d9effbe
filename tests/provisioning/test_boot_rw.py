"""/usr/lib/ketang/boot-rw: the image's boot partition is mounted read-only, and its few
writers run under this script, which makes it writable for them only (image-build/README.md,
"The boot partition is read-only"). Exercised on a real read-only mount (a tmpfs: the
remounts are the same system calls as on the FAT partition; root only)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.needs import require

BOOT_RW = Path(__file__).parents[2] / "image-build/rootfs/usr/lib/ketang/boot-rw"


def read_only(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


@pytest.fixture
def boot(tmp_path: Path) -> Iterator[Path]:
    """A read-only mount standing for the boot partition, named by an image.env."""
    require(None if os.geteuid() == 0 else "boot-rw remounts a file system: needs root")
    mnt = tmp_path / "boot"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        (mnt / "ketang-setup.toml").write_text("[school]\n")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def run(tmp_path: Path, boot: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "image.env"
    env_file.write_text(f"KETANG_BOOT_DIR={boot}\n")
    env = {k: v for k, v in os.environ.items() if k != "KETANG_BOOT_RW"}
    env.update(KETANG_IMAGE_ENV=str(env_file), KETANG_BOOT_RW_LOCK=str(tmp_path / "lock"))
    return subprocess.run(["sh", str(BOOT_RW), *command], env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_command_writes_and_the_partition_is_read_only_again(tmp_path, boot):
    with pytest.raises(OSError):
        (boot / "result.txt").write_text("no")
    done = run(tmp_path, boot, "sh", "-c", f"echo applied > {boot}/result.txt; "
                                           f"grep -q ' {boot} tmpfs rw' /proc/mounts")
    assert done.returncode == 0, done.stderr
    assert (boot / "result.txt").read_text() == "applied\n"
    assert read_only(boot)


def test_a_failing_command_keeps_its_status_and_the_partition_is_read_only(tmp_path, boot):
    done = run(tmp_path, boot, "sh", "-c", "exit 3")
    assert done.returncode == 3
    assert read_only(boot)
    assert sorted(p.name for p in boot.iterdir()) == ["ketang-setup.toml"]


def test_a_writer_inside_another_runs_without_waiting_for_the_lock(tmp_path, boot):
    done = run(tmp_path, boot, "sh", str(BOOT_RW), "touch", str(boot / "inner"))
    assert done.returncode == 0, done.stderr
    assert (boot / "inner").exists() and read_only(boot)


def test_no_command_is_a_usage_error(tmp_path, boot):
    done = run(tmp_path, boot)
    assert done.returncode == 2 and "usage: boot-rw COMMAND" in done.stderr
    assert read_only(boot)


def test_a_missing_boot_partition_still_runs_the_command_and_says_so(tmp_path, boot):
    done = run(tmp_path, tmp_path / "gone", "echo", "ran")
    assert done.returncode == 0 and done.stdout == "ran\n"
    assert "cannot be opened" in done.stderr
