"""systemd-boot entries as RAUC's boot selection: trial entries, counting, falling back.

systemd-boot itself cannot run here; :func:`boot` renames an entry the way it does
(``+LEFT-DONE``, boot_entry_bump_counters in systemd's src/boot/boot.c) and
:func:`bless` the way systemd-bless-boot does. The QEMU tests (tests/image/) boot the real
thing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioning import bootentries
from provisioning.bootentries import (
    BootEntries,
    BootEntryError,
    boot_files,
    current_slot,
    slot_kernel,
)

ENTRY_A = """title   Ketang 0.1.0 (slot A)
sort-key ketang
version 1
linux   /ketang-a/vmlinuz
initrd  /ketang-a/initrd.img
options root=PARTLABEL=ketang-root-a ketang.slot=a rauc.slot=a ro rootfstype=squashfs console=ttyS0
"""


@pytest.fixture
def esp(tmp_path) -> Path:
    d = tmp_path / "esp" / "loader" / "entries"
    d.mkdir(parents=True)
    (d / "ketang-a.conf").write_text(ENTRY_A)
    (tmp_path / "esp" / "ketang-a").mkdir()
    (tmp_path / "esp" / "ketang-a" / "vmlinuz").write_bytes(b"kernel a")
    (tmp_path / "esp" / "ketang-a" / "initrd.img").write_bytes(b"initrd a")
    return tmp_path / "esp"


def primary(e: BootEntries, slot: str, tag: str = "v2") -> None:
    """RAUC's set-primary: the slot's kernel and initramfs, then its entry."""
    e.set_primary(slot, f"kernel {tag}".encode(), f"initrd {tag}".encode(), tag)


def all_entries_name_complete_files(esp: Path) -> None:
    for entry in (esp / "loader/entries").glob("ketang-*.conf"):
        for name in boot_files(entry.read_text()):
            assert (esp / name.lstrip("/")).is_file(), (entry.name, name)


def boot(entries: BootEntries) -> str:
    """What systemd-boot does at power-on: pick the first entry, count a try."""
    first = entries.entries()[0]
    if first.tries_left is not None:
        left = max(first.tries_left - 1, 0)
        first.path.rename(first.path.with_name(
            f"ketang-{first.slot}+{left}-{first.tries_done + 1}.conf"))
    return first.slot


def bless(entries: BootEntries, slot: str) -> None:
    entries.set_state(slot, "good")


def test_set_primary_makes_a_trial_entry_that_boots_first(esp):
    e = BootEntries(esp, tries=2)
    assert e.primary() == "a" and e.state("b") == "absent"
    primary(e, "b")
    text = (esp / "loader/entries/ketang-b+2.conf").read_text()
    assert "root=PARTLABEL=ketang-root-b" in text and "rauc.slot=b" in text
    assert "ketang.slot=b" in text and "(slot B)" in text and "Ketang v2 " in text
    assert boot_files(text) == ("/ketang-b/vmlinuz-2", "/ketang-b/initrd-2.img")
    assert (esp / "ketang-b/vmlinuz-2").read_bytes() == b"kernel v2"
    assert "version  2" in text
    assert e.primary() == "b" and e.state("b") == "trial"


def test_a_good_trial_is_kept(esp):
    e = BootEntries(esp, tries=2)
    primary(e, "b")
    assert boot(e) == "b"
    bless(e, "b")
    assert e.state("b") == "good" and boot(e) == "b" and boot(e) == "b"


def test_a_failing_slot_is_abandoned_and_the_previous_one_boots_by_itself(esp):
    e = BootEntries(esp, tries=2)
    primary(e, "b")
    assert boot(e) == "b"          # try 1 fails (no bless)
    assert boot(e) == "b"          # try 2 fails
    assert e.state("b") == "bad"
    assert boot(e) == "a" and e.primary() == "a" and e.state("a") == "good"


def test_next_update_goes_to_the_other_slot_and_wins_over_the_good_one(esp):
    e = BootEntries(esp, tries=2)
    primary(e, "b")
    boot(e)
    bless(e, "b")
    primary(e, "a", "v3")                 # v3 into slot A
    assert e.primary() == "a" and e.state("a") == "trial" and e.state("b") == "good"
    boot(e)
    boot(e)                               # v3 fails twice
    assert boot(e) == "b"                 # back on v2
    assert len(list((esp / "loader/entries").glob("ketang-a*.conf"))) == 1


def test_rauc_marks_the_target_bad_before_writing(esp):
    e = BootEntries(esp, tries=2)
    primary(e, "b")
    boot(e)
    bless(e, "b")
    e.set_state("a", "bad")
    assert e.primary() == "b" and e.state("a") == "bad"
    e.set_state("c", "bad")               # no entry: nothing to do


def test_no_entries_is_a_clear_error(tmp_path):
    with pytest.raises(BootEntryError, match="No Ketang boot entries"):
        BootEntries(tmp_path).primary()


def test_current_slot_from_the_command_line():
    assert current_slot("BOOT_IMAGE=x root=PARTLABEL=ketang-root-b ketang.slot=b ro") == "b"
    assert current_slot("root=/dev/sda1") == ""


def test_kernel_taken_from_the_new_slot(tmp_path):
    slot = tmp_path / "slot"
    (slot / "boot").mkdir(parents=True)
    (slot / "boot" / "vmlinuz-6.12.1-amd64").write_bytes(b"kernel")
    (slot / "boot" / "initrd.img-6.12.1-amd64").write_bytes(b"initrd")
    (slot / "usr/lib/ketang").mkdir(parents=True)
    (slot / "usr/lib/ketang/image.env").write_text('KETANG_IMAGE_VERSION="0.2.0"\n')
    assert slot_kernel(slot) == (b"kernel", b"initrd", "0.2.0")
    (slot / "boot" / "initrd.img-6.12.1-amd64").unlink()
    with pytest.raises(BootEntryError, match="no initramfs"):
        slot_kernel(slot)


def test_each_update_writes_new_files_then_the_entry_then_drops_what_it_replaced(esp):
    e = BootEntries(esp, tries=2)
    primary(e, "b", "v2")
    boot(e)
    bless(e, "b")
    primary(e, "a", "v3")                 # A's files from the image are replaced
    assert sorted(p.name for p in (esp / "ketang-a").iterdir()) == ["initrd-3.img",
                                                                      "vmlinuz-3"]
    primary(e, "b", "v4")
    assert sorted(p.name for p in (esp / "ketang-b").iterdir()) == ["initrd-4.img",
                                                                      "vmlinuz-4"]
    assert [x.path.name for x in e.entries()] == ["ketang-b+2.conf", "ketang-a+2.conf"]
    all_entries_name_complete_files(esp)
    assert not list(esp.rglob(".*.tmp"))


@pytest.mark.parametrize("cut_at", [1, 2, 3])   # kernel, initramfs, entry
def test_a_power_cut_at_any_write_leaves_every_entry_naming_complete_files(
        esp, monkeypatch, cut_at):
    """RAUC marked B bad and wrote its slot; set-primary is cut at its n-th file: the
    boot stays on A (or the slot's old entry), and every entry names files that exist."""
    e = BootEntries(esp, tries=2)
    primary(e, "b", "v2")
    boot(e)
    bless(e, "b")                         # B good (v2), A the image's (v1)
    e.set_state("a", "bad")               # RAUC, before writing slot A (v3)
    real = bootentries.write_file
    calls = []

    def cut(path: Path, data: bytes) -> None:
        calls.append(path.name)
        if len(calls) == cut_at:
            path.with_name(f".{path.name}.tmp").write_bytes(data[: len(data) // 2])
            raise OSError("power cut")
        real(path, data)

    monkeypatch.setattr(bootentries, "write_file", cut)
    with pytest.raises(OSError, match="power cut"):
        primary(e, "a", "v3")
    monkeypatch.setattr(bootentries, "write_file", real)
    assert e.primary() == "b" and e.state("a") == "bad"
    all_entries_name_complete_files(esp)
    primary(e, "a", "v3")                 # the next attempt completes and tidies up
    assert e.primary() == "a"
    assert sorted(p.name for p in (esp / "ketang-a").iterdir()) == ["initrd-3.img",
                                                                      "vmlinuz-3"]
    assert (esp / "ketang-a/vmlinuz-3").read_bytes() == b"kernel v3"
    assert not list(esp.rglob(".*.tmp"))
    all_entries_name_complete_files(esp)


def test_leftover_entries_of_a_slot_are_removed_with_the_next_change(esp):
    """A cut between writing an entry and removing the one it replaced leaves two entries
    for one slot: the next set-state or set-primary keeps one."""
    e = BootEntries(esp, tries=2)
    primary(e, "b", "v2")
    entries = esp / "loader/entries"
    (entries / "ketang-b+0-2.conf").write_text((entries / "ketang-b+2.conf").read_text()
                                              .replace("version  2", "version  1"))
    assert e.entry("b").path.name == "ketang-b+2.conf"
    e.set_state("b", "good")
    assert sorted(p.name for p in entries.iterdir()) == ["ketang-a.conf", "ketang-b.conf"]


def test_set_primary_without_files_needs_the_slots_own(esp):
    e = BootEntries(esp, tries=2)
    with pytest.raises(BootEntryError, match="has no kernel"):
        e.set_primary("b")
    e.set_primary("a")                    # the slot's own files: a rollback by hand
    assert e.state("a") == "trial" and boot_files(e.entry("a").text)[0] == "/ketang-a/vmlinuz"
