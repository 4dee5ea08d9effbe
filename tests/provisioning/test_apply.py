"""`ketang provision --apply` into a temp root: first boot, later changes, refusals, cuts."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.auth import verify_password
from appliance.config import load_settings
from content_cache.keys import generate_keypair, load_trusted_keys
from provisioning import apply as apply_mod
from provisioning.apply import apply
from provisioning.layout import Layout
from provisioning.render import wpa_psk
from provisioning.state import factory_reset
from provisioning.status import last_result

from ..helpers import snapshot

EXAMPLE = Path(__file__).parents[2] / "provisioning" / "ketang-setup.example.toml"
PASSWORD = "correct horse battery"
WIFI_KEY = "our-own-wifi-key"


@pytest.fixture
def device(tmp_path) -> Layout:
    """An empty device root (data partition mounted) and a boot partition."""
    root, boot = tmp_path / "root", tmp_path / "boot"
    (root / "var/lib/ketang").mkdir(parents=True)
    boot.mkdir()
    # The image's own ketang.toml, which provisioning edits (comments kept).
    (root / "etc/ketang").mkdir(parents=True)
    (root / "etc/ketang/ketang.toml").write_text(
        "# image defaults\n[server]\nport = 80\n\n[zeroconf]\nenabled = false\n",
        encoding="utf-8")
    return Layout(root=root, boot=boot)


@pytest.fixture
def publisher(tmp_path) -> str:
    return generate_keypair(tmp_path / "pub", "national").public_path.read_text()


def first_boot_file(layout: Layout, publisher: str) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8").replace("change-me-please", WIFI_KEY)
    text = text.replace('# password = "a few words make a good one"',
                        f'password = "{PASSWORD}"')
    text = text.replace("# update_keys = []", f"publisher_keys = ['''{publisher}''']")
    text = text.replace('# url = "https://lrs.example.edu.cn/xAPI/"',
                        'url = "https://lrs.example.edu.cn/xAPI/"\npassword = "lrs-secret"')
    path = layout.boot / "ketang-setup.toml"
    path.write_text(text, encoding="utf-8")
    return path


LAST_RESULT = "var/lib/ketang/provisioning/last-result.json"


def settings_files(root: Path) -> dict[str, bytes]:
    """Every file under the device's root but the record of the last apply."""
    return {k: v for k, v in snapshot(root).items() if k != LAST_RESULT}


def result(layout: Layout) -> str:
    return (layout.boot / "ketang-setup-result.txt").read_bytes().decode("utf-8")


def test_first_boot_applies_everything(device, publisher):
    setup = first_boot_file(device, publisher)
    out = apply(device)
    assert out is not None and out.ok and out.first_boot, out.problems
    root = device.root
    hostapd = (root / "etc/hostapd/hostapd.conf").read_text()
    assert 'ssid2=P"课堂-红星小学"' in hostapd and "country_code=CN" in hostapd
    assert f"wpa_psk={wpa_psk(WIFI_KEY, '课堂-红星小学')}" in hostapd
    assert WIFI_KEY not in hostapd
    assert (root / "etc/hostapd/hostapd.conf").stat().st_mode & 0o777 == 0o600
    dnsmasq = (root / "etc/dnsmasq.d/ketang.conf").read_text()
    assert "address=/#/192.168.4.1" in dnsmasq and "dhcp-option=114," in dnsmasq
    classroom = (root / "etc/systemd/network/10-ketang-classroom.network").read_text()
    assert "Name=wlan0" in classroom and "Address=192.168.4.1/24" in classroom
    uplink = (root / "etc/systemd/network/20-ketang-uplink.network").read_text()
    assert "Name=eth0" in uplink and "DHCP=yes" in uplink and "Bridge" not in uplink
    assert (root / "etc/hostname").read_text() == "ketang-hongxing\n"
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Asia/Shanghai"
    # The device's config is the image's file plus what was provisioned, and valid.
    config = (root / "etc/ketang/ketang.toml").read_text(encoding="utf-8")
    assert config.startswith("# image defaults")
    settings = load_settings(root / "etc/ketang/ketang.toml")
    assert settings.server.port == 80
    assert settings.device.name == "红星小学" and settings.device.id == out.device_id
    assert settings.subscriptions.stages == ["小学"]
    assert settings.usage.lrs_password == "lrs-secret"
    assert str(settings.trust.keys_dir) == "/var/lib/ketang/trust/publishers"
    data = root / "var/lib/ketang"
    assert len(load_trusted_keys(data / "trust/publishers")) == 1
    assert verify_password(data, PASSWORD)
    assert (data / "device.key").stat().st_mode & 0o777 == 0o600
    assert (data / "admin").stat().st_mode & 0o777 == 0o700
    assert (data / "provisioning/sealed.json").is_file()
    # Applied settings left the file; comments stayed; secrets are nowhere on the card.
    left = setup.read_text(encoding="utf-8")
    settings_left = [x for x in left.splitlines() if x.strip() and not x.startswith(("#", "["))]
    assert settings_left == [], settings_left
    assert PASSWORD not in left and publisher.splitlines()[1] not in left
    assert "# Copy this file to ketang-setup.toml" in left and "[wifi]" in left
    text = result(device)
    assert "APPLIED" in text and "\r\n" in text and out.device_id in text
    for secret in (PASSWORD, WIFI_KEY, "lrs-secret"):
        assert secret not in text
    assert 'wifi.ssid = "课堂-红星小学"' in text and "wifi.passphrase = (已设置 set)" in text
    last = last_result(data)
    assert last["ok"] and last["device_id"] == out.device_id
    raw = (root / LAST_RESULT).read_text(encoding="utf-8")
    for secret in (PASSWORD, WIFI_KEY, "lrs-secret"):
        assert secret not in raw


def test_applying_again_changes_nothing(device, publisher):
    first_boot_file(device, publisher)
    apply(device)
    before = settings_files(device.root)
    out = apply(device)
    assert out.ok and out.changed_files == [] and not out.applied
    assert settings_files(device.root) == before


def test_second_boot_changes_ssid_and_school_name(device, publisher):
    first_boot_file(device, publisher)
    first = apply(device)
    (device.boot / "ketang-setup.toml").write_text(
        '[school]\nname = "新华小学"\n[wifi]\nssid = "课堂-新华"\n', encoding="utf-8")
    out = apply(device)
    assert out.ok and not out.first_boot and set(out.applied) == {"school.name", "wifi.ssid"}
    hostapd = (device.root / "etc/hostapd/hostapd.conf").read_text()
    assert 'ssid2=P"课堂-新华"' in hostapd
    assert f"wpa_psk={wpa_psk(WIFI_KEY, '课堂-新华')}" in hostapd  # kept passphrase
    settings = load_settings(device.root / "etc/ketang/ketang.toml")
    assert settings.device.name == "新华小学" and settings.device.id == first.device_id
    assert "/etc/hostapd/hostapd.conf" in out.changed_files
    assert "/etc/hostname" not in out.changed_files


def test_open_network_and_back(device, publisher):
    first_boot_file(device, publisher)
    apply(device)
    conf = device.root / "etc/hostapd/hostapd.conf"
    (device.boot / "ketang-setup.toml").write_text("[wifi]\nopen = true\n", encoding="utf-8")
    assert apply(device).ok and "wpa=0" in conf.read_text()
    (device.boot / "ketang-setup.toml").write_text('[wifi]\npassphrase = "a-new-wifi-key"\n',
                                                   encoding="utf-8")
    assert apply(device).ok
    assert f"wpa_psk={wpa_psk('a-new-wifi-key', '课堂-红星小学')}" in conf.read_text()
    state = (device.root / "var/lib/ketang/provisioning/state.json").read_text()
    assert '"wifi.open": false' in state


def test_later_security_change_is_refused_and_nothing_changes(device, publisher, tmp_path):
    first_boot_file(device, publisher)
    apply(device)
    other = generate_keypair(tmp_path / "evil", "evil").public_path.read_text()
    text = f"[wifi]\nssid = \"renamed\"\n[trust]\npublisher_keys = ['''{other}''']\n"
    (device.boot / "ketang-setup.toml").write_text(text, encoding="utf-8")
    before = settings_files(device.root)
    out = apply(device)
    assert not out.ok and [p.setting for p in out.problems] == ["trust.publisher_keys"]
    assert settings_files(device.root) == before
    assert (device.boot / "ketang-setup.toml").read_text(encoding="utf-8") == text
    assert "NOT APPLIED" in result(device) and "factory reset" in result(device)
    # The same keys as installed are fine (a file applied before a power cut).
    (device.boot / "ketang-setup.toml").write_text(
        f"[trust]\npublisher_keys = ['''{publisher}''']\n[admin]\npassword = \"{PASSWORD}\"\n",
        encoding="utf-8")
    out = apply(device)
    assert out.ok and not out.applied and set(out.unchanged) == {"trust.publisher_keys",
                                                                 "admin.password"}


def test_factory_reset_lets_security_settings_in_again(device, publisher, tmp_path):
    first_boot_file(device, publisher)
    first = apply(device)
    removed = factory_reset(device)
    assert "admin.password" not in removed and "trust.publisher_keys" in removed
    data = device.root / "var/lib/ketang"
    assert not verify_password(data, PASSWORD) and not load_trusted_keys(
        data / "trust/publishers")
    new = generate_keypair(tmp_path / "new", "new").public_path.read_text()
    (device.boot / "ketang-setup.toml").write_text(
        f"[trust]\npublisher_keys = ['''{new}''']\n[admin]\npassword = \"another password\"\n",
        encoding="utf-8")
    out = apply(device)
    assert out.ok and out.first_boot and out.device_id == first.device_id   # identity kept
    assert verify_password(data, "another password")
    assert len(load_trusted_keys(data / "trust/publishers")) == 1
    assert "新" not in (device.root / "etc/hostname").read_text()   # other settings kept


def test_broken_file_leaves_the_device_as_it_was(device, publisher):
    first_boot_file(device, publisher)
    apply(device)
    before = settings_files(device.root)
    bad = '[wifi]\nssid = "ok"\nchannel = 14\n[system]\ntimezone = "Mars/Olympus"\n'
    (device.boot / "ketang-setup.toml").write_text(bad, encoding="utf-8")
    out = apply(device)
    assert not out.ok and {p.setting for p in out.problems} == {"wifi.channel",
                                                                "system.timezone"}
    assert settings_files(device.root) == before
    text = result(device)
    assert "wifi.channel (第 3 行 line 3)" in text and "system.timezone (第 5 行 line 5)" in text


def test_unprovisioned_device_with_broken_file_gets_nothing(device):
    (device.boot / "ketang-setup.toml").write_text('[wifi]\nssid = "x"\n', encoding="utf-8")
    out = apply(device)
    assert not out.ok
    assert sorted(p.relative_to(device.root).as_posix() for p in device.root.rglob("*")
                  if p.is_file()) == ["etc/ketang/ketang.toml", LAST_RESULT]
    last = last_result(device.root / "var/lib/ketang")
    assert last["ok"] is False and "wifi.country" in {p["setting"] for p in last["problems"]}


class PowerCut(BaseException):
    """The process stops here (never caught by the code under test)."""


@pytest.mark.slow
def test_a_cut_at_any_rename_applies_again_cleanly(device, publisher, monkeypatch, tmp_path):
    first_boot_file(device, publisher)
    pristine = shutil.copytree(device.root, tmp_path / "pristine", symlinks=True)
    boot_copy = shutil.copytree(device.boot, tmp_path / "boot-pristine")
    real_replace = os.replace
    cuts = 0
    while True:
        shutil.rmtree(device.root)
        shutil.copytree(pristine, device.root, symlinks=True)
        shutil.rmtree(device.boot)
        shutil.copytree(boot_copy, device.boot)
        calls = {"n": 0}

        def replace(src, dst, _limit=cuts, _calls=calls):
            if _calls["n"] == _limit:
                raise PowerCut
            _calls["n"] += 1
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
        try:
            apply(device)
            finished = True
        except PowerCut:
            finished = False
        monkeypatch.setattr(os, "replace", real_replace)
        # Next boot: the same file is applied again and the device ends up complete.
        out = apply(device)
        assert out.ok, (cuts, out.problems)
        data = device.root / "var/lib/ketang"
        assert verify_password(data, PASSWORD), cuts
        assert len(load_trusted_keys(data / "trust/publishers")) == 1, cuts
        assert 'ssid2=P"课堂-红星小学"' in (device.root / "etc/hostapd/hostapd.conf").read_text()
        assert (data / "provisioning/sealed.json").is_file()
        assert not list(device.root.rglob("*.ketang-stage"))
        assert "ssid =" not in (device.boot / "ketang-setup.toml").read_text(encoding="utf-8")
        if finished:
            break
        cuts += 1
    assert cuts > 10        # every rename of a first boot was cut once


def test_files_the_service_reads_belong_to_the_data_folders_owner(device, publisher):
    if os.geteuid() != 0:
        pytest.skip("ownership is only handed over when apply runs as root")
    data = device.root / "var/lib/ketang"
    os.chown(data, 4321, 4321)              # the service user, as the image makes it
    first_boot_file(device, publisher)
    assert apply(device).ok
    for path in (data / "admin", data / "admin/password.hash", data / "device.key",
                 data / "provisioning/last-result.json"):
        assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4321), path
    config = device.root / "etc/ketang/ketang.toml"
    assert (config.stat().st_uid, config.stat().st_gid) == (0, 4321)
    assert config.stat().st_mode & 0o777 == 0o640


def test_read_only_root_with_links_into_the_data_partition(device, publisher):
    root = device.root
    (root / "var/lib/ketang/etc").mkdir()
    (root / "etc/hostapd").mkdir(parents=True)
    os.symlink("/var/lib/ketang/etc/hostapd.conf", root / "etc/hostapd/hostapd.conf")
    os.symlink("../../var/lib/ketang/etc", root / "etc/dnsmasq.d")
    first_boot_file(device, publisher)
    assert apply(device).ok
    assert (root / "etc/hostapd/hostapd.conf").is_symlink()
    assert "ssid2=" in (root / "var/lib/ketang/etc/hostapd.conf").read_text()
    assert "dhcp-range" in (root / "var/lib/ketang/etc/ketang.conf").read_text()


def test_setup_from_a_drive_is_not_rewritten(device, publisher, tmp_path):
    drive = tmp_path / "drive"
    (drive / "KETANG/setup").mkdir(parents=True)
    first_boot_file(device, publisher).rename(drive / "KETANG/setup/ketang-setup.toml")
    before = (drive / "KETANG/setup/ketang-setup.toml").read_bytes()
    out = apply(device, [drive])
    assert out.ok and out.source.endswith("KETANG/setup/ketang-setup.toml")
    assert (drive / "KETANG/setup/ketang-setup.toml").read_bytes() == before
    assert "APPLIED" in result(device)
    assert apply(device, [drive]).ok     # plugged in again: the same keys, accepted


def test_a_read_only_boot_partition_still_applies(device, publisher, monkeypatch):
    setup = first_boot_file(device, publisher)
    before = setup.read_bytes()

    real = apply_mod.atomic_write_bytes

    def read_only(path, data, mode=0o644):
        if Path(path).parent == device.boot:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, data, mode)

    # The card's FAT partition mounted read-only (root ignores folder modes, and this
    # kernel has no vfat driver to mount one read-only for real).
    monkeypatch.setattr(apply_mod, "atomic_write_bytes", read_only)
    out = apply(device)
    monkeypatch.undo()
    assert out.ok and len(out.warnings) == 2 and setup.read_bytes() == before
    assert "Read-only file system" in out.warnings[0]
    again = apply(device)            # next boot: the same file, already in place
    assert again.ok and not again.applied and "APPLIED" in result(device)


def test_no_setup_file_and_no_data_partition(device, tmp_path):
    assert apply(device) is None
    (device.boot / "ketang-setup.toml").write_text("", encoding="utf-8")
    shutil.rmtree(device.root / "var")
    with pytest.raises(Exception, match="data partition mounted"):
        apply(device)


def test_cli_apply_and_check(device, publisher):
    setup = first_boot_file(device, publisher)
    base = [sys.executable, "-m", "appliance", "provision"]
    ok = subprocess.run(base + ["--check", str(setup)], capture_output=True, text=True)
    assert ok.returncode == 0 and "valid" in ok.stdout
    run = subprocess.run(base + ["--apply", "--boot", str(device.boot), "--root",
                                 str(device.root), "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["ok"] and doc["applied"]["admin.password"] == "(已设置 set)"
    setup.write_text('[wifi]\ncountry = "ZZ"\n', encoding="utf-8")
    bad = subprocess.run(base + ["--apply", "--boot", str(device.boot), "--root",
                                 str(device.root)], capture_output=True, text=True)
    assert bad.returncode == 1 and "wifi.country (第 2 行 line 2)" in bad.stdout
    chk = subprocess.run(base + ["--check", str(setup)], capture_output=True, text=True)
    assert chk.returncode == 1 and "ISO 3166" in chk.stderr
    no_root = subprocess.run(base + ["--apply", "--boot", str(device.boot)],
                             capture_output=True, text=True)
    assert no_root.returncode == 2 and "need --root" in no_root.stderr


def test_provisioning_does_not_import_flask():
    code = ("import sys, provisioning.apply, provisioning.cli; "
            "print('flask' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_identity_is_the_key_usage_files_are_signed_with(device, publisher):
    from appliance.usage.keys import ensure_device_key, key_paths

    first_boot_file(device, publisher)
    apply(device)
    data = device.root / "var/lib/ketang"
    assert key_paths(data)[0] == data / f"{apply_mod.DEVICE_KEY}.key"
    before = (data / "device.key").read_bytes()
    ensure_device_key(data)                  # the appliance finds it and makes none
    assert (data / "device.key").read_bytes() == before


def test_ketang_status_shows_the_access_point_and_the_last_setup_file(device, publisher):
    """Issue 16: the result of the setup file is shown where a technician looks."""
    first_boot_file(device, publisher)
    apply(device)
    data = device.root / "var/lib/ketang"
    base = [sys.executable, "-m", "appliance", "status", "--data-dir", str(data)]
    ok = subprocess.run(base, capture_output=True, text=True)
    assert "Setup file: applied" in ok.stdout, ok.stdout
    assert "access point (wlan0)" in ok.stdout   # no hostapd here: it says so, and what to do
    assert "NOT RUNNING" in ok.stdout and "journalctl -u hostapd" in ok.stdout
    assert ok.returncode == 2                     # an access point that is off is a warning
    (device.boot / "ketang-setup.toml").write_text('[wifi]\nssid = "x"\nchannel = 14\n',
                                                   encoding="utf-8")
    apply(device)
    bad = subprocess.run(base + ["--json"], capture_output=True, text=True)
    doc = json.loads(bad.stdout)
    assert doc["setup"]["ok"] is False and doc["network"]["state"] == "NOT RUNNING"
    text = subprocess.run(base, capture_output=True, text=True).stdout
    assert "Setup file: NOT applied" in text and "wifi.channel: line 3:" in text
