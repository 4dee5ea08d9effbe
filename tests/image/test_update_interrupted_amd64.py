"""A power cut while RAUC writes the idle slot (amd64 image, QEMU TCG).

image v1 boots → v2 (the whole-OS bundle, from the build cache) is installed from a disk →
while RAUC is writing slot B, QEMU is killed (SIGKILL: nothing flushed, nothing shut
down) → the device boots slot A (v1) by itself, serves lessons, says the update was
interrupted → the next ``ketang update install`` completes → B (v2) boots on trial and
passes its gate. The lessons and usage on the data partition are the same before and
after. Kept short (one guest, no v3): the long scenario is test_update_amd64.py.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from .test_update_amd64 import (
    TIMES,
    bundle,
    data_fingerprint,
    ext4_disk,
    timed,
    update_status,
    wait_booted,
)
from .update_steps import booted_v1, reboot_and_keep
from .vm import GuestVM, build_image, require_image_tools

pytestmark = [pytest.mark.slow, pytest.mark.image]
# Cut the power once this much of the new slot has been written (the bundle's root is
# about 600 MB, so well before the end).
CUT_AFTER_BYTES = 48 * 2**20


def slot_bytes_written(vm: GuestVM, slot: str) -> int:
    """Bytes written to ``slot``'s partition since this boot (the kernel's block stats)."""
    dev = vm.shell(f"basename $(readlink -f /dev/disk/by-partlabel/ketang-root-{slot})").strip()
    return int(vm.shell(f"cat /sys/class/block/{dev}/stat").split()[6]) * 512


def diagnose_hang(vm: GuestVM, work: Path) -> None:
    """Where a guest that does not come back is stuck: the CPU, the serial console from
    the firmware on, and the boot partition as it is on the disk."""
    for _ in range(3):
        regs = vm.monitor("info registers")
        print("[hang] " + " ".join(ln for ln in regs.splitlines()
                                   if ln.startswith(("RIP", "CR0", "CS "))), flush=True)
        time.sleep(5)
    print("[hang] " + vm.monitor("info status"), flush=True)
    print("[hang] serial since the reboot:\n" + vm.serial_tail(80), flush=True)
    vm.power_cut()
    esp = vm.copy_partition("ketang-boot", work / "esp.img")
    for cmd in (["fsck.vfat", "-n", "-v", str(esp)], ["mdir", "-/", "-a", "-i", str(esp), "::"]):
        out = subprocess.run(cmd, capture_output=True, text=True)
        print(f"[hang] {' '.join(cmd)}:\n{out.stdout}{out.stderr}", flush=True)
    for name in ("loader/loader.conf", "loader/entries/*"):
        out = subprocess.run(["mtype", "-i", str(esp), f"::{name}"], capture_output=True,
                             text=True)
        print(f"[hang] {name}:\n{out.stdout}{out.stderr}", flush=True)


def test_power_cut_mid_install_keeps_the_running_slot_and_the_next_attempt_completes(
        tmp_path: Path) -> None:
    require_image_tools()
    dist = tmp_path / "dist"
    dist.mkdir()
    t = time.monotonic()
    image = build_image("amd64", dist, dist / "build.log")
    timed("make image (cached when unchanged)", t)
    t = time.monotonic()
    v2 = bundle(dist, "0.2.0", dist / "v2.log")
    timed("make update-bundle v2 (cached when unchanged)", t)
    disk = ext4_disk(tmp_path / "updates.img", {v2.name: v2}, mb=v2.stat().st_size // 2**20 + 64)

    with booted_v1(image.raw, tmp_path, (disk,)) as (vm, before):
        entries = vm.shell("ls /boot/efi/loader/entries")

        # Start the install in the background and cut the power while slot B is written.
        vm.shell("mkdir -p /mnt/u && mount -o ro /dev/vdb /mnt/u")
        vm.shell(f"nohup ketang update install /mnt/u/{v2.name} >/root/install.log 2>&1 &")
        t = time.monotonic()
        written = 0
        while written < CUT_AFTER_BYTES:
            assert time.monotonic() - t < 900, "RAUC never started writing slot B"
            time.sleep(1)
            written = slot_bytes_written(vm, "b")
        log = vm.shell("cat /root/install.log")
        assert "Installed" not in log, f"the install finished before the cut: {log}"
        timed("install started → power cut while writing slot B", t)
        print(f"[update test] slot B bytes written at the cut: {written}", flush=True)
        vm.power_cut()

        t = time.monotonic()
        vm.power_on()
        wait_booted(vm, "a")
        timed("power on → slot A (v1) serving again", t)
        vm.shell("systemctl is-system-running --wait >/dev/null || true", timeout=600)
        status = update_status(vm)
        if status["booted_slot"] != "a":          # say what RAUC says before failing
            print(vm.shell("rauc status --detailed 2>&1; ls -la /var/lib/ketang/rauc; "
                           "journalctl -b -u rauc --no-pager | tail -40", timeout=300))
        assert status["booted_slot"] == "a" and status["booted_version"] == "0.1.0", status
        assert status["next_boot"] == "a", status
        assert status["slots"]["b"]["boot"] != "good", status
        last = status["last_update"]
        assert last["version"] == "0.2.0" and last["outcome"] == "interrupted", last
        assert "Install it again" in last["reason"], last
        assert vm.shell("ls /boot/efi/loader/entries") == entries
        assert data_fingerprint(vm) == before

        # The next attempt completes, and the new slot boots and passes its gate.
        vm.shell("mkdir -p /mnt/u && mount -o ro /dev/vdb /mnt/u")
        t = time.monotonic()
        out = vm.shell(f"ketang update install /mnt/u/{v2.name} 2>&1", timeout=1800)
        timed("second attempt: v2 installed into slot B", t)
        assert "Installed 0.2.0" in out, out
        status = update_status(vm)
        assert status["next_boot"] == "b" and status["last_update"]["outcome"] == "installed"
        # The entry names the files written before it (the generation's names).
        assert vm.shell("ls /boot/efi/ketang-b").split() == ["initrd-2.img", "vmlinuz-2"]
        print(vm.shell("ls -la --time-style=full-iso /boot/efi/loader/entries /boot/efi/ketang-*;"
                       " head -50 /boot/efi/loader/entries/*", timeout=300), flush=True)
        reboot_and_keep(vm, "b", "0.2.0", before,
                        "reboot into v2 (trial) → served, gate passed, blessed",
                        on_hang=lambda vm: diagnose_hang(vm, tmp_path))
        print(f"[update test] times: {TIMES}", flush=True)
