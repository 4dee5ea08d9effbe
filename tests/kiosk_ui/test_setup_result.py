"""The setup file's outcome, shown to people: the dashboard's "Setup file" card (applied
settings without secrets, or each problem with its setting and line) and one line on the
projector's first screen (Chinese, then English), only when there is news.

The outcome is the real one: ``ketang provision --apply``'s code applies a setup file into
a temp device root whose data folder has the sample lessons; the web app (Flask's test
client) then reads ``last-result.json`` as on the device.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from appliance.config import Settings
from appliance.web import setup_result
from appliance.web.app import create_app
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from provisioning.apply import apply
from provisioning.layout import Layout

from .test_admin import TOKEN, visible

WIFI_KEY = "our-own-wifi-key"
ADMIN = "correct horse battery"
LRS_SECRET = "lrs-secret-value"
FIRST_BOOT = f"""[school]
name = "红星小学"
id = "cn-gz-0042"

[wifi]
ssid = "课堂-红星"
passphrase = "{WIFI_KEY}"
country = "CN"

[admin]
password = "{ADMIN}"

[lrs]
url = "https://lrs.example.edu.cn/xAPI/"
password = "{LRS_SECRET}"
"""
BROKEN = '[school]\nname = "坏文件小学"\n\n[wifi]\ncountry = "XX"\nchannel = 99\n'
CJK = re.compile(r"[\u3400-\u9fff]")


@pytest.fixture
def device(tmp_path, sample_bundle, demo_keys) -> Layout:
    root, boot = tmp_path / "root", tmp_path / "boot"
    data = root / "var/lib/ketang"
    import_bundle(sample_bundle, Library(data), load_trusted_keys(demo_keys))
    boot.mkdir()
    return Layout(root=root, boot=boot)


def apply_text(device: Layout, text: str):
    (device.boot / "ketang-setup.toml").write_text(text, encoding="utf-8")
    return apply(device)


def client_for(device: Layout):
    data = device.host(device.data_dir)
    app = create_app(Settings().with_overrides("device", data_dir=data), Library(data))
    app.config["TESTING"] = True
    return app.test_client()


def logged_in(device: Layout):
    client = client_for(device)
    token = TOKEN.search(client.get("/admin/login").get_data(as_text=True)).group(1)
    r = client.post("/admin/login", data={"csrf_token": token, "password": ADMIN})
    assert r.status_code == 302, r.get_data(as_text=True)
    return client


def note_html(client, **headers) -> str:
    page = client.get("/projector", headers=headers).get_data(as_text=True)
    found = re.findall(r'<p class="setup-note[^"]*"[^>]*>.*?</p>', page, re.S)
    assert len(found) <= 1
    return found[0] if found else ""


def test_the_dashboard_shows_the_applied_settings_and_no_secret(device):
    assert apply_text(device, FIRST_BOOT).ok
    client = logged_in(device)      # with the password the setup file gave
    for headers, words in (({"Accept-Language": "zh-CN"}, ("设置文件已应用", "首次启动")),
                           ({"Accept-Language": "en"}, ("Setup file applied", "first boot"))):
        r = client.get("/admin/status.json", headers=headers)
        card = visible(r.json["sections"]["setup"])
        for w in words:
            assert w in card, (w, card)
        assert "wifi.ssid" in card and "课堂-红星" in card and "school.name" in card
        assert "wifi.passphrase (已设置 set)" in card and "lrs.password (已设置 set)" in card
        for secret in (WIFI_KEY, ADMIN, LRS_SECRET):
            assert secret not in r.get_data(as_text=True), "a secret on the dashboard"
        assert r.json["status"]["setup"]["ok"] is True
    page = client.get("/admin/").get_data(as_text=True)
    assert 'id="section-setup"' in page and "课堂-红星" in page


def test_the_dashboard_shows_each_problem_with_its_setting_and_line(device):
    assert apply_text(device, FIRST_BOOT).ok
    out = apply_text(device, BROKEN)
    assert not out.ok
    client = logged_in(device)
    card = visible(client.get("/admin/status.json", headers={"Accept-Language": "zh-CN"})
                   .json["sections"]["setup"])
    assert "未应用" in card and "设置文件未应用，设备保持原样" in card, card
    assert "wifi.country (第 5 行)" in card and "wifi.channel (第 6 行)" in card, card
    assert "ISO 3166" in card, "the problem's own message, with what to write"
    card = visible(client.get("/admin/status.json", headers={"Accept-Language": "en"})
                   .json["sections"]["setup"])
    assert "Not applied" in card and "wifi.country (line 5)" in card, card


def test_the_dashboard_says_when_no_setup_file_was_ever_applied(device):
    from appliance import auth

    auth.set_password(device.host(device.data_dir), ADMIN)
    card = visible(logged_in(device).get("/admin/status.json", headers={"Accept-Language": "en"})
                   .json["sections"]["setup"])
    assert "No setup file has been applied on this device yet" in card


def test_the_projector_says_in_one_line_that_the_setup_was_applied(device):
    assert apply_text(device, FIRST_BOOT).ok
    client = client_for(device)
    note = note_html(client)
    assert note, "no setup line on the projector's first screen"
    text = visible(note)
    zh, en = text.index("设置文件已应用"), text.index("Setup file applied")
    assert zh < en, "Chinese first, then English"
    assert 'wifi.ssid = "课堂-红星"' in text and 'school.name = "红星小学"' in text
    assert "(已设置 set)" in text or "wifi.passphrase" not in text
    for secret in (WIFI_KEY, ADMIN, LRS_SECRET):
        assert secret not in note
    assert note_html(client, **{"Accept-Language": "en"}) == note, "both languages always"


def test_the_projector_shows_a_broken_files_problems_until_it_is_fixed(device):
    assert apply_text(device, FIRST_BOOT).ok
    assert not apply_text(device, BROKEN).ok
    text = visible(note_html(client_for(device)))
    assert text.index("设置文件未应用，设备保持原样") < text.index(
        "Setup file not applied; the device is as it was"), text
    assert "wifi.country (第 5 行 / line 5)" in text and "wifi.channel (第 6 行 / line 6)" in text
    assert "ketang-setup-result.txt" in text
    # Fixed: the next apply succeeds, and the line says so instead.
    assert apply_text(device, '[school]\nname = "新华小学"\n').ok
    text = visible(note_html(client_for(device)))
    assert "设置文件已应用" in text and "新华小学" in text and "未应用" not in text


def test_the_projector_has_nothing_to_say_without_news(device, tmp_path):
    data = device.host(device.data_dir)
    assert note_html(client_for(device)) == "", "no setup file ever: no line"
    assert apply_text(device, FIRST_BOOT).ok
    done = setup_result.finished_at(setup_result.last_setup(data))
    assert done is not None and abs(done - time.time()) < 120
    # An apply before this boot (the card has no file now), or a success long ago: no line.
    assert setup_result.projector_note(data, boot_time=done + 10) is None
    assert setup_result.projector_note(data, now=done + setup_result.SUCCESS_SHOWN_S + 1,
                                       boot_time=done - 10) is None
    assert setup_result.projector_note(data, now=done + 60, boot_time=done - 10) is not None
    # A failure this boot stays however long ago it was.
    assert not apply_text(device, BROKEN).ok
    done = setup_result.finished_at(setup_result.last_setup(data))
    note = setup_result.projector_note(data, now=done + 86400, boot_time=done - 10)
    assert note is not None and note["ok"] is False


@pytest.mark.parametrize("content", [b"", b"{not json", b"[]", b'{"ok": "yes"}',
                                     json.dumps({"ok": False, "problems": "x",
                                                 "finished": "yesterday"}).encode()])
def test_a_damaged_record_shows_nothing_and_breaks_nothing(device, content):
    data = device.host(device.data_dir)
    (data / "provisioning").mkdir(parents=True, exist_ok=True)
    (data / "provisioning/last-result.json").write_bytes(content)
    client = client_for(device)
    assert client.get("/projector").status_code == 200
    assert note_html(client) == ""
    assert setup_result.projector_note(Path(data)) is None
