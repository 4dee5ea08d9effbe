"""The arm64 (Raspberry Pi 4) image: its boot partition checked structurally, and the
image booted under ``qemu-system-aarch64 -M virt`` (no Pi 4 model exists in QEMU here).

Building arm64 runs every package script under qemu-user emulation, so this runs only
from ``make test-image-arm64`` (KETANG_TEST_ARM64=1), not in ``make test``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .vm import BuiltImage, GuestVM, build_image, require_image_tools

pytestmark = [
    pytest.mark.slow,
    pytest.mark.image,
    pytest.mark.skipif(os.environ.get("KETANG_TEST_ARM64") != "1",
                       reason="arm64 image: run make test-image-arm64"),
]


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> BuiltImage:
    require_image_tools()
    for tool in ("qemu-system-aarch64", "mkimage"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} missing (make system-deps installs it)")
    dist = tmp_path_factory.mktemp("dist-arm64")
    started = time.monotonic()
    built = build_image("arm64", dist, dist / "build.log")
    print(f"make image ARCH=arm64: {time.monotonic() - started:.0f} s")
    return built


def boot_files(image: BuiltImage) -> dict[str, str]:
    """Names (upper-cased by FAT tools only if so stored) of the boot partition's root."""
    listing = subprocess.run(["mdir", "-b", "-i", f"{image.raw}@@1M", "::/"], check=True,
                             capture_output=True, text=True).stdout.split()
    return {Path(p).name.lower(): p for p in listing}


def read_boot_file(image: BuiltImage, name: str) -> bytes:
    return subprocess.run(["mtype", "-i", f"{image.raw}@@1M", f"::/{name}"], check=True,
                          capture_output=True).stdout


def test_pi4_boot_partition(image: BuiltImage) -> None:
    files = boot_files(image)
    for name in ("start4.elf", "fixup4.dat", "u-boot.bin", "bcm2711-rpi-4-b.dtb", "config.txt",
                 "boot.scr", "readme.txt", "ketang-a"):
        assert name in files, f"{name} missing from the boot partition: {sorted(files)}"
    config = read_boot_file(image, "config.txt").decode()
    assert "arm_64bit=1" in config and "kernel=u-boot.bin" in config, config
    script = read_boot_file(image, "boot.scr")
    assert b"root=PARTLABEL=ketang-root-${ketang_slot}" in script
    assert b"setenv ketang_slot a" in script
    os_list = json.loads(image.dist_file(".os_list.json").read_text())["os_list"][0]
    assert os_list["init_format"] == "none" and os_list["devices"] == ["pi4-64bit"]
    assert os_list["url"].startswith("file://")
    sums = dict(reversed(line.split()) for line in image.dist_file(".sha256").read_text()
                .splitlines())
    assert os_list["extract_sha256"] == sums[f"{image.name}.img"]
    assert os_list["image_download_sha256"] == sums[f"{image.name}.img.zst"]


def test_arm64_image_boots_on_qemu_virt(image: BuiltImage, tmp_path: Path) -> None:
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd.img"
    kernel.write_bytes(read_boot_file(image, "ketang-a/vmlinuz"))
    initrd.write_bytes(read_boot_file(image, "ketang-a/initrd.img"))
    append = "root=PARTLABEL=ketang-root-a ketang.slot=a ro rootfstype=squashfs console=ttyAMA0"
    vm = GuestVM(image.raw, tmp_path, direct_boot=(kernel, initrd, append))
    try:
        print(f"arm64 boot to first served page under TCG: {vm.wait_for_page('/'):.0f} s")
        vm.shell("systemctl is-system-running --wait >/dev/null || true")
        failed = vm.failed_units()
        assert failed == "", failed
    finally:
        vm.stop()
