"""The projector view without a browser: who may set the follow state, the SSE answers,
the recent-lessons file, the drive banner, 404 pages, the join address and the kiosk
launcher (docs/projector.md)."""

from __future__ import annotations

import html
import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

import psutil
import pytest

from appliance.config import load_settings
from appliance.web.app import create_app
from appliance.web.follow import FollowError, is_projector, parse_state
from appliance.web.projector_recent import FILE_NAME
from content_cache.library import Library

from ..helpers import snapshot
from ..support.needs import require

ROOT = Path(__file__).resolve().parents[2]
KIOSK = ROOT / "kiosk_ui" / "kiosk" / "ketang-kiosk"
UNIT = ROOT / "kiosk_ui" / "kiosk" / "ketang-kiosk.service"
CH = "cn-basic-edu-demo"
LESSON = "primary-g1-chinese-tongbian-v1-u1-l1"
LESSON2 = "primary-g1-chinese-tongbian-v1-u1-l2"
LAN = {"REMOTE_ADDR": "192.168.1.23"}
ZH = {"Accept-Language": "zh-CN"}


def make_client(config: Path, extra: str = ""):
    if extra:
        with open(config, "a", encoding="utf-8") as f:
            f.write("\n" + extra + "\n")
    settings = load_settings(config)
    app = create_app(settings, Library(settings.device.data_dir))
    return app.test_client(), settings


@pytest.fixture
def client(sample_device, tmp_path):
    c, settings = make_client(sample_device, f'[drives]\nstatus_file = "{tmp_path}/drives.json"\n'
                              '[projector]\ntoken = "s3cret-projector-token"')
    c.settings = settings
    c.status_file = tmp_path / "drives.json"
    return c


def csrf_of(client, **kw) -> str:
    """The CSRF token a projector lesson page gives this client (its session)."""
    page = client.get(f"/projector/lesson/{CH}/{LESSON}", **kw).get_data(as_text=True)
    return re.search(r'data-csrf="([^"]+)"', page).group(1)


def post_state(client, doc, csrf: bool = True, **kw):
    headers = dict(kw.pop("headers", {}))
    if csrf:
        headers["X-CSRFToken"] = csrf_of(client, environ_overrides=kw.get("environ_overrides"))
    return client.post("/projector/follow", data=json.dumps(doc),
                       content_type="application/json", headers=headers, **kw)


STATE = {"channel": CH, "lesson": LESSON, "part": 1, "page": 2,
         "resource": LESSON + "-pdf", "kind": "pdf"}


def test_only_the_projector_sets_the_follow_state_tablets_only_read_it(client):
    before = client.get("/projector/follow/state").get_json()["state"]
    for kw in ({"environ_overrides": LAN},
               {"environ_overrides": LAN, "headers": {"X-Ketang-Projector-Token": "guess"}},
               {"environ_overrides": {"REMOTE_ADDR": "10.0.0.8"}}):
        r = post_state(client, STATE, **kw)
        assert r.status_code == 403
        assert "only the projector" in r.get_json()["error"]
        assert client.get("/projector/follow/state").get_json()["state"] == before
    # The device's own kiosk browser (loopback, v4 or v6) may.
    r = post_state(client, STATE)
    assert r.status_code == 200 and r.get_json()["lesson"] == LESSON
    seq = r.get_json()["seq"]
    r = post_state(client, dict(STATE, page=3), environ_overrides={"REMOTE_ADDR": "::1"})
    assert r.status_code == 200 and r.get_json()["seq"] == seq + 1
    # A projector elsewhere, with the token (header, or the cookie /projector?token= sets).
    r = post_state(client, dict(STATE, page=1), environ_overrides=LAN,
                   headers={"X-Ketang-Projector-Token": "s3cret-projector-token"})
    assert r.status_code == 200 and r.get_json()["page"] == 1
    lan = client.application.test_client()
    r = lan.get("/projector?token=s3cret-projector-token", environ_overrides=LAN)
    assert r.status_code == 302 and r.headers["Location"] == "/projector"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert post_state(lan, dict(STATE, page=2), environ_overrides=LAN).status_code == 200
    # A wrong token sets no cookie.
    other = client.application.test_client()
    assert "Set-Cookie" not in other.get("/projector?token=nope").headers
    assert post_state(other, STATE, environ_overrides=LAN).status_code == 403


def test_a_post_without_the_pages_csrf_token_is_refused(client):
    before = client.get("/projector/follow/state").get_json()["state"]
    r = post_state(client, STATE, csrf=False)
    assert r.status_code == 400 and "CSRF token is missing" in r.get_data(as_text=True)
    r = post_state(client, STATE, csrf=False, headers={"X-CSRFToken": "forged"})
    assert r.status_code == 400
    assert client.get("/projector/follow/state").get_json()["state"] == before


def test_repeating_the_same_state_is_not_a_change(client):
    seq = post_state(client, STATE).get_json()["seq"]
    assert post_state(client, STATE).get_json()["seq"] == seq


@pytest.mark.parametrize("doc, words", [
    ([1, 2], "JSON object"),
    ({"channel": CH}, "go together"),
    ({"channel": CH, "lesson": 5}, "lesson must be a string"),
    ({"channel": CH, "lesson": "a\nb"}, "one line"),
    ({"channel": CH, "lesson": "x" * 201}, "at most 200"),
    ({"channel": CH, "lesson": LESSON, "part": -1}, "part must be a whole number"),
    ({"channel": CH, "lesson": LESSON, "page": True}, "page must be a whole number"),
    ({"channel": CH, "lesson": LESSON, "colour": "red"}, "unknown keys"),
])
def test_a_malformed_state_is_refused_and_changes_nothing(client, doc, words):
    before = client.get("/projector/follow/state").get_json()["state"]
    r = post_state(client, doc)
    assert r.status_code == 400 and words in r.get_json()["error"]
    assert client.get("/projector/follow/state").get_json()["state"] == before
    with pytest.raises(FollowError):
        parse_state(doc)


def test_a_state_not_sent_as_json_is_refused(client):
    r = client.post("/projector/follow", data="channel=x",
                    headers={"X-CSRFToken": csrf_of(client)})
    assert r.status_code == 415 and "application/json" in r.get_json()["error"]


def test_loopback_and_token_rules():
    assert is_projector("127.0.0.1", "", None)
    assert is_projector("::1", "", None)
    assert is_projector("::ffff:127.0.0.1", "", None)
    assert not is_projector("192.168.1.4", "", None)
    assert not is_projector("192.168.1.4", "", "")           # no token configured: none works
    assert not is_projector("not an address", "t", "u")
    assert is_projector("192.168.1.4", "t", "t")


def test_events_answer_at_once_and_send_only_what_the_reader_lacks(client):
    post_state(client, STATE)
    r = client.get("/projector/follow/events")
    assert r.mimetype == "text/event-stream" and r.headers["Cache-Control"] == "no-store"
    body = r.get_data(as_text=True)
    assert body.startswith("retry: 2000\n") and body.endswith("\n\n")
    seq = client.get("/projector/follow/state").get_json()["state"]["seq"]
    assert f"id: {seq}\n" in body and "event: state\n" in body
    data = json.loads(next(line[6:] for line in body.splitlines() if line.startswith("data: ")))
    assert data["lesson"] == LESSON and data["page"] == 2
    # The reader has it: only the retry, no event.
    again = client.get("/projector/follow/events", headers={"Last-Event-ID": str(seq)})
    assert again.get_data(as_text=True) == "retry: 2000\n\n"
    # A change: the reader gets it.
    post_state(client, dict(STATE, lesson=LESSON2))
    third = client.get("/projector/follow/events", headers={"Last-Event-ID": str(seq)})
    assert f"id: {seq + 1}" in third.get_data(as_text=True)
    # Tablets read labels in their language.
    doc = client.get("/projector/follow/state", headers=ZH).get_json()
    assert doc["labels"]["follow"] == "跟随老师" and doc["events"] == "/projector/follow/events"


def test_opening_a_lesson_remembers_it_once_and_browsing_writes_nothing(client):
    data_dir = client.settings.device.data_dir
    recent = data_dir / FILE_NAME
    assert client.get("/projector").status_code == 200
    assert client.get(f"/projector/browse/{CH}/primary-g1").status_code == 200
    assert not recent.exists()
    # A tablet on the LAN looking at the projector's pages changes nothing.
    assert client.get(f"/projector/lesson/{CH}/{LESSON}", environ_overrides=LAN).status_code == 200
    assert not recent.exists()
    assert client.get(f"/projector/lesson/{CH}/{LESSON}").status_code == 200
    first = recent.stat()
    assert json.loads(recent.read_text())["recent"][0]["lesson"] == LESSON
    # Reloading or moving through its parts writes nothing.
    client.get(f"/projector/lesson/{CH}/{LESSON}?part=2")
    assert recent.stat().st_ino == first.st_ino and recent.stat().st_mtime_ns == first.st_mtime_ns
    client.get(f"/projector/lesson/{CH}/{LESSON2}")
    client.get(f"/projector/lesson/{CH}/{LESSON}")
    items = json.loads(recent.read_text())["recent"]
    assert [i["lesson"] for i in items] == [LESSON, LESSON2]
    page = client.get("/projector", headers=ZH).get_data(as_text=True)
    assert "最近使用" in page and page.index("天地人") < page.index("金木水火土")
    # Only as many as configured are kept.
    for lesson in ("primary-g1-math-pep-v1-u3-l1", "primary-g1-math-pep-v1-u3-l2",
                   "primary-g1-science-jiaoke-v1-u1-l1", "primary-g3-math-pep-v1-u8-l1",
                   "primary-g3-math-pep-v1-u8-l2"):
        client.get(f"/projector/lesson/{CH}/{lesson}")
    assert len(json.loads(recent.read_text())["recent"]) == client.settings.projector.recent


def test_a_damaged_recent_file_is_ignored(client):
    (client.settings.device.data_dir / FILE_NAME).write_text("{not json")
    r = client.get("/projector", headers=ZH)
    assert r.status_code == 200 and "最近使用" not in r.get_data(as_text=True)
    assert client.get(f"/projector/lesson/{CH}/{LESSON}").status_code == 200
    assert json.loads((client.settings.device.data_dir / FILE_NAME).read_text())["recent"]


@pytest.mark.parametrize("url, words", [
    (f"/projector/lesson/{CH}/no-such-lesson", f"{CH} 中没有课程 no-such-lesson"),
    ("/projector/lesson/no-channel/x", "本机没有频道 no-channel"),
    (f"/projector/browse/{CH}/nowhere", f"{CH} 中没有 nowhere"),
])
def test_unknown_lessons_get_a_404_in_the_projector_style(client, url, words):
    client.get("/projector")          # the first page makes the device's session key
    before = snapshot(client.settings.device.data_dir)
    r = client.get(url, headers=ZH)
    page = r.get_data(as_text=True)
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert 'data-view="projector"' in page and "找不到" in page and words in page
    assert "按 Esc 回到首页" in page and 'data-up="/projector"' in page
    assert snapshot(client.settings.device.data_dir) == before


def test_drive_activity_shows_as_a_banner(client):
    from appliance.drives.status import DriveStatus

    assert client.get("/projector/drives").get_data(as_text=True).strip() == ""
    status = DriveStatus(client.status_file)
    status.set("sdb1", "importing", done=3_200_000_000, total=11_000_000_000)
    page = client.get("/projector", headers=ZH).get_data(as_text=True)
    assert "正在导入 3.2 GB / 11.0 GB，请勿拔出U盘" in page
    status.set("sdb1", "done")
    banner = client.get("/projector/drives", headers=ZH).get_data(as_text=True)
    assert "导入完成，可以安全拔出U盘" in banner and "drive-done" in banner
    status.set("sdb1", "error", error="truncated manifest")
    assert "U盘导入失败：truncated manifest" in client.get(
        "/projector/drives", headers=ZH).get_data(as_text=True)


def test_a_lesson_page_carries_the_usage_attributes(client):
    page = client.get(f"/projector/lesson/{CH}/{LESSON}").get_data(as_text=True)
    assert '<body data-view="projector"' in page and "/ui/usage.js" in page
    assert f'data-usage-lesson="{LESSON}" data-usage-channel="{CH}" data-usage-version="1"' in page
    assert f'<video data-usage-resource="{LESSON}-video"' in page
    assert f'data-usage-resource="{LESSON}-pdf" data-usage-pdf-page="1"' in page
    assert f'data-usage-exercise="{LESSON}-exercise"' in page
    assert 'data-correct="true"' in page and 'data-correct="false"' in page
    # Without JavaScript the steps are links.
    assert f'href="/projector/lesson/{CH}/{LESSON}?part=1&amp;page=1" rel="next"' in page


def lan_ipv4() -> str | None:
    for name, addrs in psutil.net_if_addrs().items():
        if name == "lo" or name.startswith(("docker", "veth", "br-", "virbr")):
            continue
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith(("127.", "169.254.")):
                return a.address
    return None


def test_the_join_address_is_the_configured_one_or_the_lan_one(sample_device):
    c, _ = make_client(sample_device)
    page = c.get(f"/projector/lesson/{CH}/{LESSON}", base_url="http://127.0.0.1:8080")
    html = page.get_data(as_text=True)
    ip = lan_ipv4()
    host = f"http://{ip}:8080" if ip else "http://127.0.0.1:8080"
    assert f'data-join-url="{host}/lessons/{CH}/{LESSON}?follow=1"' in html
    assert "<svg" in html
    c2, _ = make_client(sample_device, '[projector]\njoin_url = "http://ketang.lan:8080/"')
    html = c2.get(f"/projector/lesson/{CH}/{LESSON}").get_data(as_text=True)
    assert f'data-join-url="http://ketang.lan:8080/lessons/{CH}/{LESSON}?follow=1"' in html


# ---- the kiosk launcher -----------------------------------------------------------------

def run_kiosk(*args: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([str(KIOSK), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_the_launcher_starts_chromium_in_kiosk_mode_on_the_projector():
    r = run_kiosk("--dry-run", CHROMIUM="/usr/bin/chromium")
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert words[0] == "/usr/bin/chromium" and words[-1] == "http://127.0.0.1:8080/projector"
    for flag in ("--kiosk", "--no-first-run", "--noerrdialogs", "--lang=zh-CN",
                 "--disable-background-networking", "--disable-session-crashed-bubble"):
        assert flag in words
    r = run_kiosk("--dry-run", "--url", "http://127.0.0.1:9000/projector",
                  KETANG_KIOSK_PROFILE="/tmp/k")
    assert r.stdout.split()[-1] == "http://127.0.0.1:9000/projector"
    assert "--user-data-dir=/tmp/k" in r.stdout.split()


@pytest.mark.parametrize("args, words", [
    (("--url", "ftp://x"), "must start with http://"),
    (("--wait", "soon"), "--wait needs a whole number"),
    (("--frobnicate",), "unknown option --frobnicate"),
])
def test_the_launcher_refuses_bad_options(args, words):
    r = run_kiosk(*args)
    assert r.returncode == 2 and words in r.stderr


def test_the_launcher_says_when_the_server_never_answers():
    with socket.socket() as s:           # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_kiosk("--url", f"http://127.0.0.1:{port}/projector", "--wait", "1",
                  CHROMIUM="/bin/false")
    assert r.returncode == 2
    assert f"127.0.0.1:{port} did not answer within 1s" in r.stderr


def test_the_systemd_unit_verifies(tmp_path):
    require(None if shutil.which("systemd-analyze") else "systemd-analyze is not installed")
    unit = tmp_path / "ketang-kiosk.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/ketang-kiosk", str(KIOSK)))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "ketang-kiosk.service" not in r.stderr, r.stderr


EN = {"Accept-Language": "en-US,en;q=0.9"}


@pytest.mark.parametrize("url", [f"/projector/lesson/{CH}/{LESSON}?part=two",
                                 f"/projector/lesson/{CH}/{LESSON}?page=1.5",
                                 "/search?q=x&page=abc"])
def test_a_bad_query_argument_is_refused_with_400_in_the_readers_language(client, url):
    client.get("/projector")          # the first page makes the device's session key
    before = snapshot(client.settings.device.data_dir)
    zh = client.get(url, headers=ZH)
    assert zh.status_code == 400 and "应为整数" in zh.get_data(as_text=True)
    assert "地址有误" in zh.get_data(as_text=True)
    en = client.get(url, headers=EN)
    page = en.get_data(as_text=True)
    assert en.status_code == 400 and "must be a whole number" in page and "应为" not in page
    assert snapshot(client.settings.device.data_dir) == before


def test_the_api_says_a_bad_argument_and_a_missing_channel_in_both_languages(client):
    r = client.get("/api/v1/search?q=abc&limit=lots", headers=EN)
    message = r.get_json()["error"]["message"]
    assert r.status_code == 400 and "应为 1 到 200 的整数" in message
    assert "must be a whole number from 1 to 200, not 'lots'" in message
    r = client.get("/api/v1/channels/nope", headers=ZH)
    message = r.get_json()["error"]["message"]
    assert r.status_code == 404 and "本机没有频道 nope" in message
    assert "No active channel 'nope'" in message


def test_the_drive_banner_is_in_one_language(client):
    from appliance.drives.status import DriveStatus

    status = DriveStatus(client.status_file)
    status.set("sdb1", "importing", done=3_200_000_000, total=11_000_000_000)
    en = html.unescape(client.get("/projector/drives", headers=EN).get_data(as_text=True))
    assert "Importing 3.2 GB of 11.0 GB, don't remove the drive" in en
    status.set("sdb1", "error", error="No space left on device", error_code="space")
    en = client.get("/projector/drives", headers=EN).get_data(as_text=True)
    zh = client.get("/projector/drives", headers=ZH).get_data(as_text=True)
    assert ("The USB drive could not be imported: there is not enough free space on this "
            "device") in en and not re.search(r"[\u3400-\u9fff]", en)
    assert "U盘导入失败：本机剩余空间不足" in zh and "space" not in zh
    status.set("sdb1", "done")
    en = client.get("/projector", headers=EN).get_data(as_text=True)
    assert "Import finished, you can safely remove the USB drive" in en
    assert "导入完成" not in en


def test_a_pdf_resource_that_is_not_a_pdf_is_unavailable_and_the_lesson_still_works(
        tmp_path, demo_keys):
    """A trusted release names a task sheet with a media type other than application/pdf:
    that part says it is unavailable, every other part of the lesson still shows."""
    from appliance.cli.demo import DEMO_KEY, SAMPLE_PACK
    from content_cache.importer import import_bundle
    from content_cache.keys import load_trusted_keys
    from content_cache.publisher import publish

    from ..helpers import resign_release, write_config

    bundle = tmp_path / "bundle"
    publish(SAMPLE_PACK, CH, 1, DEMO_KEY, bundle)

    shas = []

    def html_pdf(doc):
        (r,) = [r for r in doc["resources"] if r["id"] == LESSON + "-pdf"]
        r["media_type"] = "text/html"
        shas.append(r["sha256"])

    resign_release(bundle, CH, 1, DEMO_KEY, html_pdf)
    data = tmp_path / "data"
    import_bundle(bundle, Library(data), load_trusted_keys(demo_keys))
    c, _settings = make_client(write_config(tmp_path / "ketang.toml", data, demo_keys))
    r = c.get(f"/projector/lesson/{CH}/{LESSON}", headers=ZH)
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "这份任务单在本机上无法显示" in html and "application/pdf" in html
    assert 'data-kind="video"' in html and "<video" in html
    pdf_part = re.search(r'data-part="(\d+)" data-kind="pdf"', html).group(1)
    r = c.get(f"/projector/lesson/{CH}/{LESSON}?part={pdf_part}", headers=ZH)
    assert r.status_code == 200
    # The tablet's page for it says so too, and its page images are simply not there.
    r = c.get(f"/lessons/{CH}/{LESSON}/pdf/{LESSON}-pdf", headers=ZH)
    assert r.status_code == 422 and "application/pdf" in r.get_data(as_text=True)
    assert c.get(f"/pdf-pages/{shas[0]}/1.png").status_code == 404
