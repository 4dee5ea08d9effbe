"""The dashboard's "Wi-Fi access point" card: the state, SSID, channel, connected devices
and, on a Raspberry Pi, the Wi-Fi firmware's client limit, from the same function
``ketang status`` prints (provisioning.status.ap_status, wired by appliance.device).

A device root set up by the real ``ketang provision --apply`` code; the dashboard through
Flask's test client. hostapd's answer and the Pi's /proc and /sys are stand-ins (no radio
and no Pi here, tests/provisioning/test_status.py).
"""

from __future__ import annotations

import subprocess

import pytest

from appliance import device as device_mod
from appliance.config import Settings
from appliance.device import Device, wifi_probe
from appliance.web.context import state
from provisioning import status as status_mod

from ..provisioning.test_status import HOSTAPD_STATUS, pi_root
from .test_admin import visible
from .test_setup_result import FIRST_BOOT, apply_text, device, logged_in  # noqa: F401


def with_clients(count: int):
    text = HOSTAPD_STATUS.replace("num_sta[0]=7", f"num_sta[0]={count}")

    def run(args, **kw):
        return subprocess.CompletedProcess(args, 0, text, "")
    return run


class Radio:
    """What hostapd_cli answers (``run``), on a Pi 4 with the stock firmware (``root``)."""

    def __init__(self, root) -> None:
        self.root = root
        self.run = with_clients(7)


@pytest.fixture
def radio(tmp_path, monkeypatch) -> Radio:
    board = Radio(pi_root(tmp_path / "pi", "cyfmac43455-sdio-standard.bin"))
    real = status_mod.ap_status
    monkeypatch.setattr(status_mod, "ap_status",
                        lambda: real(root=board.root, run=board.run))
    return board


@pytest.fixture
def pi(device, radio):  # noqa: F811
    """The provisioned device, its dashboard probing the Pi's radio."""
    assert apply_text(device, FIRST_BOOT).ok
    return device


def wifi_card(client, lang: str) -> str:
    r = client.get("/admin/status.json", headers={"Accept-Language": lang})
    return visible(r.json["sections"]["wifi"])


def test_the_dashboard_shows_the_access_point_and_the_pis_client_limit(pi):
    data = pi.host(pi.data_dir)
    client = logged_in(pi)
    app_state = state(client.application)
    app_state.wifi_status = wifi_probe(Settings().with_overrides("device", data_dir=data))
    assert app_state.wifi_status is not None
    zh, en = wifi_card(client, "zh-CN"), wifi_card(client, "en")
    assert "Wi-Fi 热点" in zh and "开启" in zh and '课堂-"A"' in zh
    assert "7 / ~8" in zh and "Raspberry Pi 4" in zh and "最多约 8 台设备" in zh
    assert "Wi-Fi access point On" in en and "Connected devices 7 / ~8" in en
    assert "admits about 8 devices at once" in en and "USB Wi-Fi adapter" in en
    assert "Wi-Fi channel 6 · CN" in en
    status = client.get("/admin/status.json").json["status"]["wifi"]
    assert status["clients"] == 7 and status["client_limit"] == 8


def test_a_full_access_point_and_one_that_is_off_say_what_to_do(pi, radio):
    client = logged_in(pi)
    radio.run = with_clients(8)
    app_state = state(client.application)
    app_state.wifi_status = wifi_probe(Settings().with_overrides(
        "device", data_dir=pi.host(pi.data_dir)), ttl=0)
    assert "The built-in Wi-Fi is full" in wifi_card(client, "en")

    def down(args, **kw):
        return subprocess.CompletedProcess(args, 255, "", "Failed to connect to hostapd - "
                                           "wpa_ctrl_open: No such file or directory")
    radio.run = down
    en, zh = wifi_card(client, "en"), wifi_card(client, "zh-CN")
    assert "Wi-Fi access point Off" in en and "not running" in en and "wifi.country" in en
    assert "wpa_ctrl_open" in en and "热点未运行" in zh


def test_the_probe_is_remembered_between_the_dashboards_polls(pi, monkeypatch):
    calls = []
    monkeypatch.setattr(status_mod, "ap_status", lambda: calls.append(1) or {"state": "x"})
    now = [100.0]
    monkeypatch.setattr(device_mod.time, "monotonic", lambda: now[0])
    probe = wifi_probe(Settings().with_overrides("device", data_dir=pi.host(pi.data_dir)))
    assert probe is not None
    probe(), probe()
    assert len(calls) == 1
    now[0] += device_mod.WIFI_STATUS_TTL_S + 1
    probe()
    assert len(calls) == 2


def test_the_device_wires_the_probe_only_on_an_access_point(device):  # noqa: F811
    settings = Settings().with_overrides("device", data_dir=device.host(device.data_dir))
    assert wifi_probe(settings) is None
    app, _ = Device(settings).build_apps()
    assert state(app).wifi_status is None
    assert apply_text(device, FIRST_BOOT).ok
    app, _ = Device(settings).build_apps()
    assert state(app).wifi_status is not None


def test_without_an_access_point_the_card_says_so(tmp_path):
    from flask import render_template

    from appliance.web.app import create_app
    from content_cache.library import Library

    app = create_app(Settings().with_overrides("device", data_dir=tmp_path), Library(tmp_path))
    with app.test_request_context(headers={"Accept-Language": "en"}):
        card = visible(render_template("admin/_wifi.html", status={"wifi": None}))
    assert "not set up as a classroom Wi-Fi access point" in card


@pytest.mark.slow
def test_the_card_in_chromium(pi, radio, browser, tmp_path):
    """The card as a technician sees it, in Chinese, in Debian's Chromium, served by
    waitress in this process (so the Pi stand-in reaches the dashboard's probe)."""
    import threading

    from waitress import create_server

    from appliance.web.app import create_app
    from content_cache.library import Library

    from ..support.screenshots import shoot
    from .test_setup_result import ADMIN

    data = pi.host(pi.data_dir)
    settings = Settings().with_overrides("device", data_dir=data)
    app = create_app(settings, Library(data))
    state(app).wifi_status = wifi_probe(settings, ttl=0)
    server = create_server(app, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.effective_port}"
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    try:
        page = context.new_page()
        page.goto(f"{base}/admin/")
        page.fill("#password", ADMIN)
        page.click("form button[type=submit]")
        page.wait_for_load_state()
        card = page.locator("#section-wifi")
        text = card.inner_text()
        assert text.startswith("Wi-Fi 热点") and "开启" in text and '课堂-"A"' in text
        assert "7 / ~8" in text and "最多约 8 台设备" in text
        # The next poll shows a full class without a reload.
        radio.run = with_clients(8)
        from playwright.sync_api import expect

        expect(card).to_contain_text("内置 Wi-Fi 已满", timeout=8000)
        shot = shoot(card, tmp_path, "wifi-card.png")
        assert shot.stat().st_size > 5000
    finally:
        context.close()
        server.close()
