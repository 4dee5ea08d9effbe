"""The technician dashboard in real Chromium against `ketang serve`: log in, see health
and releases, a wrong password and a lockout, logout, a CSRF-less POST refused, a USB
import's progress bar moving without a reload (and with JavaScript off, by meta refresh).
The dashboard screenshot (1366x768) refreshes docs/screenshots/dashboard.png when
KETANG_SCREENSHOTS=1 asks (tests/support/screenshots.py)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from appliance import auth as admin_auth
from appliance.drives.status import DriveStatus

from ..helpers import http, running_server, sample_data, write_config
from ..support.screenshots import shoot

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery"
CH = "cn-basic-edu-demo"


def device(tmp: Path, sample_bundle: Path, zeroconf_id: str = "") -> tuple[Path, Path]:
    """A data folder with the sample release and an admin password; returns (config, drives).

    With ``zeroconf_id``, the device has that id and advertises on 127.0.0.1 only.
    """
    data, keys = sample_data(tmp, sample_bundle)
    admin_auth.set_password(data, PASSWORD)
    drives = tmp / "run" / "drives.json"
    config = tmp / "ketang.toml"
    if zeroconf_id:
        config.write_text(
            f'[device]\nname = "Ketang {zeroconf_id}"\nid = "{zeroconf_id}"\n'
            f'data_dir = "{data}"\n\n[trust]\nkeys_dir = "{keys}"\n\n'
            '[zeroconf]\nenabled = true\ninterfaces = ["127.0.0.1"]\n', encoding="utf-8")
    else:
        write_config(config, data, keys)
    with open(config, "a", encoding="utf-8") as f:
        f.write(f'\n[drives]\nstatus_file = "{drives}"\n')
    return config, drives


@pytest.fixture(scope="module")
def server(tmp_path_factory, sample_bundle):
    tmp = tmp_path_factory.mktemp("admin-e2e")
    config, drives = device(tmp, sample_bundle)
    with running_server(config) as url:
        yield url, DriveStatus(drives)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    pg = context.new_page()
    yield pg
    context.close()


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def log_in(page, base: str, password: str = PASSWORD):
    page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url          # sent to the login first
    page.fill("#password", password)
    page.click("form button[type=submit]")
    page.wait_for_load_state()


def test_unauthenticated_requests_reach_nothing(server):
    base, _ = server
    status, headers, _ = http(f"{base}/admin/")
    assert status == 302 and headers["Location"].startswith("/admin/login")
    status, _, body = http(f"{base}/admin/status.json")
    assert status == 401 and b'"login"' in body
    status, _, _ = http(f"{base}/admin/logout", method="POST")
    assert status == 400                          # no token, no session: refused first


def test_log_in_and_see_health_releases_and_a_moving_import(server, page, tmp_path):
    base, drives = server
    log_in(page, base)
    assert page.url.endswith("/admin/")
    assert page.locator("#section-health h2").inner_text().startswith("设备状态")
    assert page.locator("#section-health").get_by_text("数据盘").is_visible()
    row = page.locator(f"#section-releases tr[data-channel='{CH}']")
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == CH and cells[1] == "v1" and int(cells[2]) > 0
    assert page.locator("#section-peers").inner_text().count("Zeroconf 已关闭") == 1
    assert "等待发出" in page.locator("#section-usage").inner_text()
    assert "没有正在导入的 U 盘" in page.locator("#section-drives").inner_text()

    # A drive import appears and moves with no page load (the 2-second poll).
    page.evaluate("window.__samePage = 'yes'")
    drives.set("sdb1", "importing", done=120_000_000, total=1_000_000_000)
    bar = page.locator("#section-drives progress.import")
    bar.wait_for(timeout=6000)
    assert bar.get_attribute("value") == "12"
    drives.set("sdb1", "importing", done=640_000_000, total=1_000_000_000)
    expect(bar).to_have_attribute("value", "64", timeout=6000)
    assert "正在导入 640.0 MB / 1.0 GB" in page.locator("#section-drives").inner_text()
    assert page.evaluate("window.__samePage") == "yes"
    shoot(page, tmp_path, "dashboard.png", docs_name="dashboard.png")
    drives.set("sdb1", "done")
    expect(page.locator("#section-drives")).to_contain_text("可以安全拔出", timeout=6000)
    assert page.evaluate("window.__samePage") == "yes"
    drives.forget("sdb1")


def test_a_form_posted_without_its_token_is_refused(server, page):
    base, _ = server
    log_in(page, base)
    # A script (or another page) posting the logout form without the CSRF token.
    status = page.evaluate("""async () => (await fetch('/admin/logout',
        {method: 'POST', body: new URLSearchParams({x: '1'})})).status""")
    assert status == 400
    page.evaluate("""() => { const f = document.createElement('form');
        f.method = 'post'; f.action = '/admin/logout'; document.body.appendChild(f);
        f.submit(); }""")
    page.wait_for_load_state()
    assert "表单已过期" in page.locator("main").inner_text()
    page.goto(f"{base}/admin/")
    assert page.url.endswith("/admin/")              # still logged in: nothing happened
    # The JSON API is not behind CSRF: a POST there is answered by the API itself.
    status = page.evaluate("""async () => (await fetch('/api/v1/channels',
        {method: 'POST'})).status""")
    assert status == 405


def test_logout(server, page):
    base, _ = server
    log_in(page, base)
    page.click("form.logout button")
    page.wait_for_load_state()
    assert "/admin/login" in page.url
    assert "已退出登录" in page.locator("main").inner_text()
    page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url
    # The session cookie is HttpOnly: scripts cannot read it.
    log_in(page, base)
    assert "ketang_session" not in page.evaluate("document.cookie")
    cookie = next(c for c in page.context.cookies() if c["name"] == "ketang_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_without_javascript_the_page_reloads_itself(server, browser):
    base, drives = server
    context = browser.new_context(java_script_enabled=False, locale="zh-CN")
    try:
        page = context.new_page()
        log_in(page, base)
        drives.set("sdc1", "importing", done=1, total=4)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if page.locator("#section-drives progress.import").count():
                break
            time.sleep(0.5)
        assert page.locator("#section-drives progress.import").get_attribute("value") == "25"
    finally:
        drives.forget("sdc1")
        context.close()


def test_a_wrong_password_says_so_and_repeated_ones_lock_out(tmp_path, sample_bundle,
                                                             browser):
    config, _ = device(tmp_path, sample_bundle)
    with running_server(config) as base:     # its own server: the lockout is per server
        context = browser.new_context(locale="zh-CN")
        page = context.new_page()
        try:
            log_in(page, base, "not the password")
            assert page.locator("#login-error").inner_text() == "密码错误。"
            for _ in range(3):
                page.fill("#password", "still not it")
                page.click("form button[type=submit]")
                page.wait_for_load_state()
            assert "请等待 2 秒" in page.locator("#login-error").inner_text()
            # Locked: the right password is refused until the wait is over.
            page.fill("#password", PASSWORD)
            page.click("form button[type=submit]")
            page.wait_for_load_state()
            assert "密码错误次数太多" in page.locator("#login-error").inner_text()
            assert "/admin/login" in page.url
            time.sleep(2.1)
            page.fill("#password", PASSWORD)
            page.click("form button[type=submit]")
            page.wait_for_load_state()
            assert page.url.endswith("/admin/")
        finally:
            context.close()


def test_a_device_nearby_appears_among_the_peers(tmp_path, sample_bundle, browser):
    id_a, id_b = (f"{c}{uuid.uuid4().hex[:12]}" for c in "ab")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config_a, _ = device(tmp_path / "a", sample_bundle, id_a)
    config_b, _ = device(tmp_path / "b", sample_bundle, id_b)
    with running_server(config_a) as base_a, running_server(config_b) as base_b:
        context = browser.new_context(locale="zh-CN")
        try:
            page = context.new_page()
            log_in(page, base_a)
            peers = page.locator("#section-peers")
            # Found by zeroconf within seconds; the 2-second poll shows it.
            expect(peers).to_contain_text(f"Ketang {id_b}", timeout=20000)
            port_b = base_b.rsplit(":", 1)[1]
            assert f"127.0.0.1:{port_b}" in peers.inner_text()
            assert f"{CH} v1" in peers.inner_text()
            assert f"Ketang {id_a}" not in peers.inner_text()     # never itself
        finally:
            context.close()
