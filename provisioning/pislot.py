"""Each root slot's kernel and initramfs on the Raspberry Pi 4's boot partition.

U-Boot's ``boot.scr`` (image-build/rauc/boot-arm64.cmd) loads ``ketang-<slot>/vmlinuz``
and ``ketang-<slot>/initrd.img`` from the FAT boot partition and skips a slot whose
``vmlinuz`` is missing. RAUC writes a slot's root (squashfs) whole; this module puts that
slot's own kernel (as an uncompressed Image, which ``booti`` takes) and initramfs beside
it, as RAUC's system handlers (image-build/rauc/system-arm64.conf, run through
``/usr/lib/ketang/boot-rw``: the partition is mounted read-only):

- ``pre-install`` (before RAUC writes anything): removes each target slot's ``vmlinuz``,
  so the slot RAUC is about to overwrite can no longer be booted with its old kernel;
- ``post-install`` (after RAUC wrote the slot *and* made it primary: RAUC runs the
  post-install handler after ``r_mark_active``): mounts the new root read-only, takes
  its one kernel and initramfs, and writes them.

Why both: RAUC has no system-side step between writing a slot and marking it primary,
so BOOT_ORDER already names the new slot while its kernel is copied. Until ``vmlinuz``
appears boot.scr skips the slot and the running one boots again; with the old
``vmlinuz`` removed beforehand, the new root is never started with the old kernel, even
if the power fails just after RAUC switched BOOT_ORDER or the copy fails.

Order of the writes (FAT has no journal; each step is durable before the next): both
files written to hidden temp names and fsynced; the old ``vmlinuz`` removed (folder
fsynced); ``initrd.img`` renamed into place; ``vmlinuz`` renamed last. A power cut
before the removal leaves the old pair, after it no ``vmlinuz`` (slot skipped) until the
last rename makes the new pair whole: boot.scr never sees a new kernel beside an old
initramfs, nor a ``vmlinuz`` beside a half-written initramfs. A slot that cannot be read
(no kernel, two kernels, no initramfs, not a file system) is refused before anything on
the boot partition changes, with a one-line error and a non-zero exit.
"""

from __future__ import annotations

import configparser
import gzip
import os
import re
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Mapping
from pathlib import Path

from .bootentries import fsync_dir, remove, rename, write_temp, writing
from .imageenv import IMAGE_ENV, read_env

BOOT = Path("/boot/firmware")
RAUC_CONF = Path("/etc/rauc/system.conf")
_SLOT = re.compile(r"^[a-z]$")


class PiSlotError(Exception):
    """A slot's kernel cannot be put on the boot partition; nothing there was changed."""


def boot_dir(image_env: Path = IMAGE_ENV) -> Path:
    """The boot partition's mount point: ``KETANG_BOOT_DIR`` in image.env."""
    return Path(read_env(image_env).get("KETANG_BOOT_DIR") or BOOT)


def targets(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(bootname, device) of each slot RAUC installs into that the bootloader boots,
    from a handler's environment (RAUC_TARGET_SLOTS, RAUC_SLOT_BOOTNAME_<n>,
    RAUC_SLOT_DEVICE_<n>)."""
    out = []
    for n in env.get("RAUC_TARGET_SLOTS", "").split():
        name = env.get(f"RAUC_SLOT_BOOTNAME_{n}", "")
        if not name:
            continue            # a slot without a bootname (none in our layout) boots nothing
        if not _SLOT.match(name):
            raise PiSlotError(f"槽名无效。RAUC slot {n} has bootname {name!r}; expected one "
                              "lower-case letter (system.conf: bootname=a or b).")
        device = env.get(f"RAUC_SLOT_DEVICE_{n}", "")
        if not device:
            raise PiSlotError(f"RAUC gave no RAUC_SLOT_DEVICE_{n} for slot {name}.")
        out.append((name, device))
    if not out:
        raise PiSlotError("RAUC 没有给出目标分区。No target root slot in RAUC_TARGET_SLOTS: "
                          "run this as RAUC's pre-install or post-install handler.")
    return out


def kernel_files(root: Path) -> tuple[Path, Path]:
    """The one kernel in a slot's /boot and its initramfs."""
    kernels = sorted(p for p in (root / "boot").glob("vmlinuz-*") if p.is_file())
    if not kernels:
        raise PiSlotError("新系统没有内核。The new root slot has no /boot/vmlinuz-*; it "
                          "cannot boot, so its kernel was not copied.")
    if len(kernels) > 1:
        names = ", ".join(p.name for p in kernels)
        raise PiSlotError(f"新系统有多个内核。The new root slot has {len(kernels)} kernels "
                          f"in /boot ({names}); build the image with exactly one.")
    kver = kernels[0].name.removeprefix("vmlinuz-")
    initrd = root / "boot" / f"initrd.img-{kver}"
    if not initrd.is_file():
        raise PiSlotError(f"新系统没有 initramfs。The new root slot has no /boot/initrd.img-"
                          f"{kver} for its kernel.")
    return kernels[0], initrd


def kernel_image(data: bytes) -> bytes:
    """The kernel as U-Boot's ``booti`` takes it: gunzipped when gzip, as it is otherwise
    (trixie's 6.12 arm64 ``vmlinuz`` is already a plain Image; boot-arm64.sh makes the
    same check for slot a at build time)."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise PiSlotError(f"新系统的内核已损坏。The new slot's kernel is not valid gzip ({e})."
                          ) from e


def read_slot(device: str) -> tuple[bytes, bytes]:
    """Mount a root slot (a block device or an image file) read-only and take its
    kernel (ready for booti) and initramfs."""
    with tempfile.TemporaryDirectory(prefix="ketang-slot-") as mnt:
        done = subprocess.run(["mount", "-o", "ro", device, mnt], capture_output=True,
                              text=True)
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["mount failed"])[-1]
            raise PiSlotError(f"无法读取新系统分区。Cannot mount the new root slot {device} "
                              f"read-only: {why}")
        try:
            kernel, initrd = kernel_files(Path(mnt))
            return kernel_image(kernel.read_bytes()), initrd.read_bytes()
        finally:
            subprocess.run(["umount", mnt], check=False, capture_output=True)


def clear(boot: Path, slot: str) -> None:
    """Make ``slot`` unbootable for boot.scr: remove its ``vmlinuz`` (durably)."""
    vmlinuz = boot / f"ketang-{slot}" / "vmlinuz"
    if vmlinuz.exists():
        with writing(boot):
            remove([vmlinuz])


def install(boot: Path, slot: str, kernel: bytes, initrd: bytes) -> None:
    """Put ``slot``'s kernel and initramfs in ``<boot>/ketang-<slot>/``, ``vmlinuz`` last
    (the order in the module's docstring)."""
    if not boot.is_dir():
        raise PiSlotError(f"{boot}: 启动分区不存在。The boot partition is not mounted there.")
    folder = boot / f"ketang-{slot}"
    with writing(boot):
        if not folder.is_dir():
            folder.mkdir()
            fsync_dir(boot)
        try:
            new_initrd = write_temp(folder / "initrd.img", initrd)
            new_kernel = write_temp(folder / "vmlinuz", kernel)
            fsync_dir(folder)
        except OSError:          # e.g. the partition is full: the old pair stays as it was
            remove([folder / ".initrd.img.tmp", folder / ".vmlinuz.tmp"])
            raise
        remove([folder / "vmlinuz"])
        rename(new_initrd, folder / "initrd.img")
        rename(new_kernel, folder / "vmlinuz")


def compatible(path: Path) -> str:
    """The ``compatible=`` of a system.conf or a bundle's manifest ('' if unreadable)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return ""
    for section in ("system", "update"):
        if parser.has_option(section, "compatible"):
            return parser.get(section, "compatible")
    return ""


def pre_install(env: Mapping[str, str], boot: Path, rauc_conf: Path = RAUC_CONF) -> str:
    """RAUC's pre-install handler: the target slots' old kernels go, unless RAUC is about
    to refuse the bundle anyway (another device's ``compatible``: then nothing changes)."""
    mine = compatible(rauc_conf)
    theirs = compatible(Path(env.get("RAUC_BUNDLE_MOUNT_POINT", "/nonexistent"))
                        / "manifest.raucm")
    slots = targets(env)
    if mine and theirs and mine != theirs:
        return f"bundle for {theirs}, not {mine}: RAUC will refuse it; nothing changed"
    for slot, _ in slots:
        clear(boot, slot)
    return "slot " + ", ".join(s for s, _ in slots) + ": old kernel removed until installed"


def post_install(env: Mapping[str, str], boot: Path) -> str:
    """RAUC's post-install handler: every target slot is read first, then written."""
    found = [(slot, *read_slot(device)) for slot, device in targets(env)]
    for slot, kernel, initrd in found:
        install(boot, slot, kernel, initrd)
    return "; ".join(f"slot {s}: kernel {len(k)} bytes, initramfs {len(i)} bytes on "
                     f"{boot}/ketang-{s}/" for s, k, i in found)


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    boot = boot_dir(Path(env.get("KETANG_IMAGE_ENV") or IMAGE_ENV))   # as boot-rw reads it
    try:
        match args:
            case ["pre-install"]:
                out = pre_install(env, boot)
            case ["post-install"]:
                out = post_install(env, boot)
            case _:
                print("usage: python3 -m provisioning.pislot pre-install|post-install "
                      "(RAUC's handlers; the slots come from RAUC's environment)",
                      file=sys.stderr)
                return 2
    except (PiSlotError, OSError) as e:
        print(f"ketang pi slot: {e}", file=sys.stderr)
        return 1
    print(f"ketang pi slot: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
