"""Every rendered config is checked by the tool that reads it: dnsmasq --test, hostapd's
own parser (there is no radio here: hostapd must get past its configuration and stop at
the driver)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioning.render import dhcp_range, dnsmasq_conf, hostapd_conf, ketang_toml, wpa_psk
from provisioning.schema import BY_NAME, Invalid

from .tools import require

BASE = {"school.name": "红星小学", "wifi.ssid": "课堂-红星小学", "wifi.country": "CN",
        "wifi.passphrase": "change-me-please"}


def hostapd_parse(conf: str, tmp_path: Path) -> str:
    """Run hostapd on ``conf``; return its output, failing when the config is refused."""
    require("hostapd")
    path = tmp_path / "hostapd.conf"
    path.write_text(conf.replace("ctrl_interface=/run/hostapd",
                                 f"ctrl_interface={tmp_path / 'ctrl'}"), encoding="utf-8")
    run = subprocess.run(["hostapd", "-dd", str(path)], capture_output=True, text=True,
                         timeout=20)
    return run.stdout + run.stderr


def parsed(output: str) -> bool:
    """True when hostapd accepted its configuration and went on to start the interface."""
    return ("errors found in configuration file" not in output
            and "Failed to set up interface" not in output
            and "interface state UNINITIALIZED->" in output)


def test_hostapd_accepts_the_rendered_config(tmp_path):
    out = hostapd_parse(hostapd_conf(BASE), tmp_path)
    assert parsed(out), out
    # The same check does catch a config hostapd refuses.
    broken = hostapd_conf(BASE).replace("hw_mode=g", "hw_mode=q")
    assert not parsed(hostapd_parse(broken, tmp_path))


@pytest.mark.parametrize("extra", [
    {"wifi.open": True, "wifi.passphrase": None},
    {"wifi.band": "5", "wifi.channel": 149},
    {"wifi.ssid": 'a"b\\c #; =x'},
    {"wifi.ssid": "课堂课堂课堂课堂课堂", "wifi.passphrase": " spaces  at both ends "},
])
def test_hostapd_accepts_every_variant(extra, tmp_path):
    values = {k: v for k, v in {**BASE, **extra}.items() if v is not None}
    out = hostapd_parse(hostapd_conf(values), tmp_path)
    assert parsed(out), out
    if "wifi.passphrase" not in values:
        assert "wpa=0" in hostapd_conf(values)


def test_wpa_psk_matches_the_ieee_test_vector():
    # IEEE 802.11i-2004, annex H.4: passphrase "password", SSID "IEEE".
    assert wpa_psk("password", "IEEE") == (
        "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e")


_ssids = st.text(min_size=1, max_size=32).filter(lambda s: _ok("wifi.ssid", s))
_phrases = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                   min_size=8, max_size=63)


def _ok(name: str, value: object) -> bool:
    try:
        BY_NAME[name].check(value)
    except Invalid:
        return False
    return True


@settings(max_examples=25, deadline=None)
@given(_ssids, _phrases)
def test_any_valid_ssid_and_passphrase_pass_hostapd(tmp_path_factory, ssid, phrase):
    tmp = tmp_path_factory.mktemp("hostapd")
    out = hostapd_parse(hostapd_conf({**BASE, "wifi.ssid": ssid, "wifi.passphrase": phrase}),
                        tmp)
    assert parsed(out), (ssid, out)


@pytest.mark.parametrize("address", ["192.168.4.1/24", "10.42.0.1/16", "172.16.9.5/28"])
def test_dnsmasq_accepts_the_rendered_config(address, tmp_path):
    require("dnsmasq")
    path = tmp_path / "dnsmasq.conf"
    path.write_text(dnsmasq_conf({**BASE, "network.address": address}), encoding="utf-8")
    run = subprocess.run(["dnsmasq", "--test", "-C", str(path)], capture_output=True,
                         text=True, timeout=20)
    assert run.returncode == 0 and "syntax check OK" in run.stderr, run.stderr
    first, last = dhcp_range(__import__("ipaddress").IPv4Interface(address))
    assert f"dhcp-range={first},{last}," in path.read_text()
    # A broken line is caught by the same check.
    path.write_text(path.read_text() + "dhcp-range=nonsense\n", encoding="utf-8")
    bad = subprocess.run(["dnsmasq", "--test", "-C", str(path)], capture_output=True,
                         text=True, timeout=20)
    assert bad.returncode != 0


def test_device_config_is_read_by_the_appliance(tmp_path):
    from appliance.config import load_settings

    values = {**BASE, "sync.feeds": ["https://mirror.example.edu.cn/ketang/"],
              "sync.windows": ["01:00-06:00"], "sync.daily_quota_mb": 2000,
              "lrs.url": "https://lrs.example.edu.cn/xAPI/", "lrs.username": "s42",
              "school.homepage": "https://hongxing.example.edu.cn/",
              "subscriptions.subjects": ["数学"]}
    path = tmp_path / "ketang.toml"
    path.write_text(ketang_toml("", values, {"id": "abc", "data_dir": "/var/lib/ketang",
                                             "keys_dir": ""}), encoding="utf-8")
    s = load_settings(path)
    assert s.sync.enabled and s.sync.feeds == values["sync.feeds"]
    assert s.sync.windows == ["01:00-06:00"] and s.sync.daily_quota_mb == 2000
    assert s.sync.uplink_interfaces == ["eth0"]
    assert s.usage.lrs_url == values["lrs.url"] and s.usage.lrs_username == "s42"
    assert s.usage.school_homepage == values["school.homepage"]
    assert s.subscriptions.subjects == ["数学"] and s.device.id == "abc"
    assert s.projector.join_url == "http://ketang.lan"
