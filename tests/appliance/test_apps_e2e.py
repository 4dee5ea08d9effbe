"""HTML5 lesson apps on their own origin (another port of the same `ketang serve`),
straight from the zip, with a restrictive CSP; and, in Chromium, proof that an app can
read none of the main origin's cookies and call none of its API."""

from __future__ import annotations

import io
import json
import re
import urllib.parse
import zipfile

import pytest

from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.publisher import publish

from ..helpers import http, http_json, make_source, running_server, served_sample, write_config

pytestmark = pytest.mark.slow
CH = "cn-basic-edu-demo"


@pytest.fixture(scope="module")
def served(tmp_path_factory, sample_bundle):
    tmp = tmp_path_factory.mktemp("apps")
    with served_sample(tmp, sample_bundle) as (url, data):
        cat = Library(data).catalog(CH)
        lesson = cat.lesson(cat.lessons()[0]["id"])
        yield url, data, lesson


def app_of(served):
    base, data, lesson = served
    status, doc = http_json(f"{base}/api/v1/channels/{CH}/lessons/{lesson['id']}")
    html5 = next(r for r in doc["resources"] if r["kind"] == "html5")
    app_url = "http:" + html5["app_url"]
    return app_url, html5, data


def test_the_app_origin_is_another_port_serving_files_straight_from_the_zip(served):
    base, _, _ = served
    app_url, html5, data = app_of(served)
    main, apps = urllib.parse.urlsplit(base), urllib.parse.urlsplit(app_url)
    assert apps.hostname == main.hostname and apps.port != main.port
    assert apps.path == f"/apps/{html5['sha256']}/index.html"
    zf = zipfile.ZipFile(Library(data).store.path_for(html5["sha256"]))
    for name in zf.namelist():
        status, headers, body = http(app_url.replace("index.html", name))
        assert status == 200, name
        assert body == zf.read(name)
        csp = headers["Content-Security-Policy"]
        for directive in ("default-src 'self'", "connect-src 'self'", "sandbox allow-scripts",
                          "object-src 'none'", "form-action 'none'"):
            assert directive in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
    assert http(app_url)[1]["Content-Type"].startswith("text/html")
    assert http(app_url.replace("index.html", "app.js"))[1]["Content-Type"].split(";")[0] in (
        "text/javascript", "application/javascript")
    # The directory URL is the entry page; HEAD and If-None-Match work.
    assert http(app_url.replace("index.html", ""))[2] == zf.read("index.html")
    status, headers, body = http(app_url, method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(
        zf.read("index.html"))
    assert http(app_url, {"If-None-Match": headers["ETag"]})[0] == 304
    # Nothing was unpacked next to the blobs.
    assert not list((data / "blobs").rglob("index.html"))


@pytest.mark.parametrize("inner", ["../index.html", "%2e%2e/index.html", "/etc/passwd",
                                   "a/../index.html", "no-such-file.js", "./index.html",
                                   "..%5cindex.html"])
def test_paths_outside_the_zip_or_absent_are_404(served, inner):
    app_url, _, _ = app_of(served)
    status, headers, _ = http(app_url.replace("index.html", inner))
    assert status == 404, inner
    assert "sandbox" in headers["Content-Security-Policy"]


def test_the_app_origin_serves_only_apps_and_the_main_origin_no_apps(served):
    base, _, lesson = served
    app_url, html5, _ = app_of(served)
    apps_base = app_url.split("/apps/")[0]
    video = next(r for r in lesson["resources"] if r["kind"] == "video")
    assert http(f"{apps_base}/apps/{video['sha256']}/index.html")[0] == 404   # not an app
    assert http(f"{apps_base}/apps/{'0' * 64}/index.html")[0] == 404
    for path in ("/", "/api/v1/device", f"/blobs/{video['sha256']}"):
        assert http(apps_base + path)[0] == 404, path
    assert http(f"{base}/apps/{html5['sha256']}/index.html")[0] == 404


def test_the_lesson_page_embeds_the_app_in_a_sandboxed_iframe(served):
    base, _, lesson = served
    app_url, _, _ = app_of(served)
    page = http(f"{base}/lessons/{CH}/{lesson['id']}")[2].decode()
    iframe = re.search(r"<iframe[^>]*>", page).group(0)
    assert f'src="{app_url.removeprefix("http:")}"' in iframe
    assert 'sandbox="allow-scripts"' in iframe     # no allow-same-origin: an opaque origin


PROBE_APP = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>probe</title>
<link rel="stylesheet" href="style.css"></head><body><div id="out">running</div>
<script src="probe.js"></script></body></html>"""
PROBE_JS = """
var out = {origin: String(self.origin)};
try { out.cookie = document.cookie; } catch (e) { out.cookie = 'blocked: ' + e.name; }
try { localStorage.setItem('k', 'v'); out.storage = 'allowed'; }
catch (e) { out.storage = 'blocked: ' + e.name; }
try { out.parent = parent.document.cookie; } catch (e) { out.parent = 'blocked: ' + e.name; }
out.style = getComputedStyle(document.body).backgroundColor;
document.getElementById('out').textContent = JSON.stringify(out);
"""


def probe_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("index.html", PROBE_APP)
        zf.writestr("probe.js", PROBE_JS)
        zf.writestr("style.css", "body { background: rgb(1, 2, 3); }")
    return buf.getvalue()


@pytest.fixture
def probe_server(tmp_path, publisher_key):
    """A server whose one lesson carries the probe app; yields (base, lesson page URL)."""
    pair, trusted = publisher_key
    src = make_source(tmp_path / "src", lessons=1)
    (src / "media" / "probe.zip").write_bytes(probe_zip())
    doc = json.loads((src / "source.json").read_text())
    lesson = doc["nodes"][0]
    while lesson["kind"] != "lesson":
        lesson = lesson["children"][0]
    lesson["resources"].append({"id": "l0-app", "kind": "html5", "title": {"zh": "互动"},
                                "file": "media/probe.zip"})
    (src / "source.json").write_text(json.dumps(doc, ensure_ascii=False))
    publish(src, "probe", 1, pair.private_path, tmp_path / "bundle")
    data = tmp_path / "data"
    import_bundle(tmp_path / "bundle", Library(data), load_trusted_keys(trusted))
    with running_server(write_config(tmp_path / "ketang.toml", data, trusted)) as base:
        yield base, f"{base}/lessons/probe/{lesson['id']}"


def test_in_chromium_an_app_reads_no_main_cookies_and_calls_no_main_api(probe_server, browser):
    base, lesson_url = probe_server
    context = browser.new_context()
    try:
        # A cookie of the main origin (cookies are shared by every port of a host).
        context.add_cookies([{"name": "ketang_session", "value": "teacher-secret",
                              "url": base}])
        page = context.new_page()
        page.goto(lesson_url)
        assert "teacher-secret" in page.evaluate("document.cookie")  # main origin reads it
        frame = page.frame_locator("iframe.lesson-app")
        out = frame.locator("#out")
        out.wait_for()
        app_frame = next(f for f in page.frames if "/apps/" in f.url)
        app_frame.wait_for_function("document.getElementById('out').textContent "
                                    "!== 'running'", timeout=10000)
        result = json.loads(out.text_content())
        # The app's own script and stylesheet ran (CSP allows its own origin) ...
        assert result["style"] == "rgb(1, 2, 3)"
        # ... in an opaque origin: no cookies (not even the port-shared ones), no storage,
        assert result["origin"] == "null"
        assert result["cookie"].startswith("blocked") or result["cookie"] == ""
        assert "teacher-secret" not in json.dumps(result)
        assert result["storage"].startswith("blocked")
        # ... and no reach into the lesson page.
        assert result["parent"].startswith("blocked")
        # Calling the main origin's API from the app: refused by the CSP (connect-src).
        api = app_frame.evaluate(
            """async (url) => {
                 try { const r = await fetch(url, {credentials: 'include'});
                       return 'read: ' + (await r.text()); }
                 catch (e) { return 'blocked: ' + e.name; } }""",
            f"{base}/api/v1/device")
        assert api.startswith("blocked"), api
        # Nor any other address (the network beyond its own origin).
        other = app_frame.evaluate(
            """async () => { try { await fetch('http://127.0.0.1:9/'); return 'sent'; }
                             catch (e) { return 'blocked: ' + e.name; } }""")
        assert other.startswith("blocked")
        # Opened on its own (not in the iframe), the CSP sandbox still applies.
        page.goto("http:" + app_frame.url.removeprefix("http:"))
        page.wait_for_function("document.getElementById('out').textContent !== 'running'")
        alone = json.loads(page.locator("#out").text_content())
        assert alone["origin"] == "null" and "teacher-secret" not in json.dumps(alone)
    finally:
        context.close()
