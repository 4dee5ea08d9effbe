"""Access point status. hostapd cannot run without a radio here, and no Raspberry Pi
firmware exists here: hostapd_cli's answer and the Pi's /proc and /sys are faked; the
'not running' case and the lease count are real."""

from __future__ import annotations

import os
import subprocess
import time

from provisioning.status import active_leases, ap_status, format_status

from .tools import require

HOSTAPD_STATUS = """state=ENABLED
phy=phy0
freq=2437
channel=6
country_code=CN
ssid[0]=\\xe8\\xaf\\xbe\\xe5\\xa0\\x82-\\"A\\"
num_sta[0]=7
bss[0]=wlan0
"""


def fake_hostapd(args, **kw):
    assert args[:2] == ["hostapd_cli", "-p"] and args[-1] == "status"
    return subprocess.CompletedProcess(args, 0, HOSTAPD_STATUS, "")


def pi_root(tmp_path, firmware: str):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    (tmp_path / "sys/class/net/wlan0/device").mkdir(parents=True)
    os.symlink("../../../../bus/sdio/drivers/brcmfmac",
               tmp_path / "sys/class/net/wlan0/device/driver")
    fw = tmp_path / "lib/firmware/cypress"
    fw.mkdir(parents=True)
    (fw / firmware).write_bytes(b"fw")
    os.symlink(firmware, fw / "cyfmac43455-sdio.bin")
    return tmp_path


def test_running_ap_on_a_pi_with_stock_firmware(tmp_path):
    root = pi_root(tmp_path, "cyfmac43455-sdio-standard.bin")
    s = ap_status(root=root, run=fake_hostapd)
    assert s["state"] == "ENABLED" and s["clients"] == 7 and s["channel"] == 6
    assert s["ssid"] == '课堂-"A"' and s["country"] == "CN"
    assert s["client_limit"] == 8 and "about 8 clients" in s["advice"]
    text = format_status(s)
    assert "clients: 7 / ~8" in text and "Raspberry Pi 4" in text


def test_minimal_firmware_admits_more(tmp_path):
    root = pi_root(tmp_path, "cyfmac43455-sdio-minimal.bin")
    assert ap_status(root=root, run=fake_hostapd)["client_limit"] == 19


def test_not_a_pi_has_no_limit(tmp_path):
    s = ap_status(root=tmp_path, run=fake_hostapd)
    assert s["client_limit"] is None and s["advice"] == "" and s["board"] == ""


def test_hostapd_not_running_is_reported_for_real(tmp_path):
    require("hostapd_cli")
    s = ap_status(root=tmp_path)        # no control socket under this root
    assert s["state"] == "NOT RUNNING" and s["clients"] is None
    assert "hostapd" in s["error"] or "wpa_ctrl" in s["error"]
    assert "wifi.country" in s["advice"]
    assert "NOT RUNNING" in format_status(s)


def test_leases_count_only_unexpired(tmp_path):
    now = time.time()
    path = tmp_path / "leases"
    path.write_text(f"{int(now) + 600} aa:bb:cc:dd:ee:01 10.0.0.20 tab1 *\n"
                    f"{int(now) - 5} aa:bb:cc:dd:ee:02 10.0.0.21 * *\n"
                    "0 aa:bb:cc:dd:ee:03 10.0.0.22 * *\n"
                    "garbage\n")
    assert active_leases(path, now) == 2
    assert active_leases(tmp_path / "missing", now) == 0
