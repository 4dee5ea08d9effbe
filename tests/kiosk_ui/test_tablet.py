"""The students' tablet view in real Chromium against `ketang serve` (docs/tablet.md).

Two channels are served: the bundled sample pack (whose first maths lesson's task
sheet is made three pages long) and a small channel of 35 lessons in one unit whose
PDFs are damaged (for paging and for the broken-PDF message).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from appliance.web.pages import PAGE_SIZE
from appliance.web.pdf_pages import cache_root
from bench.pages import exercise_form, fetch
from bench.pages import page_weight as bench_page_weight
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.publisher import publish

from ..helpers import (
    DEMO_KEY,
    DEMO_PUB,
    SAMPLE_PACK,
    http,
    make_source,
    running_server,
    write_config,
)
from ..support import screenshots

pytestmark = pytest.mark.slow
CH = "cn-basic-edu-demo"
SMALL = "test-small"
BUDGET = 60 * 1024
TABLET = {"width": 800, "height": 1280}
MATH_LESSON = "primary-g1-math-pep-v1-u3-l1"


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    """A served device with both channels; yields (base URL, data folder)."""
    tmp = tmp_path_factory.mktemp("tablet")
    pack = tmp / "pack"
    shutil.copytree(SAMPLE_PACK, pack)
    media = pack / "media"
    # A three-page task sheet: three different one-page sheets, joined by poppler.
    three = tmp / "three.pdf"
    subprocess.run(["pdfunite", str(media / "g1-math-u3-l1.pdf"), str(media / "g1-math-u3-l2.pdf"),
                    str(media / "g3-math-u8-l1.pdf"), str(three)], check=True)
    shutil.copyfile(three, media / "g1-math-u3-l1.pdf")
    small = make_source(tmp / "small", lessons=PAGE_SIZE + 5)  # its PDFs are not real PDFs
    # Its first lesson also has an audio recording and a picture (a rendered sheet).
    shutil.copyfile(media / "g1-math-u3-l2.mp4", small / "media" / "l0.m4a")
    subprocess.run(["pdftoppm", "-png", "-singlefile", "-scale-to", "400",
                    str(media / "g3-math-u8-l1.pdf"), str(small / "media" / "board")], check=True)
    doc = json.loads((small / "source.json").read_text(encoding="utf-8"))
    unit = doc["nodes"][0]
    while unit["kind"] != "unit":
        unit = unit["children"][0]
    unit["children"][0]["resources"] += [
        {"id": "l0-audio", "kind": "audio", "title": {"zh": "课文录音"}, "file": "media/l0.m4a"},
        {"id": "l0-image", "kind": "image", "title": {"zh": "板书"}, "file": "media/board.png"}]
    (small / "source.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    keys = tmp / "keys"
    keys.mkdir()
    shutil.copyfile(DEMO_PUB, keys / DEMO_PUB.name)
    data = tmp / "data"
    for src, channel in ((pack, CH), (small, SMALL)):
        publish(src, channel, 1, DEMO_KEY, tmp / f"bundle-{channel}")
        import_bundle(tmp / f"bundle-{channel}", Library(data), load_trusted_keys(keys))
    with running_server(write_config(tmp / "ketang.toml", data, keys)) as base:
        yield base, data


def tablet(browser, js: bool = True):
    """A fresh 800×1280 tablet context (Chinese, as the school's tablets are)."""
    return browser.new_context(viewport=TABLET, device_scale_factor=1, locale="zh-CN",
                               java_script_enabled=js)


@contextmanager
def tablet_page(browser, js: bool = True) -> Iterator:
    """A page in a fresh tablet context, closed afterwards."""
    context = tablet(browser, js)
    try:
        yield context.new_page()
    finally:
        context.close()


def shoot(page, name: str, tmp_path: Path) -> Path:
    """A tablet screenshot; the lesson's refreshes docs/screenshots/tablet.png when asked."""
    return screenshots.shoot(page, tmp_path, f"tablet-{name}.png",
                             docs_name="tablet.png" if name == "lesson" else None)


def tap(page, target) -> None:
    """Click a link or button and wait for the page it leads to."""
    # Scrolling may start the lesson's lazy iframe (another origin, another renderer);
    # Chromium drops a click sent while that frame is being attached, so let it settle.
    target.scroll_into_view_if_needed()
    page.wait_for_load_state("networkidle")
    with page.expect_navigation():
        target.click()


def browse_to_lesson(page, base: str) -> None:
    """From the front page to the first maths lesson of grade one, by links only."""
    page.goto(base + "/")
    assert page.locator("body").get_attribute("data-view") == "tablet"
    tap(page, page.get_by_role("link", name="一年级"))
    tap(page, page.get_by_role("link", name="数学"))
    # The only edition and volume are skipped: the unit and its lessons show at once.
    assert page.locator("h2", has_text="第三单元").count() == 1
    tap(page, page.get_by_role("link", name="5以内的加法"))
    page.wait_for_url(re.compile(f"/lessons/{CH}/{MATH_LESSON}$"))


@pytest.mark.parametrize("js", [True, False], ids=["js", "no-js"])
def test_browse_from_the_front_page_to_a_lesson_by_links(device, browser, js, tmp_path):
    base, _ = device
    errors: list[str] = []
    with tablet_page(browser, js) as page:
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/")
        # Grades first, under their stage, for each channel.
        assert page.locator("h2", has_text="小学").count() == 2
        assert page.get_by_role("link", name="三年级").count() == 2
        shoot(page, f"front-{'js' if js else 'nojs'}", tmp_path)
        browse_to_lesson(page, base)
        article = page.locator("article.lesson")
        assert article.get_attribute("data-usage-lesson") == MATH_LESSON
        assert article.get_attribute("data-usage-channel") == CH
        assert article.get_attribute("data-usage-version") == "1"
        assert page.locator("video").get_attribute("data-usage-resource") == f"{MATH_LESSON}-video"
        assert page.locator("iframe.lesson-app").get_attribute("data-usage-resource")
        # Breadcrumbs lead back up; the unit's next lesson is one tap away.
        tap(page, page.get_by_role("link", name="5以内的减法 ›"))
        assert page.locator("h1").inner_text().startswith("5以内的减法")
        tap(page, page.locator("nav.crumbs").get_by_role("link", name="一年级", exact=True))
        assert page.get_by_role("link", name="数学").count() == 1
        # usage.js and follow.js may be absent (404): nothing breaks.
        assert errors == []


def test_without_javascript_search_and_an_exercise_answer(device, browser, tmp_path):
    base, _ = device
    with tablet_page(browser, js=False) as page:
        page.goto(base + "/")
        page.get_by_role("searchbox").fill("加法")
        tap(page, page.get_by_role("button", name="搜索"))
        page.wait_for_url(re.compile(r"/search\?q="))
        assert page.locator(".lesson-item").count() >= 2
        tap(page, page.get_by_role("link", name="5以内的加法").first)
        page.wait_for_url(re.compile(f"/lessons/{CH}/{MATH_LESSON}$"))
        form = page.locator("form[data-usage-exercise]")
        assert form.get_attribute("data-usage-exercise") == f"{MATH_LESSON}-exercise"
        correct = form.locator("input[data-correct]")
        assert correct.count() == 9
        assert form.locator("input[data-correct=true]").count() == 3
        # First question right, second wrong, third left out.
        form.locator("input[name=q0][data-correct=true]").check()
        form.locator("input[name=q1][data-correct=false]").first.check()
        tap(page, form.get_by_role("button", name="提交答案"))
        page.wait_for_load_state()
        assert page.locator(".score").inner_text() == "答对 1 题，共 3 题"
        items = page.locator("ol.questions > li")
        assert "答对了" in items.nth(0).inner_text()
        assert "答错了" in items.nth(1).inner_text() and "正确答案是 B" in items.nth(1).inner_text()
        assert "未作答" in items.nth(2).inner_text()
        # The chosen answers stay chosen.
        assert form.locator("input[name=q0][data-correct=true]").is_checked()
        page.locator("#ex-" + MATH_LESSON + "-exercise").scroll_into_view_if_needed()
        shoot(page, "exercise-nojs", tmp_path)
        # An unknown query and an empty one are answered in words.
        page.goto(base + "/search?q=" + urllib.parse.quote("没有这个词语"))
        assert "没有找到课程" in page.content()
        page.goto(base + "/search")
        assert "例如" in page.locator("main").inner_text()


def test_long_lists_are_paged(device, browser):
    base, _ = device
    with tablet_page(browser, js=False) as page:
        page.goto(f"{base}/browse/{SMALL}/g3-math-pep-v1-u8")
        assert page.locator(".lesson-item").count() == PAGE_SIZE
        assert "第 1 页，共 2 页" in page.locator(".pager").inner_text()
        tap(page, page.get_by_role("link", name="下一页 ›"))
        assert page.locator(".lesson-item").count() == 5
        assert f"第{PAGE_SIZE + 5}课" in page.locator(".lessons").inner_text()
        tap(page, page.get_by_role("link", name="‹ 上一页"))
        assert page.locator(".lesson-item").count() == PAGE_SIZE
        # The volume page shows the unit's first lessons and a link to all of them.
        # A lesson's id under /browse/ leads to the lesson.
        status, headers, _ = http(f"{base}/browse/{SMALL}/l0")
        assert status == 302 and headers["Location"].endswith(f"/lessons/{SMALL}/l0")
        page.goto(f"{base}/browse/{SMALL}/g3")
        assert page.locator(".lesson-item").count() == PAGE_SIZE
        tap(page, page.get_by_role("link", name="本单元全部课程 ›"))
        assert page.url.endswith("/g3-math-pep-v1-u8")


def page_weight(base: str, path: str, body: bytes | None = None) -> dict:
    """Bytes of a page's HTML plus every stylesheet and script it references."""
    status, sizes = bench_page_weight(base, path, body)
    return {"status": status, "sizes": sizes, "total": sum(sizes.values())}


def test_every_page_type_is_within_the_budget(device):
    base, _ = device
    lesson = f"/lessons/{CH}/{MATH_LESSON}"
    pages = {
        "front": "/", "channel": f"/browse/{CH}", "grade": f"/browse/{CH}/primary-g1",
        "subject": f"/browse/{CH}/primary-g1-math",
        "long unit": f"/browse/{SMALL}/g3-math-pep-v1-u8",
        "volume of a long unit": f"/browse/{SMALL}/g3", "lesson": lesson,
        "lesson followed": lesson + "?follow=1", "search": "/search?q=" + urllib.parse.quote("课"),
        "pdf page": f"{lesson}/pdf/{MATH_LESSON}-pdf?page=2",
        "pdf all pages": f"{lesson}/pdf/{MATH_LESSON}-pdf?all=1",
        "broken pdf": f"/lessons/{SMALL}/l0/pdf/l0-pdf", "not found": f"/lessons/{CH}/nope",
    }
    report = {}
    for name, path in pages.items():
        w = page_weight(base, path)
        assert w["status"] in (200, 404, 422), (name, w)
        report[name] = w["total"]
        assert w["total"] < BUDGET, f"{name} ({path}) weighs {w['total']} bytes: {w['sizes']}"
        assert "style.css" in "".join(w["sizes"]), name
    path, body = exercise_form(base, lesson, f"{MATH_LESSON}-exercise", {"q0": "1"})
    w = page_weight(base, path, body)
    assert w["status"] == 200
    assert w["total"] < BUDGET, w
    print(json.dumps(report, indent=1))


def test_pdf_task_sheet_as_page_images_one_by_one(device, browser, tmp_path):
    base, data = device
    with tablet_page(browser, js=False) as page:
        page.goto(f"{base}/lessons/{CH}/{MATH_LESSON}")
        tap(page, page.get_by_role("link", name="阅读任务单"))
        srcs = []
        for n in (1, 2, 3):
            img = page.locator("figure.pdf-page img")
            assert img.get_attribute("data-usage-pdf-page") == str(n)
            assert img.get_attribute("data-usage-resource") == f"{MATH_LESSON}-pdf"
            page.wait_for_function("document.querySelector('figure.pdf-page img').complete")
            width = img.evaluate("i => i.naturalWidth")
            assert 700 < width < 1300
            assert f"第 {n} 页，共 3 页" in page.locator(".pager").first.inner_text()
            srcs.append(img.get_attribute("src"))
            if n == 2:
                shoot(page, "pdf", tmp_path)
            if n < 3:
                tap(page, page.get_by_role("link", name="下一页 ›").first)
        assert page.get_by_role("link", name="下一页 ›").count() == 0
        tap(page, page.get_by_role("link", name="‹ 上一页").first)
        assert page.locator("figure.pdf-page img").get_attribute("data-usage-pdf-page") == "2"
        assert len(set(srcs)) == 3
        # All pages at once, lazily loaded, each holding its size before it loads.
        tap(page, page.get_by_role("link", name="显示全部页面"))
        imgs = page.locator("figure.pdf-page img")
        assert imgs.count() == 3
        assert imgs.nth(2).get_attribute("loading") == "lazy"
        assert int(imgs.nth(2).get_attribute("height")) > 1000
    # Page images are cached for a year, and revalidate by ETag.
    status, headers, body = http(base + srcs[0])
    assert status == 200 and body.startswith(b"\x89PNG")
    assert headers["Content-Type"] == "image/png"
    cache = headers["Cache-Control"]
    assert "immutable" in cache and "max-age=31536000" in cache
    assert http(base + srcs[0], {"If-None-Match": headers["ETag"]})[0] == 304
    assert http(base + srcs[0].replace("/1.png", "/4.png"))[0] == 404
    # Only PDFs an active release names are rendered: not a video, not an unknown hash.
    video = Library(data).catalog(CH).lesson(MATH_LESSON)["resources"][0]
    assert video["kind"] == "video"
    assert http(f"{base}/pdf-pages/{video['sha256']}/1.png")[0] == 404
    assert http(f"{base}/pdf-pages/{'0' * 64}/1.png")[0] == 404
    assert http(f"{base}/pdf-pages/not-a-hash/1.png")[0] == 404
    # The cache holds one complete entry (no leftovers), keyed by the blob's sha256.
    entries = list(cache_root(data).iterdir())
    assert [e.name for e in entries] == [srcs[0].split("/")[2]]
    assert json.loads((entries[0] / "pages.json").read_text())["pages"] == 3


def test_a_damaged_pdf_gives_a_clear_message_and_caches_nothing(device, browser):
    base, data = device
    before = sorted(p.name for p in cache_root(data).iterdir()) if cache_root(data).exists() else []
    with tablet_page(browser, js=False) as page:
        page.goto(f"{base}/lessons/{SMALL}/l0")
        tap(page, page.get_by_role("link", name="阅读任务单"))
        alert = page.get_by_role("alert")
        assert "已损坏" in alert.inner_text() and "technician" in alert.inner_text()
        assert page.locator("figure.pdf-page").count() == 0
        tap(page, page.get_by_role("link", name="‹ 第1课 分数的加法"))
        assert page.locator("h1").inner_text().startswith("第1课")
    status, _, body = http(f"{base}/lessons/{SMALL}/l0/pdf/l0-pdf")
    assert status == 422
    sha = Library(data).catalog(SMALL).lesson("l0")["resources"][1]["sha256"]
    status, _, body = http(f"{base}/pdf-pages/{sha}/1.png")
    assert status == 422 and "damaged" in body.decode()
    after = sorted(p.name for p in cache_root(data).iterdir()) if cache_root(data).exists() else []
    assert after == before and sha not in after


@pytest.mark.parametrize("path", [
    f"/lessons/{CH}/no-such-lesson", "/lessons/no-such-channel/x", f"/browse/{CH}/no-such-node",
    "/browse/no-such-channel", f"/lessons/{CH}/{MATH_LESSON}/pdf/no-such-pdf",
    f"/lessons/{CH}/{MATH_LESSON}/pdf/{MATH_LESSON}-video",
])
def test_unknown_lesson_channel_or_node_is_a_tablet_404_with_a_way_back(device, path):
    base, _ = device
    status, headers, body = http(base + path, {"Accept-Language": "zh-CN"})
    page = body.decode()
    assert status == 404 and headers["Content-Type"].startswith("text/html")
    assert 'data-view="tablet"' in page and "找不到页面" in page
    assert 'href="/"' in page and "回到首页" in page
    if path.startswith(f"/lessons/{CH}/") or path.startswith(f"/browse/{CH}/"):
        assert f'href="/browse/{CH}"' in page  # back to that channel's lessons


def test_unknown_exercise_is_404_and_bad_answers_are_unanswered(device):
    base, _ = device
    lesson = f"/lessons/{CH}/{MATH_LESSON}"
    path, body = exercise_form(base, lesson, f"{MATH_LESSON}-video", {"q0": "1"})
    assert fetch(base + path, body)[0] == 404
    path, body = exercise_form(base, lesson, f"{MATH_LESSON}-exercise",
                               {"q0": "99", "q1": "x", "q2": "-1"})
    status, page, _ = fetch(base + path, body)
    assert status == 200
    assert "答对 0 题，共 3 题" in page.decode() and page.decode().count("未作答") == 3
    # No session, cookie or token needed: a browser with cookies off gets its answers marked.
    with urllib.request.urlopen(f"{base}{lesson}/exercise/{MATH_LESSON}-exercise?q0=1") as r:
        assert r.status == 200 and "Set-Cookie" not in r.headers
        assert "答对" in r.read().decode()


def test_follow_link_shows_only_when_a_join_url_brought_the_student(device, browser):
    base, _ = device
    lesson = f"{base}/lessons/{CH}/{MATH_LESSON}"
    assert "data-follow-start" not in http(lesson)[2].decode()
    # Without JavaScript following cannot work: the box says so and shows no buttons.
    with tablet_page(browser, js=False) as page:
        page.goto(lesson + "?follow=1")
        box = page.locator("#follow")
        assert box.get_attribute("data-follow-lesson") == MATH_LESSON
        assert "需要浏览器支持 JavaScript" in box.inner_text()
        assert not box.locator("[data-follow-start]").is_visible()
        assert not box.locator("[data-follow-stop]").is_visible()
        assert not page.get_by_role("link", name="跟随老师").is_visible()
    # With JavaScript, the page loads follow.js (the projector's; absent, it is a 404)
    # and nothing breaks either way.
    errors: list[str] = []
    with tablet_page(browser) as page:
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(lesson + "?follow=on", wait_until="networkidle")
        assert page.locator("#follow [data-follow-start]").count() == 1
        assert errors == []


def test_video_resumes_where_this_tablet_left_it(device, browser):
    base, _ = device
    lesson = f"{base}/lessons/{CH}/{MATH_LESSON}"
    with tablet_page(browser) as page:
        page.goto(lesson)
        video = page.locator("video")
        video.evaluate("v => { v.muted = true; return v.play(); }")
        page.wait_for_function("document.querySelector('video').currentTime > 0.2")
        video.evaluate("v => { v.pause(); v.currentTime = 3.2; }")
        page.wait_for_function(
            f"localStorage.getItem('ketang.resume.{MATH_LESSON}-video') === '3.2'")
        page.reload()
        page.wait_for_function("document.querySelector('video').readyState >= 1")
        page.wait_for_function("Math.abs(document.querySelector('video').currentTime - 3.2) < 0.5")
        # Another lesson's video starts at the beginning; a video played to the end restarts.
        page.goto(f"{base}/lessons/{CH}/primary-g1-math-pep-v1-u3-l2")
        page.wait_for_function("document.querySelector('video').readyState >= 1")
        assert page.locator("video").evaluate("v => v.currentTime") == 0
        page.goto(lesson)
        page.wait_for_function("document.querySelector('video').currentTime > 3")
        page.locator("video").evaluate("v => { v.muted = true; v.currentTime = 5.5; v.play(); }")
        page.wait_for_function("document.querySelector('video').ended", timeout=10000)
        page.reload()
        page.wait_for_function("document.querySelector('video').readyState >= 1")
        assert page.locator("video").evaluate("v => v.currentTime") == 0


def test_tablet_screenshots_of_each_page(device, browser, tmp_path):
    """Screenshots at 800×1280 (KETANG_SCREENSHOTS=1 refreshes the one docs/tablet.md shows)."""
    base, _ = device
    with tablet_page(browser) as page:
        for name, path in [("front", "/"), ("grade", f"/browse/{CH}/primary-g3"),
                           ("unit", f"/browse/{CH}/primary-g3-math"),
                           ("lesson", f"/lessons/{CH}/{MATH_LESSON}"),
                           ("search", "/search?q=" + urllib.parse.quote("分数")),
                           ("notfound", f"/lessons/{CH}/nope")]:
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            shot = shoot(page, name, tmp_path)
            assert shot.stat().st_size > 10_000
            # Nothing overflows the tablet's width.
            assert page.evaluate("document.documentElement.scrollWidth") <= TABLET["width"]


def test_the_language_switch_works_without_javascript(device, browser):
    base, _ = device
    with tablet_page(browser, js=False) as page:
        page.goto(f"{base}/lessons/{CH}/{MATH_LESSON}")
        assert page.get_by_role("button", name="提交答案").count() == 1
        tap(page, page.get_by_role("link", name="English"))
        # Back on the same lesson, in English; lesson titles stay as published.
        assert page.url.endswith(f"/lessons/{CH}/{MATH_LESSON}")
        assert page.get_by_role("button", name="Check my answers").count() == 1
        assert page.get_by_role("link", name="Read the task sheet").count() == 1
        assert "5以内的加法" in page.locator("h1").inner_text()


def test_audio_and_pictures_show_on_the_lesson_page(device, browser):
    base, _ = device
    with tablet_page(browser, js=False) as page:
        page.goto(f"{base}/lessons/{SMALL}/l0", wait_until="networkidle")
        audio = page.locator("audio")
        assert audio.get_attribute("data-usage-resource") == "l0-audio"
        assert audio.get_attribute("controls") is not None
        img = page.locator(".resource.image img")
        img.scroll_into_view_if_needed()
        page.wait_for_function("document.querySelector('.resource.image img').complete")
        assert img.evaluate("i => i.naturalWidth") > 100
        assert img.get_attribute("alt") == "板书"
