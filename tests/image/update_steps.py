"""Steps the amd64 update tests share (QEMU, TCG): boot image v1 ready for an update, and
reboot into a freshly installed slot until its health gate keeps it."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .test_update_amd64 import (
    DEV_KEYS,
    LESSON,
    data_fingerprint,
    post_usage_event,
    reboot,
    timed,
    trust_dev_ca,
    update_status,
    wait_booted,
)
from .vm import GuestVM


@contextmanager
def booted_v1(image: Path, workdir: Path, drives: tuple[Path, ...]) -> Iterator[
        tuple[GuestVM, str]]:
    """Image v1 booted with ``drives`` attached, serving, trusting the DEV-ONLY update CA,
    with one usage event posted; yields the guest and the data partition's fingerprint
    (lessons and usage) to compare after every step. The guest is stopped afterwards."""
    vm = GuestVM(image, workdir, extra_drives=drives)
    try:
        t = time.monotonic()
        vm.wait_for_page("/")
        timed("boot v1 to first page", t)
        trust_dev_ca(vm, (DEV_KEYS / "update-ca.pem").read_text())
        event_id = post_usage_event(vm)
        vm.shell("systemctl is-system-running --wait >/dev/null || true", timeout=600)
        before = data_fingerprint(vm)
        assert event_id in before
        yield vm, before
    finally:
        vm.stop()


def wait_blessed(vm: GuestVM, slot: str) -> None:
    """Until systemd-bless-boot has renamed ``slot``'s trial entry (the gate passed)."""
    vm.shell(f"for i in $(seq 120); do ls /boot/efi/loader/entries/ketang-{slot}.conf "
             ">/dev/null 2>&1 && break; sleep 2; done", 400)


def reboot_and_keep(vm: GuestVM, slot: str, version: str, before: str, step: str,
                    on_hang=None) -> None:
    """Reboot into ``slot`` (on trial), wait until it serves and its gate passed, then
    check it runs ``version``, the update is ``good``, a lesson is served and the data
    partition is unchanged. ``on_hang(vm)``: called before failing when it never serves."""
    t = time.monotonic()
    reboot(vm)
    try:
        wait_booted(vm, slot, timeout=1200)
    except AssertionError:
        if on_hang is not None:
            on_hang(vm)
        raise
    wait_blessed(vm, slot)
    timed(step, t)
    status = update_status(vm)
    assert status["booted_slot"] == slot and status["booted_version"] == version, status
    assert status["last_update"]["outcome"] == "good", status
    with urllib.request.urlopen(vm.url(f"/lessons/cn-basic-edu-demo/{LESSON}"),
                                timeout=60) as r:
        assert r.status == 200
    assert data_fingerprint(vm) == before
