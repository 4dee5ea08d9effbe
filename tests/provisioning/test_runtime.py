"""A setup file applied while the device runs: which services are restarted, and the fall
back to the previous files when the access point does not come up (provisioning.runtime).

systemd and a radio cannot run here: :class:`~tests.provisioning.fakes.Systemd` records
the commands and plays hostapd's status answer. The files are the real apply's, in a temp
root.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisioning.apply import apply
from provisioning.layout import Layout
from provisioning.runtime import Services, apply_running, restart_plan

from .fakes import Systemd
from .test_apply import LAST_RESULT, first_boot_file, settings_files


def provisioned_root(tmp_path: Path) -> Path:
    """A device root (in ``tmp_path``) with a radio (wlan0), set up at first boot from its
    boot partition."""
    from content_cache.keys import generate_keypair

    publisher = generate_keypair(tmp_path / "pub", "national").public_path.read_text()
    root, boot = tmp_path / "root", tmp_path / "boot"
    (root / "var/lib/ketang").mkdir(parents=True)
    (root / "etc/ketang").mkdir(parents=True)
    (root / "etc/ketang/ketang.toml").write_text("[server]\nport = 80\n", encoding="utf-8")
    boot.mkdir()
    layout = Layout(root=root, boot=boot)
    first_boot_file(layout, publisher)
    assert apply(layout).ok
    (root / "sys/class/net/wlan0").mkdir(parents=True)    # the radio's interface
    return root


@pytest.fixture
def provisioned(tmp_path) -> Layout:
    return Layout(root=provisioned_root(tmp_path))   # later files come from a drive


def later(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "drive" / "KETANG" / "setup" / "ketang-setup.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def services(fake: Systemd) -> Services:
    return Services(run=fake, wait_s=0.2, poll_s=0.05, sleep=lambda s: None)


def test_a_new_ssid_restarts_the_access_point_and_the_lesson_server(provisioned, tmp_path):
    fake = Systemd()
    setup = later(tmp_path, '[school]\nname = "新华小学"\n[wifi]\nssid = "课堂-新华"\n')
    before = setup.read_bytes()
    out = apply_running(provisioned, setup, services(fake))
    assert out.ok, out.problems
    assert fake.calls == [["systemctl", "restart", "ketang-hostapd@wlan0.service"],
                          ["systemctl", "try-restart", "ketang-serve.service"]]
    assert out.restarted == ["ketang-hostapd@wlan0", "ketang-serve"]
    assert 'ssid2=P"课堂-新华"' in (provisioned.root / "etc/hostapd/hostapd.conf").read_text()
    assert setup.read_bytes() == before             # a drive's file is never rewritten
    recorded = json.loads((provisioned.root / LAST_RESULT).read_text())
    assert recorded["ok"] and recorded["restarted"] == out.restarted
    text = out.result_text()
    assert "the file on the drive is kept as it is" in text and "removed from" not in text


def test_nothing_to_change_restarts_nothing(provisioned, tmp_path):
    fake = Systemd()
    out = apply_running(provisioned, later(tmp_path, '[wifi]\nssid = "课堂-红星小学"\n'),
                        services(fake))
    assert out.ok and not out.applied and fake.calls == [] and out.restarted == []


def test_network_host_name_and_time_zone_each_restart_their_service(provisioned, tmp_path):
    fake = Systemd()
    out = apply_running(provisioned, later(tmp_path, (
        '[network]\naddress = "10.42.0.1/24"\n[system]\nhostname = "ketang-xinhua"\n'
        'timezone = "Asia/Urumqi"\n')), services(fake))
    assert out.ok, out.problems
    assert fake.calls == [
        ["networkctl", "reload"],                      # the device's own address moved
        ["systemctl", "restart", "ketang-dnsmasq.service"],   # so did the DHCP range
        ["hostnamectl", "--transient", "set-hostname", "ketang-xinhua"],
        ["systemctl", "try-restart", "ketang-serve.service"]]


def test_a_new_interface_stops_the_old_access_point(provisioned):
    plan = restart_plan(provisioned, ["/etc/hostapd/hostapd.conf"],
                        {"wifi.interface": "wlan0"}, {"wifi.interface": "wlan1"})
    assert [s.argv for s in plan] == [
        ("systemctl", "stop", "ketang-hostapd@wlan0.service"),
        ("systemctl", "restart", "ketang-hostapd@wlan1.service")]


def test_an_access_point_that_does_not_come_up_gets_its_previous_settings_back(
        provisioned, tmp_path):
    # The new channel is valid on paper, but this radio refuses it: hostapd stays down
    # after the first restart and comes back with the previous file.
    fake = Systemd(after_restart=lambda n: "DISABLED" if n == 1 else "ENABLED")
    before = settings_files(provisioned.root)
    setup = later(tmp_path, '[school]\nname = "新华小学"\n[wifi]\nssid = "课堂-新华"\n'
                            'channel = 11\n')
    out = apply_running(provisioned, setup, services(fake))
    assert not out.ok
    assert settings_files(provisioned.root) == before       # every file as it was
    assert [c for c in fake.calls if "ketang-hostapd@wlan0.service" in c] == [
        ["systemctl", "restart", "ketang-hostapd@wlan0.service"]] * 2
    assert fake.ap == "ENABLED"
    (problem,) = out.problems
    assert problem.setting == "wifi.channel, wifi.ssid"
    assert "DISABLED" in problem.message and "Wi-Fi is on as before" in problem.message
    recorded = json.loads((provisioned.root / LAST_RESULT).read_text())
    assert not recorded["ok"] and recorded["applied"] == {}
    assert "NOT APPLIED" in out.result_text() and "plug the drive in again" in \
        out.result_text()


def test_an_access_point_that_was_already_down_is_not_a_reason_to_fall_back(
        provisioned, tmp_path):
    # No radio (a mini-PC without Wi-Fi): hostapd never ran, so the new file stays.
    fake = Systemd(ap=None)
    out = apply_running(provisioned, later(tmp_path, '[wifi]\nssid = "课堂-新华"\n'),
                        services(fake))
    assert out.ok and 'ssid2=P"课堂-新华"' in (
        provisioned.root / "etc/hostapd/hostapd.conf").read_text()


def test_a_failed_restart_is_a_warning_and_the_settings_stay(provisioned, tmp_path):
    fake = Systemd(fail=("ketang-serve.service",))
    out = apply_running(provisioned, later(tmp_path, '[school]\nname = "新华小学"\n'),
                        services(fake))
    assert out.ok and out.applied == {"school.name": "新华小学"}
    assert out.warnings == ["重新启动失败 Restart failed: systemctl try-restart "
                            "ketang-serve.service: exit status 1 (Job failed. See "
                            "journalctl.)"]


def test_a_security_setting_later_is_refused_and_nothing_restarts(provisioned, tmp_path):
    fake = Systemd()
    before = settings_files(provisioned.root)
    out = apply_running(provisioned, later(tmp_path, '[wifi]\nssid = "课堂-新华"\n'
                                                     '[admin]\npassword = "another long one"\n'),
                        services(fake))
    assert not out.ok and fake.calls == []
    assert [p.setting for p in out.problems] == ["admin.password"]
    assert settings_files(provisioned.root) == before


def test_a_mistyped_interface_puts_the_access_point_back_on_the_old_one(provisioned,
                                                                        tmp_path):
    fake = Systemd()
    before = settings_files(provisioned.root)
    out = apply_running(provisioned, later(tmp_path, '[wifi]\ninterface = "wlan9"\n'),
                        services(fake))
    assert not out.ok and out.problems[0].setting == "wifi.interface"
    assert settings_files(provisioned.root) == before
    hostapd = [c for c in fake.calls if c[0] == "systemctl" and "ketang-hostapd" in c[2]]
    assert hostapd == [["systemctl", "stop", "ketang-hostapd@wlan0.service"],
                       # wlan9's restart is not even tried: there is no such interface
                       ["systemctl", "stop", "ketang-hostapd@wlan9.service"],
                       ["systemctl", "restart", "ketang-hostapd@wlan0.service"]]
    assert any("no such network interface" in w for w in out.warnings), out.warnings
    assert "Wi-Fi is on as before" in out.problems[0].message
