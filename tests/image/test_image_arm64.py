"""The arm64 (Raspberry Pi 4) image: its boot partition checked structurally, the
image booted under ``qemu-system-aarch64 -M virt`` (no Pi 4 model exists in QEMU here),
and a whole-OS update installed into slot b and booted from the kernel it put on the
boot partition.

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

from .test_update_amd64 import DEV_KEYS, bundle, ext4_disk, timed, trust_dev_ca, update_status
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
    sums = {name: digest for digest, name in (line.split() for line in
                                               image.dist_file(".sha256").read_text()
                                               .splitlines())}
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


def boot_file(disk: Path, name: str, dest: Path) -> Path:
    """A file of the boot partition (partition 1, at 1 MiB) of a raw disk image."""
    subprocess.run(["mcopy", "-n", "-i", f"{disk}@@1M", f"::/{name}", str(dest)], check=True)
    return dest


def boot_slot(disk: Path, slot: str, image: BuiltImage, workdir: Path) -> GuestVM:
    """Boot ``disk`` with ``slot``'s kernel and initramfs from its boot partition and the
    command line boot.scr gives that slot."""
    workdir.mkdir(exist_ok=True)
    kernel = boot_file(disk, f"ketang-{slot}/vmlinuz", workdir / "vmlinuz")
    initrd = boot_file(disk, f"ketang-{slot}/initrd.img", workdir / "initrd.img")
    return GuestVM(disk, workdir, direct_boot=(kernel, initrd,
                                               kernel_command_line(image, slot)))


def test_an_installed_update_puts_slot_b_kernel_on_the_boot_partition_and_boots(
        image: BuiltImage, tmp_path: Path) -> None:
    """A whole-OS update on the Pi image. U-Boot does not run here (no Pi 4 in QEMU;
    test_uboot_counter.py runs the same boot.scr in a real U-Boot): the guest holds U-Boot's
    environment as boot.scr leaves it, and QEMU is given the kernel boot.scr would load.
    v1 boots from slot a → ``ketang update install`` of a drive's 0.2.0 bundle → RAUC's
    handlers put slot b's own kernel (gunzipped) and initramfs in ``ketang-b/`` on the
    read-only boot partition and RAUC's uboot backend puts b first in BOOT_ORDER → powered
    off; the disk's ``ketang-b/vmlinuz`` and ``initrd.img`` boot slot b (0.2.0), whose
    health gate passes and marks b good."""
    t = time.monotonic()
    v2 = bundle(image.dist, "0.2.0", tmp_path / "v2.log", arch="arm64")
    timed("make update-bundle ARCH=arm64 v2 (whole OS)", t)
    usb = ext4_disk(tmp_path / "usb.img", {v2.name: v2}, mb=v2.stat().st_size // 2**20 + 64)

    first = tmp_path / "v1"
    first.mkdir()
    kernel = boot_file(image.raw, "ketang-a/vmlinuz", first / "vmlinuz")
    initrd = boot_file(image.raw, "ketang-a/initrd.img", first / "initrd.img")
    vm = GuestVM(image.raw, first, extra_drives=(usb,),
                 direct_boot=(kernel, initrd, kernel_command_line(image, "a")))
    try:
        t = time.monotonic()
        vm.wait_for_page("/")
        timed("arm64 v1 to first page", t)
        trust_dev_ca(vm, (DEV_KEYS / "update-ca.pem").read_text())
        env = uboot_env(tmp_path, BOOT_ORDER="a b", BOOT_a_LEFT="2", BOOT_b_LEFT="3")
        vm.shell(f"echo {base64.b64encode(gzip.compress(env)).decode()} | base64 -d | gunzip"
                 " > /run/uboot.env && /usr/lib/ketang/boot-rw cp /run/uboot.env "
                 "/boot/firmware/uboot.env")
        vm.shell("systemctl is-system-running --wait >/dev/null || true", timeout=600)

        t = time.monotonic()
        out = vm.shell(f"mkdir -p /mnt/usb && mount -o ro /dev/vdb /mnt/usb && "
                       f"ketang update install /mnt/usb/{v2.name} 2>&1; echo rc=$?",
                       timeout=1800)
        timed("ketang update install (arm64, whole OS, with the kernel copy)", t)
        assert "rc=0" in out, out
        log = vm.shell("journalctl -b -u rauc --no-pager | grep -i 'pi slot\\|handler' || true")
        assert "slot b: kernel" in log, log
        # Slot b's kernel (gunzipped if gzip) and its initramfs are on the boot partition.
        sums = vm.shell(
            "mkdir -p /mnt/b && mount -o ro /dev/disk/by-partlabel/ketang-root-b /mnt/b && "
            "zcat -f /mnt/b/boot/vmlinuz-* | sha256sum | cut -c1-64 && "
            "cat /mnt/b/boot/initrd.img-* | sha256sum | cut -c1-64 && "
            "sha256sum < /boot/firmware/ketang-b/vmlinuz | cut -c1-64 && "
            "sha256sum < /boot/firmware/ketang-b/initrd.img | cut -c1-64 && umount /mnt/b"
        ).split()
        assert len(sums) == 4 and sums[:2] == sums[2:], sums
        order = vm.shell("fw_printenv -n BOOT_ORDER").strip()
        assert order == "b a", order
        mount = vm.shell("findmnt -rn -o FSTYPE,OPTIONS /boot/firmware | grep vfat")
        assert mount.startswith("vfat ro,"), f"the boot partition stayed writable: {mount}"
        vm.shell("sync; systemctl poweroff || true", timeout=60)
        vm.proc.wait(timeout=300)
    finally:
        vm.stop()

    # The guest's disk as it was left: boot slot b the way boot.scr would.
    disk = tmp_path / "after.img"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(first / "disk.qcow2"), str(disk)],
                   check=True)
    vm = boot_slot(disk, "b", image, tmp_path / "v2")
    try:
        t = time.monotonic()
        vm.wait_for_page("/")
        timed("arm64 slot b (v2) to first page", t)
        status = update_status(vm)
        assert status["booted_slot"] == "b" and status["booted_version"] == "0.2.0", status
        vm.shell("systemctl is-system-running --wait >/dev/null || true", timeout=600)
        gate = health(vm)
        assert gate["ok"] is True and gate["slot"] == "b", gate
        assert gate["boot_counter"] == "marked good", gate
        assert vm.shell("fw_printenv -n BOOT_b_LEFT").strip() == "3"
        assert vm.failed_units() == ""
    finally:
        vm.stop()
