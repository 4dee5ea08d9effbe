"""RAUC's custom bootloader backend on amd64 (``/usr/lib/ketang/rauc-bootloader`` runs
``python3 -m provisioning.rauc_backend``): ``get-primary``, ``set-primary SLOT``,
``get-state SLOT``, ``set-state SLOT good|bad``, ``get-current`` on systemd-boot's loader
entries (:mod:`provisioning.bootentries`).

Kept to the standard library and :mod:`provisioning.bootentries`: RAUC calls it several
times for one ``rauc status`` and gives up after D-Bus's 25 s, and going through the whole
``ketang`` command (every command group imported) took longer than that under emulation.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
import tempfile
from pathlib import Path

from .bootentries import DEFAULT_TRIES, BootEntries, BootEntryError, current_slot, slot_kernel
from .imageenv import IMAGE_ENV, read_env

ESP = Path("/boot/efi")
RAUC_CONF = Path("/etc/rauc/system.conf")


def boot_tries(image_env: Path = IMAGE_ENV) -> int:
    """Tries of a slot on trial: ``KETANG_BOOT_TRIES`` in image.env (default 2)."""
    try:
        return int(read_env(image_env).get("KETANG_BOOT_TRIES", DEFAULT_TRIES))
    except ValueError:
        return DEFAULT_TRIES


def slot_device(rauc_conf: Path, slot: str) -> str:
    """The block device of the root slot whose bootname is ``slot``."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(rauc_conf)
    for section in parser.sections():
        if section.startswith("slot.rootfs.") and parser[section].get("bootname") == slot:
            return parser[section]["device"]
    raise BootEntryError(f"{rauc_conf}: no root slot with bootname {slot}")


def set_primary(rauc_conf: Path, entries: BootEntries, slot: str) -> None:
    """Mount ``slot``'s root (read-only), take its kernel, initramfs and version, and make
    it boot next (:meth:`BootEntries.set_primary` writes them to the ESP, entry last)."""
    with tempfile.TemporaryDirectory(prefix="ketang-slot-") as mnt:
        subprocess.run(["mount", "-o", "ro", slot_device(rauc_conf, slot), mnt], check=True)
        try:
            kernel, initrd, version = slot_kernel(Path(mnt))
        finally:
            subprocess.run(["umount", mnt], check=False)
    entries.set_primary(slot, kernel, initrd, version)


def run(args: list[str], esp: Path = ESP, rauc_conf: Path = RAUC_CONF, tries: int = 0,
        cmdline: Path = Path("/proc/cmdline")) -> str:
    """One backend call; returns what to print (RAUC reads it)."""
    entries = BootEntries(esp, tries or boot_tries())
    match args:
        case ["get-primary"]:
            return entries.primary()
        case ["get-current"]:
            return current_slot(cmdline.read_text())
        case ["get-state", slot]:
            return "bad" if entries.state(slot) in ("bad", "absent") else "good"
        case ["set-state", slot, state]:
            entries.set_state(slot, state)
            return ""
        case ["set-primary", slot]:
            set_primary(rauc_conf, entries, slot)
            return ""
    raise BootEntryError(f"unknown backend call: {' '.join(args)}")


def main(argv: list[str] | None = None) -> int:
    try:
        out = run(list(sys.argv[1:] if argv is None else argv))
    except (BootEntryError, OSError, subprocess.CalledProcessError) as e:
        print(f"ketang rauc backend: {e}", file=sys.stderr)
        return 1
    if out:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
