"""In Chromium (Debian's, through Playwright): a trusted release's malicious SVG and HTML
file, opened at their own /blobs/ URL by the technician's browser on the kiosk's
loopback, run no script on the lesson origin: they read no dashboard, log nobody out and
change nothing tablets follow (docs/serving.md, "No active content on the lesson origin").
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from appliance import auth as admin_auth
from content_cache.publisher import publish

from ..helpers import DEMO_KEY, http, make_source, served_sample

pytestmark = pytest.mark.slow
CH = "evil-channel"
CHROMIUM = "/usr/lib/chromium/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery"

# What a hostile publisher's file tries, once it runs on the lesson origin: read the
# dashboard, make every tablet follow its lesson (as the kiosk may), log the technician
# out. Each step reports to /evil-report, which the test watches for.
ATTACK = """
function report(what) { new Image().src = '/evil-report?' + encodeURIComponent(what); }
report('ran');
(async () => {
  const status = await fetch('/admin/status.json', {credentials: 'include'});
  report('dashboard-' + status.status + '-' + (await status.text()).slice(0, 40));
  const page = await (await fetch('/projector/lesson/CHANNEL/l0')).text();
  const csrf = (page.match(/data-csrf="([^"]+)"/) || [])[1] || '';
  const follow = await fetch('/projector/follow', {method: 'POST', headers: {
      'Content-Type': 'application/json', 'X-CSRFToken': csrf},
    body: JSON.stringify({channel: 'CHANNEL', lesson: 'l1', part: 0, page: 1,
                          resource: 'l1-video', kind: 'video'})});
  report('follow-' + follow.status);
  const admin = await (await fetch('/admin/')).text();
  const token = (admin.match(/name="csrf_token" value="([^"]+)"/) || [])[1] || '';
  const out = await fetch('/admin/logout', {method: 'POST', body: new URLSearchParams(
    {csrf_token: token})});
  report('logout-' + out.status);
})();
""".replace("CHANNEL", CH)
EVIL_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80">'
            '<rect width="120" height="80" fill="teal"/><script>//<![CDATA[\n'
            + ATTACK + "//]]></script></svg>")
EVIL_HTML = f"<!doctype html><title>lesson notes</title><p>notes</p><script>{ATTACK}</script>"


def evil_bundle(tmp: Path) -> Path:
    """A release signed by a trusted key whose lesson holds the malicious SVG and HTML."""
    src = make_source(tmp / "src")
    (src / "media" / "board.svg").write_text(EVIL_SVG, encoding="utf-8")
    (src / "media" / "notes.html").write_text(EVIL_HTML, encoding="utf-8")
    doc = json.loads((src / "source.json").read_text(encoding="utf-8"))
    lesson = doc["nodes"][0]["children"][0]["children"][0]["children"][0]["children"][0][
        "children"][0]["children"][0]
    assert lesson["id"] == "l0"
    lesson["resources"] += [
        {"id": "l0-board", "kind": "image", "title": {"zh": "板书"}, "file": "media/board.svg"},
        {"id": "l0-notes", "kind": "image", "title": {"zh": "笔记"},
         "file": "media/notes.html"},
    ]
    (src / "source.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    out = tmp / "bundle"
    publish(src, CH, 1, DEMO_KEY, out)
    return out


def blob_of(data: Path, resource: str) -> str:
    from content_cache.library import Library

    cat = Library(data).catalog(CH)
    (r,) = [r for r in cat.lesson("l0")["resources"] if r["id"] == resource]
    return r["sha256"]


def test_a_malicious_svg_and_html_blob_run_nothing_on_the_lesson_origin(tmp_path):
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        missing = "Debian's chromium is not installed (tests/system-packages.txt)"
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    with served_sample(tmp_path, evil_bundle(tmp_path)) as (base, data):
        admin_auth.set_password(data, PASSWORD)
        svg, html = blob_of(data, "l0-board"), blob_of(data, "l0-notes")
        status, headers, _body = http(f"{base}/blobs/{svg}")
        assert headers["Content-Type"].startswith("image/svg+xml")
        assert headers["Content-Security-Policy"].startswith("sandbox;")
        assert headers["X-Content-Type-Options"] == "nosniff"
        status, headers, _body = http(f"{base}/blobs/{html}")
        assert status == 200 and headers["Content-Type"] == "application/octet-stream"
        before = http(f"{base}/projector/follow/state")[2]
        with sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, args=ARGS,
                accept_downloads=True)
            try:
                page = browser.new_page()
                reports: list[str] = []
                browser.on("request", lambda r: reports.append(r.url)
                           if "/evil-report" in r.url else None)
                page.goto(f"{base}/admin/login")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit], input[type=submit]")
                page.wait_for_url(f"{base}/admin/")
                # The technician opens each file at its own URL, as a link would.
                for sha in (svg, html):
                    try:
                        page.goto(f"{base}/blobs/{sha}")
                    except PlaywrightError as e:      # sent as a download: not shown at all
                        assert "net::ERR_ABORTED" in str(e) or "Download" in str(e), e
                    page.wait_for_timeout(1500)
                assert reports == []
                # Still logged in; the tablets follow what they followed before.
                assert page.goto(f"{base}/admin/status.json").status == 200
                assert http(f"{base}/projector/follow/state")[2] == before
                # The SVG still works as a picture in a lesson page.
                page.goto(f"{base}/lessons/{CH}/l0")
                width = page.evaluate("""(src) => new Promise(done => {
                    const img = new Image(); img.onload = () => done(img.naturalWidth);
                    img.onerror = () => done(-1); img.src = src; })""", f"/blobs/{svg}")
                assert width == 120
                assert reports == []
            finally:
                browser.close()
