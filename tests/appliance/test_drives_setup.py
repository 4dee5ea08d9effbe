"""A technician's drive carrying KETANG/setup/ketang-setup.toml, end to end through the
real drive watcher: a FAT32 image on a loop device, a real ``pyudev.Device`` handed to the
watcher as udev's observer would, provisioning's real apply into a temp device root.

Only systemd and the radio are stand-ins (tests/provisioning/fakes.py): they cannot run
in this container; the commands they are given are checked instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pyudev

from appliance import words
from appliance.config import DeviceSettings, DrivesSettings, Settings
from appliance.drives.mount import mount_at, unmount
from appliance.drives.watcher import DriveWatcher
from provisioning.runtime import Services, drive_setup

from ..helpers import snapshot
from ..provisioning.fakes import Systemd
from ..provisioning.test_apply import LAST_RESULT, settings_files
from ..provisioning.test_runtime import provisioned_root
from .loopdev import loop, make_image, needs_loop

pytestmark = needs_loop
SETUP = "KETANG/setup/ketang-setup.toml"
RESULT = "KETANG/setup/ketang-setup-result.txt"


@pytest.fixture
def device(tmp_path) -> Path:
    return provisioned_root(tmp_path)


def watcher_for(tmp_path: Path, root: Path, fake: Systemd | None) -> DriveWatcher:
    settings = Settings(
        device=DeviceSettings(name="红星小学", id="rs-001", data_dir=root / "var/lib/ketang"),
        drives=DrivesSettings(mount_root=tmp_path / "media",
                              status_file=tmp_path / "run" / "drives.json"),
        source=str(root / "etc/ketang/ketang.toml"))
    setup = None if fake is None else drive_setup(
        root, settings, Services(run=fake, wait_s=0.2, poll_s=0.05, sleep=lambda s: None))
    return DriveWatcher(settings, setup=setup)


def setup_drive(tmp_path: Path, text: str, name: str = "setup") -> Path:
    content = tmp_path / f"{name}-content"
    (content / "KETANG/setup").mkdir(parents=True)
    (content / SETUP).write_text(text, encoding="utf-8")
    return make_image(tmp_path / f"{name}.img", "vfat", 40, content)


def plug_in(watcher: DriveWatcher, dev: str):
    return watcher.handle_event("add", pyudev.Devices.from_device_file(pyudev.Context(), dev))


def on_drive(dev: str, tmp_path: Path) -> dict[str, bytes]:
    m = mount_at(dev, "vfat", tmp_path / "look", rw=False)
    try:
        return snapshot(m.mountpoint)
    finally:
        unmount(m)


def drive_entry(watcher: DriveWatcher, dev: str) -> dict:
    return json.loads(watcher.settings.drives.status_file.read_text())["drives"][Path(dev).name]


@pytest.mark.slow
def test_a_setup_drive_renames_the_wifi_and_the_school_and_is_left_as_it_was(
        tmp_path, device):
    text = '# for 新华小学\n[school]\nname = "新华小学"\n[wifi]\nssid = "课堂-新华"\n'
    image = setup_drive(tmp_path, text)
    fake = Systemd()
    watcher = watcher_for(tmp_path, device, fake)
    with loop(image) as dev:
        out = plug_in(watcher, dev)
        assert out.state == "done" and out.setup == "applied", out.message
        assert 'ssid2=P"课堂-新华"' in (device / "etc/hostapd/hostapd.conf").read_text()
        assert 'name = "新华小学"' in (device / "etc/ketang/ketang.toml").read_text()
        assert fake.calls == [["systemctl", "restart", "ketang-hostapd@wlan0.service"],
                              ["systemctl", "try-restart", "ketang-serve.service"]]
        # The watcher now works with the new configuration (the reports it writes name
        # the new school), its drives settings unchanged.
        assert watcher.settings.device.name == "新华小学"
        assert watcher.settings.device.data_dir == device / "var/lib/ketang"
        assert watcher.settings.drives.mount_root == tmp_path / "media"
        files = on_drive(dev, tmp_path)
        # The technician's file is exactly as it was: the stick goes to the next school.
        assert files[SETUP] == text.encode("utf-8")
        result = files[RESULT].decode("utf-8")
        assert "APPLIED" in result and "NOT APPLIED" not in result and "\r\n" in result
        assert "wifi.ssid" in result and "kept as it is" in result
        reports = [k for k in files if k.startswith("KETANG/outbox/")]
        assert len(reports) == 1 and "新华小学" in files[reports[0]].decode("utf-8")
        entry = drive_entry(watcher, dev)
        assert entry["state"] == "done" and entry["setup"] == "applied"
        assert words.drive_text(entry, words.english, banner=True) == (
            "Done: the setup file was applied; safe to remove the drive")
        recorded = json.loads((device / LAST_RESULT).read_text())
        assert recorded["ok"] and recorded["source"].endswith("ketang-setup.toml")
        assert set(recorded["applied"]) == {"school.name", "wifi.ssid"}
        # Plugged in again: nothing to change, nothing restarted.
        fake.calls.clear()
        again = plug_in(watcher, dev)
        assert again.state == "done" and again.setup == "unchanged" and fake.calls == []


@pytest.mark.slow
def test_a_broken_setup_file_or_a_security_setting_changes_nothing(tmp_path, device):
    fake = Systemd()
    watcher = watcher_for(tmp_path, device, fake)
    before = settings_files(device)
    for name, text, setting, line in (
            ("broken", '[school]\nname = "新华小学"\n[wifi]\ncountry = "XX"\n',
             "wifi.country", 4),
            ("security", '[wifi]\nssid = "课堂-新华"\n\n[admin]\npassword = "a new long one"\n',
             "admin.password", 5)):
        image = setup_drive(tmp_path, text, name)
        with loop(image) as dev:
            out = plug_in(watcher, dev)
            assert out.state == "error" and out.code == "setup", out.message
            assert settings_files(device) == before and fake.calls == []
            # One line on the dashboard and the banner: which setting, which line.
            assert "\n" not in out.message and setting in out.message
            entry = drive_entry(watcher, dev)
            banner = words.drive_text(entry, words.english, banner=True)
            assert banner == ("The setup file on the drive was not applied and nothing "
                              f"changed: check {setting} (line {line}) "
                              "(KETANG/setup/ketang-setup-result.txt says why)")
            assert f"{setting} (第 {line} 行)" in words.drive_text(entry, words.chinese)
            files = on_drive(dev, tmp_path)
            assert files[SETUP] == text.encode("utf-8")
            result = files[RESULT].decode("utf-8")
            assert "NOT APPLIED" in result and setting in result
            assert "plug the drive in again" in result
            recorded = json.loads((device / LAST_RESULT).read_text())
            assert not recorded["ok"] and recorded["problems"][0]["setting"] == setting
    refusal = recorded["problems"][0]["message"]
    assert "ketang admin password" in refusal     # the boot partition's own message


@pytest.mark.slow
def test_without_a_provisioning_root_a_setup_file_is_ignored(tmp_path, device):
    # `ketang drives insert` on a laptop (no --provision-root) never provisions it.
    image = setup_drive(tmp_path, '[school]\nname = "新华小学"\n')
    watcher = watcher_for(tmp_path, device, None)
    before = settings_files(device)
    with loop(image) as dev:
        out = plug_in(watcher, dev)
        assert out.state == "done" and out.setup == "", out.message
        assert settings_files(device) == before
        assert RESULT not in on_drive(dev, tmp_path)
