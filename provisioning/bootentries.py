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
- each slot's kernel and initramfs live beside the entries in ``/ketang-<slot>/``,
  copied from the slot itself when it becomes primary, under names that carry the
  entry's generation (``vmlinuz-<gen>``, ``initrd-<gen>.img``), so an entry only ever
  names files that were complete before it was written.

Writes to the ESP happen here only (:func:`writing` around each change, one place for
how the partition is made writable). Every file is a temp file, fsync, rename, fsync of
the folder (FAT has no journal), and the order makes a power cut at any moment safe:
the new kernel and initramfs first, under new names; then the entry (the one rename
that switches the boot); then the old entries of that slot and the files no entry
names any more. Whatever the cut leaves, every entry names complete files.
Why not RAUC's ``efi`` backend: it reorders the firmware's BootOrder through
efibootmgr and counts nothing, so a kernel that boots but a system that fails its
health gate would stay selected; systemd-boot's counting is in these file names.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
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


@contextlib.contextmanager
def writing(esp: Path) -> Iterator[None]:
    """Around every change to the ESP: the one place that syncs it when the change is
    done. The image mounts the ESP read-only; the callers that write (RAUC's backend,
    ``rauc-bootloader``) run under ``/usr/lib/ketang/boot-rw``, which makes it writable
    around the whole call (image-build/README.md, "The boot partition is read-only")."""
    try:
        yield
    finally:
        if esp.is_dir():
            fsync_dir(esp)


def write_temp(path: Path, data: bytes) -> Path:
    """``data`` in a hidden temp file beside ``path`` (``.<name>.tmp``), fsynced; the
    caller renames it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def write_file(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename, fsync of the folder."""
    os.replace(write_temp(path, data), path)
    fsync_dir(path.parent)


def rename(old: Path, new: Path) -> None:
    if old != new:
        os.replace(old, new)
        fsync_dir(new.parent)


def remove(paths: list[Path]) -> None:
    """Remove files (those no entry names any more) and make it durable."""
    folders = set()
    for path in paths:
        path.unlink(missing_ok=True)
        folders.add(path.parent)
    for folder in folders:
        fsync_dir(folder)


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

    def set_primary(self, slot: str, kernel: bytes | None = None, initrd: bytes | None = None,
                    version: str = "") -> Path:
        """Make ``slot`` boot next, on trial (``+tries``), above every other entry.

        ``kernel`` and ``initrd``: the slot's own (from :func:`slot_kernel`), written first
        under the new generation's names; without them the entry keeps naming the files
        of the slot's current entry (which must exist). ``version``: the slot's system
        version, for the menu title. Then the entry, then what it replaced."""
        entries = self.entries()
        own = next((e for e in entries if e.slot == slot), None)
        template = own or next((e for e in entries if e.state != "bad"), None) or \
            (entries[0] if entries else None)
        if template is None:
            raise BootEntryError(f"{self.dir}: 没有可参照的启动项。No Ketang boot entry to copy.")
        generation = max(e.generation for e in entries) + 1
        folder = self.esp / f"ketang-{slot}"
        with writing(self.esp):
            if kernel is not None and initrd is not None:
                folder.mkdir(exist_ok=True)
                files = (f"/ketang-{slot}/vmlinuz-{generation}",
                         f"/ketang-{slot}/initrd-{generation}.img")
                write_file(self.esp / files[0].lstrip("/"), kernel)
                write_file(self.esp / files[1].lstrip("/"), initrd)
            elif own is not None:
                files = boot_files(own.text)
            else:
                raise BootEntryError(f"槽 {slot} 没有内核。Slot {slot} has no kernel on the boot "
                                     "partition; install a system into it first.")
            for name in files:
                if not (self.esp / name.lstrip("/")).is_file():
                    raise BootEntryError(f"{self.esp}{name}: 启动文件缺失。The slot's boot file "
                                         "is missing; install the system into the slot again.")
            text = entry_text(template.text, template.slot, slot, generation, files, version)
            new = self.dir / f"ketang-{slot}+{self.tries}.conf"
            write_file(new, text.encode("utf-8"))
            remove([e.path for e in entries if e.slot == slot and e.path != new])
            named = {(self.esp / f.lstrip("/")).name for f in files}
            if folder.is_dir():
                remove([p for p in folder.iterdir() if p.is_file() and p.name not in named])
        return new

    def set_state(self, slot: str, state: str) -> None:
        """``good``: drop the counter (what systemd-bless-boot does); ``bad``: no tries
        left, so systemd-boot sorts it last."""
        if state not in ("good", "bad"):
            raise BootEntryError(f"unknown state {state!r} (good or bad)")
        mine = [e for e in self.entries() if e.slot == slot]
        if not mine:
            if state == "bad":
                return
            raise BootEntryError(f"槽 {slot} 没有启动项。Slot {slot} has no boot entry.")
        e = mine[0]              # the one systemd-boot would start; others are leftovers
        with writing(self.esp):
            if state == "good":
                rename(e.path, self.dir / f"ketang-{slot}.conf")
            else:
                rename(e.path, self.dir / f"ketang-{slot}+0-{e.tries_done}.conf")
            remove([x.path for x in mine[1:]])


def entry_text(template: str, from_slot: str, slot: str, generation: int,
               files: tuple[str, str] | None = None, version: str = "") -> str:
    """An entry for ``slot`` made from another slot's entry (same kernel options);
    ``files``: its kernel and initramfs on the ESP; ``version``: for the title."""
    lines = []
    seen_version = False
    for line in template.splitlines():
        key = line.split(None, 1)[0] if line.strip() else ""
        if key == "version":
            line, seen_version = f"version  {generation}", True
        elif key == "title":
            line = re.sub(r"\(slot [A-Za-z]\)", f"(slot {slot.upper()})", line)
            if version:
                line = re.sub(r"^(title\s+Ketang )\S+", rf"\g<1>{version}", line)
        elif key in ("linux", "initrd"):
            if files:
                line = f"{key:<8}{files[0] if key == 'linux' else files[1]}"
            else:
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


def boot_files(text: str) -> tuple[str, str]:
    """The kernel and initramfs an entry names (paths on the ESP)."""
    found = dict(re.findall(r"^(linux|initrd)\s+(\S+)", text, re.M))
    if "linux" not in found or "initrd" not in found:
        raise BootEntryError("启动项不完整。A Ketang boot entry names no kernel or no initramfs.")
    return found["linux"], found["initrd"]


def current_slot(cmdline: str) -> str:
    """The booted slot, from the kernel command line (``ketang.slot=``)."""
    m = re.search(r"\bketang\.slot=([a-z])\b", cmdline)
    return m.group(1) if m else ""


def slot_kernel(slot_root: Path) -> tuple[bytes, bytes, str]:
    """The newest kernel and its initramfs in a mounted root slot, and the slot's system
    version ('' when its image.env does not say)."""
    kernels = sorted((slot_root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise BootEntryError(f"{slot_root}/boot: 新系统没有内核。The new slot holds no kernel.")
    kver = kernels[-1].name.removeprefix("vmlinuz-")
    initrd = slot_root / "boot" / f"initrd.img-{kver}"
    if not initrd.is_file():
        raise BootEntryError(f"{initrd}: 新系统没有 initramfs。The new slot has no initramfs.")
    version = ""
    env = slot_root / "usr/lib/ketang/image.env"
    if env.is_file():
        m = re.search(r"^KETANG_IMAGE_VERSION=\"?([^\"\s]+)", env.read_text(errors="replace"),
                      re.M)
        version = m.group(1) if m else ""
    return kernels[-1].read_bytes(), initrd.read_bytes(), version
