"""The technician dashboard: password hashing, the session key, wrong-password limits,
CSRF, cookie flags, every /admin route behind the login, `ketang admin password`, the
demo password. Flask's test client over a real data folder (no server)."""

from __future__ import annotations

import html as html_module
import re
import stat
import time
import types

import pytest
from click.testing import CliRunner
from flask import Blueprint, jsonify

from appliance import auth as admin_auth
from appliance.auth import LoginLimiter
from appliance.cli import main
from appliance.config import Settings
from appliance.drives.status import DriveStatus
from appliance.web import admin_status
from appliance.web.app import create_app
from appliance.web.context import state
from content_cache.errors import KetangError
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library

from ..helpers import snapshot

PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the password and the session key -------------------------------------------------

def test_the_password_is_stored_as_a_slow_hash_in_a_private_file(tmp_path):
    path = admin_auth.set_password(tmp_path, PASSWORD)
    assert path == tmp_path / "admin" / "password.hash"
    text = path.read_text()
    assert PASSWORD not in text and text.startswith("scrypt:32768:8:1$")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert admin_auth.verify_password(tmp_path, PASSWORD)
    assert not admin_auth.verify_password(tmp_path, PASSWORD + "x")
    assert not admin_auth.verify_password(tmp_path, "")
    assert not admin_auth.verify_password(tmp_path, "x" * 5000)   # refused unhashed
    # The same password hashes differently each time (salted).
    admin_auth.set_password(tmp_path, PASSWORD)
    assert path.read_text() != text


@pytest.mark.parametrize("bad, words", [
    ("short", "at least 10 characters"),
    (" " + PASSWORD, "starts or ends with a space"),
    ("x" * 2000, "too long"),
])
def test_a_bad_new_password_is_refused_and_changes_nothing(tmp_path, bad, words):
    admin_auth.set_password(tmp_path, PASSWORD)
    before = snapshot(tmp_path)
    with pytest.raises(KetangError, match=words):
        admin_auth.set_password(tmp_path, bad)
    assert snapshot(tmp_path) == before
    assert admin_auth.verify_password(tmp_path, PASSWORD)


def test_no_password_and_a_damaged_hash_let_nobody_in(tmp_path):
    assert not admin_auth.password_is_set(tmp_path)
    assert not admin_auth.verify_password(tmp_path, PASSWORD)
    admin_auth.set_password(tmp_path, PASSWORD)
    (tmp_path / "admin" / "password.hash").write_text("scrypt:garbage\n")
    assert not admin_auth.verify_password(tmp_path, PASSWORD)


def test_a_missing_data_folder_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(KetangError, match="does not exist"):
        admin_auth.set_password(tmp_path / "nope", PASSWORD)
    assert not (tmp_path / "nope").exists()


def test_the_session_key_is_made_once_per_device_and_kept_private(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    key = admin_auth.session_key(a)
    assert len(key) == 32 and admin_auth.session_key(a) == key
    assert mode(a / "admin" / "session.key") == 0o600
    assert admin_auth.session_key(b) != key
    # A damaged key file is replaced, not trusted.
    (a / "admin" / "session.key").write_text("zz\n")
    assert admin_auth.session_key(a) != key


# --- wrong-password limits --------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_address_gets_a_few_tries_then_a_growing_wait():
    clock = Clock()
    lim = LoginLimiter(clock=clock)
    waits = [lim.failed("10.0.0.5") for _ in range(6)]
    assert waits == [0, 0, 0, 2, 4, 8]
    assert lim.wait_seconds("10.0.0.5") == 8
    assert lim.wait_seconds("10.0.0.6") == 0          # another tablet is not affected
    clock.now += 8
    assert lim.wait_seconds("10.0.0.5") == 0
    assert lim.failed("10.0.0.5") == 16
    for _ in range(20):
        clock.now += 1000
        w = lim.failed("10.0.0.5")
    assert w == admin_auth.MAX_LOCK_SECONDS
    lim.succeeded("10.0.0.5")
    assert lim.wait_seconds("10.0.0.5") == 0


def test_an_address_is_forgotten_after_an_hour_without_failures():
    clock = Clock()
    lim = LoginLimiter(clock=clock)
    for _ in range(3):
        lim.failed("a")
    clock.now += admin_auth.FORGET_AFTER + 1
    assert lim.failed("a") == 0                        # a fresh start: first failure again


def test_many_failures_from_many_addresses_make_everyone_wait():
    clock = Clock()
    lim = LoginLimiter(clock=clock)
    for i in range(admin_auth.GLOBAL_MAX):
        clock.now += 1
        lim.failed(f"10.0.1.{i}")
    first = clock.now - admin_auth.GLOBAL_MAX + 1
    assert lim.wait_seconds("10.9.9.9") == pytest.approx(first + admin_auth.GLOBAL_WINDOW
                                                         - clock.now)
    clock.now = first + admin_auth.GLOBAL_WINDOW
    assert lim.wait_seconds("10.9.9.9") == 0


def test_the_limiter_remembers_a_bounded_number_of_addresses(monkeypatch):
    monkeypatch.setattr(admin_auth, "MAX_TRACKED", 50)
    lim = LoginLimiter(clock=Clock())
    for i in range(200):
        lim.failed(f"a{i}")
    assert len(lim._clients) == 50


# --- the web app -------------------------------------------------------------------------

def make_app(data_dir, drives_file=None, **admin):
    s = Settings().with_overrides("device", data_dir=data_dir)
    if drives_file:
        s = s.with_overrides("drives", status_file=drives_file)
    s = s.with_overrides("admin", **admin)
    app = create_app(s, Library(data_dir))
    app.config["TESTING"] = True
    return app


@pytest.fixture
def data(tmp_path, sample_bundle, demo_keys):
    d = tmp_path / "data"
    import_bundle(sample_bundle, Library(d), load_trusted_keys(demo_keys))
    admin_auth.set_password(d, PASSWORD)
    return d


@pytest.fixture
def app(data, tmp_path):
    return make_app(data, tmp_path / "drives.json")


def token(client, path="/admin/login") -> str:
    return TOKEN.search(client.get(path).get_data(as_text=True)).group(1)


def log_in(client, password=PASSWORD, **extra):
    return client.post("/admin/login", data={"csrf_token": token(client),
                                             "password": password, **extra})


def admin_rules(app):
    return [r for r in app.url_map.iter_rules() if r.rule.startswith("/admin")
            and r.endpoint != "admin.login"]


def test_every_admin_route_needs_a_login(app):
    client = app.test_client()
    rules = admin_rules(app)
    assert {r.endpoint for r in rules} >= {"admin.dashboard", "admin.status_json",
                                           "admin.logout"}
    for rule in rules:
        url = rule.rule
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            data = {"csrf_token": token(client)} if method != "GET" else None
            r = client.open(url, method=method, data=data)
            if url.endswith(".json"):
                assert r.status_code == 401, (method, url)
                assert r.json["error"]["login"] == "/admin/login"
            else:
                assert r.status_code == 302, (method, url)
                assert r.headers["Location"].startswith("/admin/login"), (method, url)
    # A JSON client asking for a page also gets 401, not a login form.
    r = client.get("/admin/", headers={"Accept": "application/json"})
    assert r.status_code == 401


def test_the_right_password_opens_the_dashboard_with_safe_cookie_flags(app):
    client = app.test_client()
    r = log_in(client, next="/admin/status.json")
    assert r.status_code == 302 and r.headers["Location"] == "/admin/status.json"
    cookie = next(c for c in r.headers.getlist("Set-Cookie")
                  if c.startswith("ketang_session="))
    flags = [f.strip().lower() for f in cookie.split(";")]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert "secure" not in flags       # plain-HTTP LAN: Secure would drop the cookie
    page = client.get("/admin/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "cn-basic-edu-demo" in html and "设备状态" in html
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    doc = client.get("/admin/status.json").json
    assert doc["status"]["releases"][0]["lessons"] > 0
    assert set(doc["sections"]) == {"health", "setup", "wifi", "releases", "drives", "peers",
                                    "sync", "usage", "updates"}


def test_next_stays_on_the_dashboard(app):
    for target in ("//evil.example/admin", "https://evil.example/", "/search", "/admin\\x"):
        client = app.test_client()
        r = log_in(client, next=target)
        assert r.headers["Location"] == "/admin/", target


def test_a_wrong_password_says_so_and_repeated_ones_are_locked_out(app):
    client = app.test_client()
    r = log_in(client, "not the password")
    assert r.status_code == 401 and "密码错误" in r.get_data(as_text=True)
    assert "ketang_session=" not in "".join(r.headers.getlist("Set-Cookie")) or \
        client.get("/admin/").status_code == 302
    for _ in range(3):
        r = log_in(client, "not the password")
    assert r.status_code == 401 and r.headers["Retry-After"] == "2"
    # Locked: even the right password is refused, without checking it.
    r = log_in(client)
    assert r.status_code == 429 and "请等待" in r.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302
    en = client.post("/admin/login", headers={"Accept-Language": "en"},
                     data={"csrf_token": token(client), "password": PASSWORD})
    assert "Too many wrong passwords" in en.get_data(as_text=True)
    state(app).login_limiter.succeeded("127.0.0.1")
    assert log_in(client).status_code == 302


def test_without_a_password_set_the_login_says_how_to_set_one(tmp_path):
    client = make_app(tmp_path).test_client()
    page = client.get("/admin/login").get_data(as_text=True)
    assert "还没有设置管理密码" in page and "ketang admin password" in page
    admin_auth.set_password(tmp_path, PASSWORD)
    form_token = token(client)
    (tmp_path / "admin" / "password.hash").unlink()     # removed while the form was open
    r = client.post("/admin/login", data={"csrf_token": form_token, "password": "x" * 12})
    assert r.status_code == 403
    assert client.get("/admin/").status_code == 302


def test_a_form_without_its_csrf_token_is_refused_but_the_api_is_not(app):
    @app.post("/api/v1/test-echo")
    def echo():
        return jsonify(ok=True)

    client = app.test_client()
    r = client.post("/admin/login", data={"password": PASSWORD})
    assert r.status_code == 400 and "表单已过期" in r.get_data(as_text=True)
    r = client.post("/admin/login", data={"password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 400
    assert client.get("/admin/").status_code == 302      # not logged in
    log_in(client)
    assert client.post("/admin/logout").status_code == 400   # logged in, still needs it
    assert client.get("/admin/").status_code == 200
    # The JSON API takes POSTs with no token and no session (tablets send usage there).
    fresh = app.test_client()
    r = fresh.post("/api/v1/test-echo", json={"x": 1})
    assert r.status_code == 200 and r.json == {"ok": True}
    r = fresh.post("/api/v1/channels")
    assert r.status_code == 405 and r.is_json


def test_any_page_form_outside_the_api_gets_a_token_and_needs_it(app):
    @app.route("/exercise-demo", methods=["GET", "POST"])
    def exercise_demo():
        from flask import render_template_string, request

        if request.method == "POST":
            return "saved"
        return render_template_string('<input name="csrf_token" value="{{ csrf_token() }}">')

    client = app.test_client()
    form_token = TOKEN.search(client.get("/exercise-demo").get_data(as_text=True)).group(1)
    assert client.post("/exercise-demo", data={"answer": "b"}).status_code == 400
    r = client.post("/exercise-demo", data={"answer": "b", "csrf_token": form_token})
    assert r.status_code == 200 and r.data == b"saved"
    r = client.post("/exercise-demo", data={"answer": "b"},
                    headers={"X-CSRFToken": form_token})
    assert r.status_code == 200


def test_a_missing_data_folder_is_never_created_by_a_page_view(tmp_path):
    missing = tmp_path / "not-mounted"
    client = make_app(missing).test_client()
    assert client.get("/").status_code == 200          # lessons still answer
    r = client.get("/admin/login")
    assert r.status_code == 503 and "device.data_dir" in r.get_data(as_text=True)
    assert not missing.exists()


def test_an_api_blueprint_added_later_is_not_blocked_either(data):
    app = make_app(data)
    bp = Blueprint("late_api", __name__, url_prefix="/api/v1")

    @bp.post("/later")
    def later():
        return jsonify(stored=True), 201

    app.register_blueprint(bp)
    assert app.test_client().post("/api/v1/later", json=[]).status_code == 201


def test_logout_ends_the_session(app):
    client = app.test_client()
    log_in(client)
    r = client.post("/admin/logout", data={"csrf_token": token(client, "/admin/")})
    assert r.status_code == 302 and r.headers["Location"] == "/admin/login?bye=1"
    assert "已退出登录" in client.get("/admin/login?bye=1").get_data(as_text=True)
    assert client.get("/admin/").status_code == 302


def test_a_session_ends_when_it_is_too_old_or_the_password_changes(data, monkeypatch):
    app = make_app(data, session_minutes=1)
    client = app.test_client()
    log_in(client)
    assert client.get("/admin/").status_code == 200
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 61)
    assert client.get("/admin/").status_code == 302
    monkeypatch.setattr(time, "time", real)
    log_in(client)
    assert client.get("/admin/").status_code == 200
    admin_auth.set_password(data, "another good password")
    assert client.get("/admin/").status_code == 302


def test_a_bad_session_length_is_refused(data):
    with pytest.raises(KetangError, match="admin.session_minutes"):
        make_app(data, session_minutes=0)


def test_the_dashboard_shows_drive_imports_with_progress(app, tmp_path):
    client = app.test_client()
    log_in(client)
    DriveStatus(tmp_path / "drives.json").set("sdb1", "importing", done=300_000_000,
                                              total=1_200_000_000)
    html = client.get("/admin/").get_data(as_text=True)
    assert re.search(r'<progress class="import" max="100" value="25"', html)
    assert "正在导入 300.0 MB / 1.2 GB" in html
    section = client.get("/admin/status.json").json["sections"]["drives"]
    assert 'value="25"' in section


def test_a_missing_part_says_not_set_up_and_any_summary_shows(app, monkeypatch):
    client = app.test_client()
    log_in(client)
    monkeypatch.setitem(admin_status.SUMMARIES, "sync", lambda settings: None)
    status = client.get("/admin/status.json").json
    assert status["status"]["sync"] is None and "未配置" in status["sections"]["sync"]

    sync = types.SimpleNamespace()
    sync.sync_summary = lambda settings: {"weird": True, "status_file": settings.drives.status_file}
    monkeypatch.setitem(admin_status.SUMMARIES, "sync", lambda s: sync.sync_summary(s))
    html = client.get("/admin/status.json").json["sections"]["sync"]
    assert "<th scope=\"row\">weird</th><td>✓</td>" in html and "drives.json</td>" in html

    sync.sync_summary = lambda settings: {
        "enabled": True, "state": "downloading", "message": "正在同步 cn v2",
        "window": {"windows": ["01:00-06:00"], "open": False, "next_start": "2026-11-24T01:00"},
        "quota": {"daily_bytes": 2_000_000_000, "used_bytes": 500_000_000},
        "feeds": [{"url": "http://feed.lan/", "ok": False, "error": "连接被拒绝"}],
        "releases": [{"channel": "cn", "version": 2, "state": "downloading", "peers": 3,
                      "needed_bytes": 10_000_000, "done_bytes": 2_500_000,
                      "download_rate": 40_000, "web_seeds": [
                          {"url": "http://seed.lan/", "state": "error", "error": "HTTP 500"}],
                      "errors": ["piece 7 failed its hash"]}],
        "errors": []}
    html = client.get("/admin/status.json").json["sections"]["sync"]
    for words in ("正在同步 cn v2", "01:00-06:00", "2026-11-24 01:00", "500.0 MB",
                  "2.0 GB", "连接被拒绝", 'value="25"', "2.5 MB", "10.0 MB", "HTTP 500",
                  "piece 7 failed its hash", "3"):
        assert words in html, words


def test_usage_shows_its_counts_and_a_broken_part_its_error(app, monkeypatch):
    client = app.test_client()
    log_in(client)
    usage = client.get("/admin/status.json").json["sections"]["usage"]
    assert "等待发出" in usage and "从未" in usage     # nothing recorded, nothing sent yet

    def broken(settings):
        raise OSError("usage.db is locked")

    monkeypatch.setitem(admin_status.SUMMARIES, "usage", broken)
    assert "usage.db is locked" in client.get("/admin/status.json").json["sections"]["usage"]
    assert client.get("/admin/").status_code == 200


def test_peers_say_zeroconf_is_off_when_the_server_does_not_browse(app):
    client = app.test_client()
    log_in(client)
    assert "Zeroconf 已关闭" in client.get("/admin/status.json").json["sections"]["peers"]

    class Disco:
        def peers(self):
            return [{"name": "Ketang · 二小", "addresses": ["10.0.0.9"], "port": 8080,
                     "channels": {"cn-basic-edu": 3}}]

    state(app).discovery = Disco()
    html = client.get("/admin/status.json").json["sections"]["peers"]
    assert "Ketang · 二小" in html and "10.0.0.9:8080" in html and "v3" in html


def test_an_unwritable_data_folder_gives_a_clear_error_not_a_crash(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "admin").write_text("a file where the folder should be")
    r = make_app(ro).test_client().get("/admin/login")
    assert r.status_code == 503
    assert "session key" in r.get_data(as_text=True)


# --- the command line and the demo -------------------------------------------------------

def test_ketang_admin_password_from_stdin(tmp_path):
    r = CliRunner().invoke(main, ["admin", "password", "--data-dir", str(tmp_path),
                                  "--password-stdin"], input=PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    assert "已设置管理密码" in r.output
    assert admin_auth.verify_password(tmp_path, PASSWORD)


def test_ketang_admin_password_refuses_a_short_one_and_changes_nothing(tmp_path):
    admin_auth.set_password(tmp_path, PASSWORD)
    before = snapshot(tmp_path)
    r = CliRunner().invoke(main, ["admin", "password", "--data-dir", str(tmp_path),
                                  "--password-stdin"], input="abc\n")
    assert r.exit_code == 1
    assert "at least 10 characters" in r.output and "(this one has 3)" in r.output
    assert snapshot(tmp_path) == before


def test_ketang_admin_password_asks_twice_and_again_when_refused(tmp_path):
    typed = "tiny12\n" + "a good long one\n" + "a different one\n" + \
        "a good long one\n" + "a good long one\n"
    r = CliRunner().invoke(main, ["admin", "password", "--data-dir", str(tmp_path)],
                           input=typed)
    assert r.exit_code == 0, r.output
    assert "at least 10 characters" in r.output
    assert "do not match" in r.output
    assert admin_auth.verify_password(tmp_path, "a good long one")


def test_the_demo_password_is_made_once_and_printed_again(tmp_path):
    first = admin_auth.demo_password(tmp_path)
    assert re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", first)
    assert admin_auth.demo_password(tmp_path) == first
    assert admin_auth.verify_password(tmp_path, first)
    assert mode(tmp_path / "admin" / "demo-password.txt") == 0o600
    # A technician's own password is never replaced, nor printed.
    admin_auth.set_password(tmp_path, PASSWORD)
    assert admin_auth.demo_password(tmp_path) is None
    assert admin_auth.verify_password(tmp_path, PASSWORD)


def test_ketang_demo_prints_the_dashboard_address_and_password(tmp_path):
    args = ["demo", "--data-dir", str(tmp_path / "demo"), "--no-serve", "--port", "8099"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    line = next(x for x in first.output.splitlines() if x.startswith("Dashboard 管理页面"))
    assert "http://localhost:8099/admin" in line and "password 密码: " in line
    again = CliRunner().invoke(main, args)
    assert line in again.output


# --- one language at a time: state codes become the reader's words --------------------

CJK = re.compile(r"[\u3400-\u9fff]")
ZH = {"Accept-Language": "zh-CN"}
EN = {"Accept-Language": "en"}


def visible(html: str) -> str:
    """The text a reader sees (tags dropped)."""
    return html_module.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture
def busy(app, tmp_path, monkeypatch):
    """A dashboard with a drive importing, one refused, sync waiting and two health problems."""
    drives = DriveStatus(tmp_path / "drives.json")
    drives.set("sdb1", "importing", done=300_000_000, total=1_200_000_000)
    drives.set("sdc1", "error", error="manifest.json.sig: bad signature",
               error_code="untrusted")
    monkeypatch.setitem(admin_status.SUMMARIES, "sync", lambda s: {
        "enabled": True, "running": True, "state": "waiting-window",
        "window": {"windows": ["01:00-06:00"], "open": False,
                   "next_start": "2026-11-24T01:00"},
        "quota": {}, "feeds": [], "errors": [],
        "township": {"hub": "school-00", "hub_name": "Ketang Hongxing", "hub_how": "elected",
                     "hub_is_self": False, "uses_uplink": False,
                     "neighbours": [{"id": "school-00"}, {"id": "school-02"}]},
        "releases": [{"channel": "cn", "version": 2, "state": "waiting", "peers": 0,
                      "needed_bytes": 0, "done_bytes": 0, "download_rate": 0,
                      "bytes_lan": 20_000_000, "bytes_mirror": 1_500_000,
                      "web_seeds": [{"url": "http://seed.lan/", "state": "idle", "error": ""}],
                      "errors": []}]})
    real = admin_status.health_report
    monkeypatch.setattr(admin_status, "health_report", lambda lib, started: {
        **real(lib, started), "status": "warning",
        "problems": [{"code": "disk-low", "free_mib": 512}, {"code": "no-release"}]})
    client = app.test_client()
    log_in(client)
    return client


def test_the_dashboard_reads_fully_in_chinese_in_zh_mode(busy):
    s = busy.get("/admin/status.json", headers=ZH).json["sections"]
    drives, sync, health = visible(s["drives"]), visible(s["sync"]), visible(s["health"])
    assert "正在导入 300.0 MB / 1.2 GB，请勿拔出U盘" in drives
    assert "U盘导入失败：签名缺失、有误，或不是本机信任的密钥所签" in drives
    assert "详情" in drives and "bad signature" in drives      # the detail, for the technician
    assert "等待同步时间窗口（01:00 开放）" in sync and "等待中" in sync and "空闲" in sync
    assert "枢纽：Ketang Hongxing（school-00）" in sync and "2 个邻校设备" in sync
    assert "来自局域网 20.0 MB，来自镜像站 1.5 MB" in sync
    assert "数据盘空间不足：仅剩 512 MiB" in health and "没有可用的课程" in health
    for english in ("Importing", "remove", "could not", "Waiting", "waiting", "idle",
                    "Only 512", "No release", "Details"):
        assert english not in drives + sync + health, english
    assert busy.get("/admin/", headers=ZH).get_data(as_text=True).count("请勿拔出U盘") == 1


def test_the_dashboard_reads_fully_in_english_in_en_mode(busy):
    s = busy.get("/admin/status.json", headers=EN).json["sections"]
    drives, sync, health = visible(s["drives"]), visible(s["sync"]), visible(s["health"])
    assert "Importing 300.0 MB of 1.2 GB, don't remove the drive" in drives
    assert ("The USB drive could not be imported: its signature is missing, wrong, or by a "
            "key this device does not trust") in drives
    assert "Waiting for the sync window (opens at 01:00)" in sync and "idle" in sync
    assert "Hub: Ketang Hongxing (school-00)" in sync and "2 neighbours" in sync
    assert "From the LAN 20.0 MB, from the mirror 1.5 MB" in sync
    assert "Only 512 MiB free on the data volume" in health and "No release is active" in health
    for name, text in (("drives", drives), ("sync", sync), ("health", health)):
        assert not CJK.search(text), (name, CJK.findall(text))


def test_a_status_file_from_the_previous_version_still_shows(app, tmp_path):
    import json

    (tmp_path / "drives.json").write_text(json.dumps({"drives": {
        "sdb1": {"state": "importing", "done_bytes": 5_000_000, "total_bytes": 10_000_000,
                 "message": "正在导入 5.0 MB / 10.0 MB，请勿拔出 U 盘 / Importing 5.0 MB of "
                            "10.0 MB, don't remove the drive"},
        "sdc1": {"message": "某种新状态 / some new state"}}}, ensure_ascii=False))
    client = app.test_client()
    log_in(client)
    en = visible(client.get("/admin/status.json", headers=EN).json["sections"]["drives"])
    assert "Importing 5.0 MB of 10.0 MB" in en and "正在导入" not in en   # said from the state
    assert "某种新状态 / some new state" in en          # no state it knows: its own words
    zh = visible(client.get("/admin/status.json", headers=ZH).json["sections"]["drives"])
    assert "正在导入 5.0 MB / 10.0 MB，请勿拔出U盘" in zh and "Importing" not in zh


def test_a_cookie_copied_before_logout_reads_nothing_after(app):
    client = app.test_client()
    log_in(client)
    copied = client.get_cookie("ketang_session").value
    assert client.get("/admin/status.json").status_code == 200
    client.post("/admin/logout", data={"csrf_token": token(client, "/admin/")})
    thief = app.test_client()
    thief.set_cookie("ketang_session", copied)
    r = thief.get("/admin/status.json")
    assert r.status_code == 401 and "status" not in r.json
    assert thief.get("/admin/").status_code == 302


def test_a_new_password_ends_every_session_even_if_set_back(data):
    app = make_app(data)
    client = app.test_client()
    log_in(client)
    copied = client.get_cookie("ketang_session").value
    admin_auth.set_password(data, "another good password")
    assert client.get("/admin/status.json").status_code == 401
    admin_auth.set_password(data, PASSWORD)     # the same hash fingerprint cannot come back
    thief = app.test_client()
    thief.set_cookie("ketang_session", copied)
    assert thief.get("/admin/status.json").status_code == 401


def test_an_expired_session_is_ended_on_the_server(data, monkeypatch):
    app = make_app(data, session_minutes=1)
    client = app.test_client()
    log_in(client)
    sessions = state(app).admin_sessions
    assert len(sessions._live) == 1
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 61)
    assert client.get("/admin/status.json").status_code == 401
    monkeypatch.setattr(time, "time", real)
    assert sessions._live == {}
    assert client.get("/admin/status.json").status_code == 401


def test_parallel_wrong_passwords_get_no_more_checks_than_serial_ones(app):
    """40 wrong passwords at once from one address: each attempt is counted before its
    check, so no more are checked than one after another (3 free + the one that locks)."""
    import threading

    clients = [app.test_client() for _ in range(40)]
    tokens = [token(c) for c in clients]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def attempt(c, t):
        barrier.wait()
        statuses.append(c.post("/admin/login", data={"csrf_token": t,
                                                     "password": "wrong password!"}).status_code)

    threads = [threading.Thread(target=attempt, args=ct)
               for ct in zip(clients, tokens, strict=True)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(set(statuses)) == [401, 429]
    assert statuses.count(401) == admin_auth.FREE_FAILURES + 1


def test_the_right_password_takes_back_its_counted_attempt():
    clock = Clock()
    lim = LoginLimiter(clock=clock)
    for i in range(admin_auth.GLOBAL_MAX * 2):
        assert lim.attempt(f"10.0.2.{i}") == 0     # each right, then taken back
        lim.succeeded(f"10.0.2.{i}")
    assert lim.wait_seconds("10.9.9.9") == 0
    assert [lim.attempt("b") for _ in range(5)] == [0, 0, 0, 0, 2]


def test_classes_are_added_and_removed_on_the_dashboard(app):
    """Issue 19: a class (grade · subject · edition, a name, no student names) added with
    the dashboard's form shows there with its next lesson; bad input changes nothing."""
    client = app.test_client()
    log_in(client)
    dashboard = client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/classes/"' in dashboard
    assert 'href="/browse/cn-basic-edu-demo"' in dashboard     # each channel opens
    page = client.get("/admin/classes/").get_data(as_text=True)
    assert "一年级 · 数学 · 人教版" in page
    tok = token(client, "/admin/classes/")
    curriculum = "cn-basic-edu-demo/primary-g1-math-pep"
    r = client.post("/admin/classes/", data={"csrf_token": tok, "name": "(2)班",
                                             "curriculum": curriculum})
    assert r.status_code == 302
    page = client.get("/admin/classes/").get_data(as_text=True)
    assert "一年级(2)班 · 数学 · 人教版" in page and "5以内的加法" in page
    for bad in ({"name": "", "curriculum": curriculum},
                {"name": "(2)班", "curriculum": curriculum},
                {"name": "(3)班", "curriculum": "cn-basic-edu-demo/primary-g1"}):
        r = client.post("/admin/classes/", data={"csrf_token": tok, **bad})
        assert r.status_code == 400 and 'role="alert"' in r.get_data(as_text=True)
    assert client.post("/admin/classes/", data={"name": "(4)班", "curriculum": curriculum}
                       ).status_code == 400           # no CSRF token
    assert client.get("/api/v1/classes").get_json()["classes"][0]["name"] == "(2)班"
    assert len(client.get("/api/v1/classes").get_json()["classes"]) == 1
    [k] = client.get("/api/v1/classes").get_json()["classes"]
    r = client.post("/admin/classes/remove", data={"csrf_token": tok, "class": str(k["id"])})
    assert r.status_code == 302
    assert client.get("/api/v1/classes").get_json()["classes"] == []
    r = client.post("/admin/classes/remove", data={"csrf_token": tok, "class": "x"})
    assert r.status_code == 404
