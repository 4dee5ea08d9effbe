"""The arm64 (Raspberry Pi 4) image: its boot partition checked structurally, and the
image booted under ``qemu-system-aarch64 -M virt`` (no Pi 4 model exists in QEMU here).

Building arm64 runs every package script under qemu-user emulation, so this runs only
from ``make test-image-arm64`` (KETANG_TEST_ARM64=1), not in ``make test``.
"""

from __future__ import annotations

import base64
import gzip
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


def kernel_command_line(image: BuiltImage, slot: str) -> str:
    """The command line the image's boot.scr gives slot ``slot``'s kernel, for QEMU's
    -append: its ``bootargs``, with the Pi's consoles replaced by the serial port of
    ``-M virt``."""
    script = read_boot_file(image, "boot.cmd").decode()
    line = next(ln for ln in script.splitlines() if ln.startswith("setenv bootargs "))
    args = line.split(" ", 2)[2].strip('"').replace("${ketang_slot}", slot).split()
    assert not any("${" in a for a in args), f"boot.cmd's bootargs use an unknown variable: {args}"
    return " ".join([a for a in args if not a.startswith("console=")] + ["console=ttyAMA0"])


def uboot_env(tmp_path: Path, **variables: str) -> bytes:
    """U-Boot's environment as the Pi's U-Boot saves it to uboot.env (rpi_arm64:
    CONFIG_ENV_SIZE 0x4000), made by U-Boot's own mkenvimage."""
    text = tmp_path / "env.txt"
    text.write_text("".join(f"{k}={v}\n" for k, v in variables.items()))
    out = tmp_path / "uboot.env"
    subprocess.run(["mkenvimage", "-s", "0x4000", "-o", str(out), str(text)], check=True)
    return out.read_bytes()


def health(vm: GuestVM) -> dict:
    """The health gate's last verdict, from the status file on the data partition."""
    return json.loads(vm.shell("cat /var/lib/ketang/updates/status.json"))["health"]


def test_arm64_image_boots_on_qemu_virt(image: BuiltImage, tmp_path: Path) -> None:
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd.img"
    kernel.write_bytes(read_boot_file(image, "ketang-a/vmlinuz"))
    initrd.write_bytes(read_boot_file(image, "ketang-a/initrd.img"))
    append = kernel_command_line(image, "a")
    assert "root=PARTLABEL=ketang-root-a" in append and "rauc.slot=a" in append, append
    vm = GuestVM(image.raw, tmp_path, direct_boot=(kernel, initrd, append))
    try:
        print(f"arm64 boot to first served page under TCG: {vm.wait_for_page('/'):.0f} s")
        vm.shell("systemctl is-system-running --wait >/dev/null || true")
        failed = vm.failed_units()
        assert failed == "", failed

        # The health gate ran and passed. Booted without U-Boot there is no boot counter
        # (no uboot.env): the gate says so and marks nothing.
        gate = health(vm)
        assert gate["ok"] is True and gate["slot"] == "a" and gate["trial"] is False, gate
        assert "No boot counter" in gate["boot_counter"], gate
        assert "uboot.env does not exist" in gate["boot_counter"], gate

        # Idle: nothing written to any partition for 60 seconds (invariant 4).
        written = vm.idle_writes(60)
        print(f"arm64 bytes written in 60 idle seconds: {written.get('vda', 0)}")
        assert not written, vm.idle_writes_report(written, "/boot/firmware")

        # With U-Boot's environment as the Pi's boot.scr leaves it after its first boot
        # (one try taken from slot a), the gate has RAUC's uboot backend refill a's tries:
        # fw_setenv (libubootenv) through boot-rw on the read-only boot partition.
        env = uboot_env(tmp_path, BOOT_ORDER="a b", BOOT_a_LEFT="2", BOOT_b_LEFT="3")
        vm.shell(f"echo {base64.b64encode(gzip.compress(env)).decode()} | base64 -d | gunzip"
                 " > /run/uboot.env && /usr/lib/ketang/boot-rw cp /run/uboot.env "
                 "/boot/firmware/uboot.env")
        assert vm.shell("fw_printenv -n BOOT_a_LEFT").strip() == "2"
        vm.shell("systemctl restart ketang-health")
        gate = health(vm)
        assert gate["ok"] is True and gate["boot_counter"] == "marked good", gate
        counters = vm.shell("fw_printenv BOOT_ORDER BOOT_a_LEFT BOOT_b_LEFT")
        assert counters.split() == ["BOOT_ORDER=a", "b", "BOOT_a_LEFT=3", "BOOT_b_LEFT=3"], \
            counters
        mount = vm.shell("ls /boot/firmware >/dev/null; findmnt -rn -o FSTYPE,OPTIONS "
                         "/boot/firmware | grep vfat")
        assert mount.startswith("vfat ro,"), f"the boot partition stayed writable: {mount}"
        assert vm.failed_units() == ""
    finally:
        vm.stop()
