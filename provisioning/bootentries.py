"""systemd-boot's loader entries as RAUC's boot selection (amd64), with boot counting.

RAUC's ``custom`` bootloader backend calls ``ketang update rauc-backend`` with
``get-primary``, ``set-primary SLOT``, ``get-state SLOT``, ``set-state SLOT good|bad``
and ``get-current``; this module does the work on the EFI system partition:

- one entry per root slot, ``loader/entries/ketang-<slot>.conf``; a slot on trial is
  ``ketang-<slot>+<tries>.conf``: systemd-boot counts the tries down in the file name
  (``+1-1``, ``+0-2``) and sorts an entry with no tries left after every other, so when
  a new slot keeps failing the previous one boots again by itself;
  ``systemd-bless-boot`` renames the entry to ``ketang-<slot>.conf`` once
  ``boot-complete.target`` is reached (the health gate is required by it);
- which slot boots is the entry's ``version`` line (systemd-boot puts the highest first
  among entries with the same ``sort-key``): making a slot primary gives its entry a
  generation above every other entry;
- each slot's kernel and initramfs live beside the entries (``/ketang-<slot>/``), copied
  from the slot itself when it becomes primary.

Every write is a temp file, fsync, rename, fsync of the folder (FAT has no journal).
Why not RAUC's ``efi`` backend: it reorders the firmware's BootOrder through
efibootmgr and counts nothing, so a kernel that boots but a system that fails its
health gate would stay selected; systemd-boot's counting is in these file names.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ENTRIES = Path("loader/entries")
_NAME = re.compile(r"^ketang-(?P<slot>[a-z])(?:\+(?P<left>\d+)(?:-(?P<done>\d+))?)?\.conf$")
DEFAULT_TRIES = 2


class BootEntryError(Exception):
    """The boot partition does not hold what the slots need."""


@dataclass(frozen=True)
class Entry:
    """One slot's loader entry file."""

    slot: str
    path: Path
    tries_left: int | None      # None: no counter (a good entry)
    tries_done: int
    generation: int
    text: str

    @property
    def state(self) -> str:
        """``good``, ``trial`` (tries left) or ``bad`` (no tries left)."""
        if self.tries_left is None:
            return "good"
        return "trial" if self.tries_left > 0 else "bad"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename, fsync of the folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def rename(old: Path, new: Path) -> None:
    if old != new:
        os.replace(old, new)
        fsync_dir(new.parent)


class BootEntries:
    """The Ketang entries on one EFI system partition (mounted at ``esp``)."""

    def __init__(self, esp: Path, tries: int = DEFAULT_TRIES):
        self.esp = esp
        self.tries = tries
        self.dir = esp / ENTRIES

    def entries(self) -> list[Entry]:
        """Every slot's entry, in systemd-boot's order: the one that boots first."""
        out = []
        for path in sorted(self.dir.glob("ketang-*.conf")) if self.dir.is_dir() else []:
            m = _NAME.match(path.name)
            if not m:
                continue
            text = path.read_text(encoding="utf-8")
            gen = re.search(r"^version\s+(\d+)", text, re.M)
            out.append(Entry(slot=m["slot"], path=path,
                             tries_left=int(m["left"]) if m["left"] is not None else None,
                             tries_done=int(m["done"] or 0),
                             generation=int(gen.group(1)) if gen else 0, text=text))
        out.sort(key=lambda e: (e.state == "bad", -e.generation, e.slot))
        return out

    def entry(self, slot: str) -> Entry | None:
        return next((e for e in self.entries() if e.slot == slot), None)

    def primary(self) -> str:
        """The slot systemd-boot will start next."""
        entries = self.entries()
        if not entries:
            raise BootEntryError(f"{self.dir}: 没有启动项。No Ketang boot entries on the boot "
                                 "partition.")
        return entries[0].slot

    def state(self, slot: str) -> str:
        """``good``, ``trial``, ``bad``, or ``absent`` (no entry)."""
        e = self.entry(slot)
        return e.state if e else "absent"

    def states(self) -> dict[str, str]:
        return {e.slot: e.state for e in self.entries()}

    def set_primary(self, slot: str) -> Path:
        """Make ``slot`` boot next, on trial (``+tries``), above every other entry."""
        entries = self.entries()
        template = next((e for e in entries if e.slot == slot), None) or \
            next((e for e in entries if e.state != "bad"), None) or \
            (entries[0] if entries else None)
        if template is None:
            raise BootEntryError(f"{self.dir}: 没有可参照的启动项。No Ketang boot entry to copy.")
        generation = max(e.generation for e in entries) + 1
        text = entry_text(template.text, template.slot, slot, generation)
        new = self.dir / f"ketang-{slot}+{self.tries}.conf"
        write_file(new, text.encode("utf-8"))
        for e in entries:
            if e.slot == slot and e.path != new:
                e.path.unlink()
        fsync_dir(self.dir)
        return new

    def set_state(self, slot: str, state: str) -> None:
        """``good``: drop the counter (what systemd-bless-boot does); ``bad``: no tries
        left, so systemd-boot sorts it last."""
        e = self.entry(slot)
        if e is None:
            if state == "bad":
                return
            raise BootEntryError(f"槽 {slot} 没有启动项。Slot {slot} has no boot entry.")
        if state == "good":
            rename(e.path, self.dir / f"ketang-{slot}.conf")
        elif state == "bad":
            rename(e.path, self.dir / f"ketang-{slot}+0-{e.tries_done}.conf")
        else:
            raise BootEntryError(f"unknown state {state!r} (good or bad)")


def entry_text(template: str, from_slot: str, slot: str, generation: int) -> str:
    """An entry for ``slot`` made from another slot's entry (same kernel options)."""
    lines = []
    seen_version = False
    for line in template.splitlines():
        key = line.split(None, 1)[0] if line.strip() else ""
        if key == "version":
            line, seen_version = f"version  {generation}", True
        elif key == "title":
            line = re.sub(r"\(slot [A-Za-z]\)", f"(slot {slot.upper()})", line)
        elif key in ("linux", "initrd"):
            line = line.replace(f"/ketang-{from_slot}/", f"/ketang-{slot}/")
        elif key == "options":
            line = re.sub(rf"ketang-root-{from_slot}\b", f"ketang-root-{slot}", line)
            line = re.sub(r"\b(ketang|rauc)\.slot=[a-z]\b", rf"\1.slot={slot}", line)
            if "rauc.slot=" not in line:
                line += f" rauc.slot={slot}"
        lines.append(line)
    if not seen_version:
        lines.insert(1, f"version  {generation}")
    if not any(ln.startswith("sort-key") for ln in lines):
        lines.insert(1, "sort-key ketang")
    return "\n".join(lines) + "\n"


def current_slot(cmdline: str) -> str:
    """The booted slot, from the kernel command line (``ketang.slot=``)."""
    m = re.search(r"\bketang\.slot=([a-z])\b", cmdline)
    return m.group(1) if m else ""


def copy_kernel(slot_root: Path, esp: Path, slot: str) -> None:
    """Copy the newest kernel and its initramfs from a mounted slot to ``/ketang-<slot>/``."""
    kernels = sorted((slot_root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise BootEntryError(f"{slot_root}/boot: 新系统没有内核。The new slot holds no kernel.")
    kver = kernels[-1].name.removeprefix("vmlinuz-")
    initrd = slot_root / "boot" / f"initrd.img-{kver}"
    if not initrd.is_file():
        raise BootEntryError(f"{initrd}: 新系统没有 initramfs。The new slot has no initramfs.")
    dest = esp / f"ketang-{slot}"
    dest.mkdir(exist_ok=True)
    for src, name in ((kernels[-1], "vmlinuz"), (initrd, "initrd.img")):
        write_file(dest / name, src.read_bytes())
