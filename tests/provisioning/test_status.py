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


# iw's own output (iw 5.19: interface.c print_iface_handler, station.c, reg.c), as a
# hostapd on a real radio leaves it; no radio exists here.
IW_INFO = """Interface wlan0
\tifindex 3
\twdev 0x1
\taddr 02:00:00:00:00:00
\tssid \\xe8\\xaf\\xbe\\xe5\\xa0\\x82-A B
\ttype AP
\twiphy 0
\tchannel 11 (2462 MHz), width: 20 MHz, center1: 2462 MHz
\ttxpower 20.00 dBm
"""
IW_STATIONS = """Station 02:00:00:00:01:00 (on wlan0)
\tinactive time:\t1200 ms
\tsignal:  \t-30 dBm
Station 02:00:00:00:02:00 (on wlan0)
\tinactive time:\t80 ms
"""


def fake_iw(calls: list, hostapd: str = "Failed to connect to hostapd - wpa_ctrl_open: "
            "Permission denied"):
    def run(args, **kw):
        calls.append(args[0])
        if args[0] == "hostapd_cli":
            return subprocess.CompletedProcess(args, 255, "", hostapd)
        out = {("dev", "wlan0", "info"): IW_INFO,
               ("dev", "wlan0", "station", "dump"): IW_STATIONS,
               ("reg", "get"): "global\ncountry KE: DFS-ETSI\n\t(2402 - 2482 @ 40), (N/A, 20)\n"}
        return subprocess.CompletedProcess(args, 0, out[tuple(args[1:])], "")
    return run


def test_without_hostapds_socket_the_kernel_reports_the_access_point(tmp_path):
    # The dashboard's server is not root: hostapd's control socket is closed to it.
    calls: list = []
    s = ap_status(root=tmp_path, run=fake_iw(calls))
    assert s["state"] == "ENABLED" and s["ssid"] == "课堂-A B" and s["channel"] == 11
    assert s["clients"] == 2 and s["country"] == "KE" and s["error"] == ""
    assert calls[0] == "hostapd_cli"        # root here: hostapd first, then the kernel


def test_not_root_asks_the_kernel_first(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert ap_status(root=tmp_path, run=fake_iw(calls))["state"] == "ENABLED"
    assert "hostapd_cli" not in calls        # no 5 s wait on a socket it cannot open


def test_a_radio_that_is_no_access_point_keeps_hostapds_reason(tmp_path):
    def run(args, **kw):
        if args[0] == "hostapd_cli":
            return subprocess.CompletedProcess(args, 255, "", "Failed to connect to "
                                               "hostapd - wpa_ctrl_open: No such file")
        if args[1:3] == ["dev", "wlan0"] and args[-1] == "info":
            return subprocess.CompletedProcess(args, 0, "Interface wlan0\n\ttype managed\n",
                                               "")
        return subprocess.CompletedProcess(args, 0, "", "")
    s = ap_status(root=tmp_path, run=run)
    assert s["state"] == "NOT RUNNING" and "wpa_ctrl_open" in s["error"]
