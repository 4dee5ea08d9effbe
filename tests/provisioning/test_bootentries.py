"""systemd-boot entries as RAUC's boot selection: trial entries, counting, falling back.

systemd-boot itself cannot run here; :func:`boot` renames an entry the way it does
(``+LEFT-DONE``, boot_entry_bump_counters in systemd's src/boot/boot.c) and
:func:`bless` the way systemd-bless-boot does. The QEMU tests (tests/image/) boot the real
thing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioning.bootentries import BootEntries, BootEntryError, copy_kernel, current_slot

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
    return tmp_path / "esp"


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
    e.set_primary("b")
    text = (esp / "loader/entries/ketang-b+2.conf").read_text()
    assert "root=PARTLABEL=ketang-root-b" in text and "rauc.slot=b" in text
    assert "ketang.slot=b" in text and "/ketang-b/vmlinuz" in text and "(slot B)" in text
    assert "version  2" in text
    assert e.primary() == "b" and e.state("b") == "trial"


def test_a_good_trial_is_kept(esp):
    e = BootEntries(esp, tries=2)
    e.set_primary("b")
    assert boot(e) == "b"
    bless(e, "b")
    assert e.state("b") == "good" and boot(e) == "b" and boot(e) == "b"


def test_a_failing_slot_is_abandoned_and_the_previous_one_boots_by_itself(esp):
    e = BootEntries(esp, tries=2)
    e.set_primary("b")
    assert boot(e) == "b"          # try 1 fails (no bless)
    assert boot(e) == "b"          # try 2 fails
    assert e.state("b") == "bad"
    assert boot(e) == "a" and e.primary() == "a" and e.state("a") == "good"


def test_next_update_goes_to_the_other_slot_and_wins_over_the_good_one(esp):
    e = BootEntries(esp, tries=2)
    e.set_primary("b")
    boot(e)
    bless(e, "b")
    e.set_primary("a")                    # v3 into slot A
    assert e.primary() == "a" and e.state("a") == "trial" and e.state("b") == "good"
    boot(e)
    boot(e)                               # v3 fails twice
    assert boot(e) == "b"                 # back on v2
    assert len(list((esp / "loader/entries").glob("ketang-a*.conf"))) == 1


def test_rauc_marks_the_target_bad_before_writing(esp):
    e = BootEntries(esp, tries=2)
    e.set_primary("b")
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


def test_kernel_copied_from_the_new_slot(tmp_path, esp):
    slot = tmp_path / "slot"
    (slot / "boot").mkdir(parents=True)
    (slot / "boot" / "vmlinuz-6.12.1-amd64").write_bytes(b"kernel")
    (slot / "boot" / "initrd.img-6.12.1-amd64").write_bytes(b"initrd")
    copy_kernel(slot, esp, "b")
    assert (esp / "ketang-b" / "vmlinuz").read_bytes() == b"kernel"
    assert (esp / "ketang-b" / "initrd.img").read_bytes() == b"initrd"
    (slot / "boot" / "initrd.img-6.12.1-amd64").unlink()
    with pytest.raises(BootEntryError, match="no initramfs"):
        copy_kernel(slot, esp, "b")
