"""The Raspberry Pi 4 image's boot counter (image-build/rauc/boot-arm64.cmd), run by a real
U-Boot: Debian's ``u-boot-qemu`` (qemu_arm64) in ``qemu-system-aarch64 -M virt``, reading
the compiled boot.scr from a FAT boot partition on a virtio disk, as the Pi's U-Boot
reads it from the SD card.

Each "boot" sources boot.scr at U-Boot's prompt (the kernel files are stand-ins, so
``booti`` stops there and the prompt returns); between boots the test sets the variables
RAUC's ``uboot`` backend writes with ``fw_setenv`` (``BOOT_ORDER``, ``BOOT_<slot>_LEFT``
on install and on ``mark-good``). What this cannot show: the Pi's firmware starting
U-Boot, and the environment surviving a power cut (QEMU's flash under this U-Boot refuses
``saveenv``; the Pi keeps it in ``uboot.env`` on the FAT partition) — docs/updates.md.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ..support import needs
from .vm import REPO

pytestmark = [pytest.mark.slow, pytest.mark.image]
UBOOT = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")
BOOTED = re.compile(r"Ketang: booting slot ([ab]) \(tries left: a=(\d+) b=(\d+), order ([ab ]+)\)")


def boot_partition(tmp: Path, slots: str) -> Path:
    """A GPT disk whose first partition is FAT with boot.scr and ketang-<slot>/ for each
    slot in ``slots`` (stand-in kernels)."""
    cmd = tmp / "boot.cmd"
    cmd.write_text((REPO / "image-build/rauc/boot-arm64.cmd").read_text()
                   .replace("KERNEL_CMDLINE", "ro console=ttyAMA0"))
    subprocess.run(["mkimage", "-q", "-A", "arm64", "-O", "linux", "-T", "script", "-C",
                    "none", "-n", "Ketang boot", "-d", str(cmd), str(tmp / "boot.scr")],
                   check=True, capture_output=True)
    disk = tmp / f"disk-{slots}.img"
    with disk.open("wb") as f:
        f.truncate(64 * 2**20)
    subprocess.run(["sfdisk", "-q", str(disk)], input="label: gpt\nstart=2048, size=100000, "
                   "type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n", text=True, check=True)
    part = f"{disk}@@1M"
    subprocess.run(["mformat", "-i", part, "-F", "-v", "BOOT", "::"], check=True)
    subprocess.run(["mcopy", "-i", part, str(tmp / "boot.scr"), "::boot.scr"], check=True)
    stand_in = tmp / "stand-in"
    stand_in.write_bytes(b"not a kernel\n")
    for slot in slots:
        subprocess.run(["mmd", "-i", part, f"::ketang-{slot}"], check=True)
        for name in ("vmlinuz", "initrd.img"):
            subprocess.run(["mcopy", "-i", part, str(stand_in), f"::ketang-{slot}/{name}"],
                           check=True)
    return disk


class UBoot:
    """U-Boot's serial console in QEMU (no network: ``-nic none``)."""

    def __init__(self, tmp: Path, disk: Path) -> None:
        flash = tmp / "flash0.img"
        with flash.open("wb") as f:
            f.write(UBOOT.read_bytes())
            f.truncate(64 * 2**20)
        env = tmp / "flash1.img"
        with env.open("wb") as f:
            f.truncate(64 * 2**20)
        self.proc = subprocess.Popen(
            ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-m", "256",
             "-nographic", "-nic", "none", "-monitor", "none",
             "-drive", f"if=pflash,format=raw,file={flash}",
             "-drive", f"if=pflash,format=raw,file={env}",
             "-drive", f"if=virtio,format=raw,file={disk}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.marks = 0
        self.expect("Hit any key to stop autoboot", 180)
        self.send("x")
        self.run("setenv devtype virtio; setenv devnum 0")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def expect(self, text: str, timeout: float = 120) -> str:
        assert self.proc.stdout is not None
        buf, end = b"", time.monotonic() + timeout
        while time.monotonic() < end:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
                if text.encode() in buf:
                    return buf.decode(errors="replace")
        raise AssertionError(f"U-Boot never said {text!r}:\n{buf.decode(errors='replace')}")

    def run(self, line: str) -> str:
        """Run ``line`` at the prompt; what it printed (up to a marker echoed after it)."""
        self.marks += 1
        self.send(f"{line}; echo ketang-done-{self.marks}")
        return self.expect(f"\nketang-done-{self.marks}")

    def boot(self) -> tuple[str, int, int, str]:
        """One boot: load and source boot.scr; (slot, tries left a, b, order)."""
        out = self.run("load virtio 0:1 ${scriptaddr} boot.scr && source ${scriptaddr}")
        m = BOOTED.search(out)
        assert m, out
        assert f"ketang.slot={m.group(1)}" in self.run("printenv bootargs")
        return m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_the_boot_counter_keeps_a_good_slot_and_falls_back_from_a_failing_one(tmp_path):
    missing = [t for t in ("qemu-system-aarch64", "mkimage", "mcopy", "sfdisk")
               if shutil.which(t) is None] + ([] if UBOOT.exists() else [str(UBOOT)])
    needs.require(f"missing: {', '.join(missing)} (make image-deps installs them)"
                  if missing else None)
    t = time.monotonic()
    # Slot B empty (the image as flashed): it is never chosen, whatever the order says.
    uboot = UBoot(tmp_path, boot_partition(tmp_path, "a"))
    try:
        assert uboot.boot() == ("a", 2, 3, "a b")               # fresh environment
        uboot.run('setenv BOOT_ORDER "b a"; setenv BOOT_b_LEFT 3')
        assert uboot.boot()[:2] == ("a", 1)
    finally:
        uboot.stop()

    uboot = UBoot(tmp_path, boot_partition(tmp_path, "ab"))
    try:
        assert uboot.boot() == ("a", 2, 3, "a b")
        uboot.run("setenv BOOT_a_LEFT 3")                       # the gate passed: mark-good
        # v2 installed into B (RAUC: BOOT_ORDER "b a", BOOT_b_LEFT 3): B on trial ...
        uboot.run('setenv BOOT_ORDER "b a"; setenv BOOT_b_LEFT 3')
        assert uboot.boot() == ("b", 3, 2, "b a")
        uboot.run("setenv BOOT_b_LEFT 3")                       # ... passes: mark-good
        assert uboot.boot() == ("b", 3, 2, "b a")               # kept
        uboot.run("setenv BOOT_b_LEFT 3")
        # v3 installed into A and failing its gate: three tries, then B again by itself.
        uboot.run('setenv BOOT_ORDER "a b"; setenv BOOT_a_LEFT 3')
        assert [uboot.boot()[:2] for _ in range(3)] == [("a", 2), ("a", 1), ("a", 0)]
        assert uboot.boot() == ("b", 0, 2, "a b")
        assert uboot.boot() == ("b", 0, 1, "a b")
        # Nothing left anywhere (never with a working gate): both refilled, A boots.
        uboot.run("setenv BOOT_b_LEFT 0")
        out = uboot.run("load virtio 0:1 ${scriptaddr} boot.scr && source ${scriptaddr}")
        assert "No slot has tries left" in out and BOOTED.search(out).group(1) == "a"
    finally:
        uboot.stop()
    print(f"[uboot counter] two U-Boot sessions, 11 boots: {time.monotonic() - t:.1f} s")
