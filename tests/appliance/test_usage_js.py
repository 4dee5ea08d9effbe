"""usage.js in real Chromium against `ketang serve`: the data-attribute contract of
docs/usage.md turns into events in the usage database, through failures and page exits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from appliance.config import load_settings
from appliance.usage.db import UsageDB, db_path

from ..helpers import http_json, running_server, wait_for
from ..support.chromium import persistent_context

LESSON = "primary-g1-math-pep-v1-u3-l1"
CHANNEL = "cn-basic-edu-demo"

pytestmark = pytest.mark.slow

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>fixture</title>
<script src="/ui/usage.js"></script></head>
<body data-view="{view}" data-usage-progress-seconds="2">
<h1 data-usage-lesson="{lesson}" data-usage-channel="{channel}" data-usage-version="1">课</h1>
<video id="v" data-usage-resource="{lesson}-video" src="{video}" muted playsinline></video>
<iframe data-usage-resource="{lesson}-html5" src="about:blank"></iframe>
<form id="ex" data-usage-exercise="{lesson}-exercise" onsubmit="return false">
  <label><input type="radio" name="a" value="1" data-correct="false"> 4</label>
  <label><input type="radio" name="a" value="2" id="right" data-correct="true"> 5</label>
  <button id="send">提交</button>
</form>
<div style="height: 3000px"></div>
<div id="p2" data-usage-pdf-page="2" data-usage-resource="{lesson}-pdf"
     style="height: 300px">第 2 页</div>
<div style="height: 3000px"></div>
</body></html>"""


def events_in(data_dir: Path) -> list:
    if not db_path(data_dir).exists():
        return []
    db = UsageDB(data_dir)
    try:
        return db.after(0, 10_000)
    finally:
        db.close()


@pytest.fixture
def served(sample_device):
    with open(sample_device, "a", encoding="utf-8") as f:
        f.write("\n[captive]\nenabled = false\n")
    with running_server(sample_device) as url:
        yield url, load_settings(sample_device).device.data_dir


def test_the_page_contract_becomes_events_in_the_database(served, playwright, tmp_path):
    url, data = served
    _, lesson = http_json(f"{url}/api/v1/channels/{CHANNEL}/lessons/{LESSON}")
    video = next(r["url"] for r in lesson["resources"] if r["kind"] == "video")
    html = PAGE.format(view="tablet", lesson=LESSON, channel=CHANNEL, video=video)
    browser = persistent_context(playwright, tmp_path / "profile")
    try:
        page = browser.new_page()
        page.route(f"{url}/fixture/*", lambda route: route.fulfill(
            status=200, content_type="text/html; charset=utf-8", body=html))
        page.goto(f"{url}/fixture/lesson.html")
        tablet = page.evaluate("ketangUsage.tabletId()")
        page.evaluate("var v = document.getElementById('v'); v.playbackRate = 2; v.play()")
        page.wait_for_function("document.getElementById('v').ended", timeout=20_000)
        page.locator("#p2").scroll_into_view_if_needed()
        page.check("#right")
        page.click("#send")
        page.evaluate("ketangUsage.projectedStart()")
        time.sleep(1.2)
        page.evaluate("ketangUsage.projectedEnd()")
        page.wait_for_function("ketangUsage.pending() === 0", timeout=20_000)
        assert "app-opened" not in [r.type for r in events_in(data)]  # nobody used it
        page.click("iframe")   # now someone does: recorded once focus has moved, then sent
        wait_for(lambda: "app-opened" in [r.type for r in events_in(data)],
                 what="app-opened stored after the interactive was used")
    finally:
        browser.close()

    rows = events_in(data)
    types = [r.type for r in rows]
    for t in ("lesson-opened", "video-played", "video-progress", "video-completed",
              "pdf-page-viewed", "exercise-attempted", "exercise-answered", "app-opened",
              "projected"):
        assert t in types, (t, types)
    assert {r.actor for r in rows} == {tablet}
    assert {r.view for r in rows} == {"tablet"}
    assert all(r.channel == CHANNEL and r.version == 1 and r.lesson == LESSON for r in rows)
    (answered,) = [r for r in rows if r.type == "exercise-answered"]
    assert answered.extra == {"correct": True} and answered.kind == "exercise"
    (page2,) = [r for r in rows if r.type == "pdf-page-viewed"]
    assert page2.extra == {"page": 2} and page2.resource == f"{LESSON}-pdf"
    done = [r for r in rows if r.type == "video-completed"][0]
    assert done.extra["duration"] == pytest.approx(6.0, abs=0.2)
    assert sum(r.extra.get("seconds", 0) for r in rows if r.type.startswith("video-")) \
        == pytest.approx(6.0, abs=1.0)
    (proj,) = [r for r in rows if r.type == "projected"]
    assert 1.0 <= proj.extra["seconds"] < 5
    assert len(set(r.id for r in rows)) == len(rows)


def test_unsent_events_wait_in_local_storage_and_a_bad_one_is_dropped(served, playwright,
                                                                    tmp_path):
    url, data = served
    html = PAGE.format(view="projector", lesson=LESSON, channel=CHANNEL, video="")
    browser = persistent_context(playwright, tmp_path / "profile")
    try:
        page = browser.new_page()
        page.route(f"{url}/fixture/*", lambda route: route.fulfill(
            status=200, content_type="text/html; charset=utf-8", body=html))
        page.route(f"{url}/api/v1/usage", lambda route: route.abort())  # link down
        page.goto(f"{url}/fixture/a.html")
        page.evaluate("ketangUsage.flush()")
        time.sleep(1)
        assert page.evaluate("ketangUsage.pending()") >= 1
        # A bad event (from an old script, say) sits in the queue with good ones.
        page.evaluate("""() => {
            var q = JSON.parse(localStorage.getItem('ketang.usage.queue'));
            q.unshift({id: '6d1f8a2e-3b4c-4d5e-8f90-123456789abc', type: 'danced',
                       time: new Date().toISOString(), actor: ketangUsage.tabletId(),
                       view: 'projector', resource: 'x'});
            localStorage.setItem('ketang.usage.queue', JSON.stringify(q));
        }""")
        assert events_in(data) == []
        page.unroute(f"{url}/api/v1/usage")
        page.reload()  # the link is back: the next page sends what waited
        page.wait_for_function("ketangUsage.pending() === 0", timeout=20_000)
        rows = events_in(data)
        assert [r.type for r in rows].count("lesson-opened") == 2
        assert {r.view for r in rows} == {"projector"}
        assert "6d1f8a2e-3b4c-4d5e-8f90-123456789abc" not in {r.id for r in rows}

        # Leaving the page at once: sendBeacon carries what was just recorded.
        eid = page.evaluate(f"ketangUsage.record('video-paused', '{LESSON}-video', "
                            "{position: 12.5})")
        page.goto("about:blank")
        wait_for(lambda: eid in {r.id for r in events_in(data)})
    finally:
        browser.close()
