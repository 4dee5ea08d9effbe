"""A whole lesson on the projector with a four-button presenter clicker, in real Chromium
against `ketang serve`: only PageUp, PageDown, F5, Esc, B and "." (what clickers send).
Also the keyboard's extras: the interactive without a mouse, the video's seek, full
screen and big time, and a task sheet fit to the screen's width with pan and zoom."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from ..helpers import served_sample

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None and os.environ.get("CI") != "true",
                       reason="Debian's chromium is missing"),
]
ROOT = Path(__file__).resolve().parents[2]
CH = "cn-basic-edu-demo"
L1 = "primary-g1-chinese-tongbian-v1-u1-l1"
L2 = "primary-g1-chinese-tongbian-v1-u1-l2"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required"]
HD = {"width": 1920, "height": 1080}
GREEN = "rgb(31, 122, 53)"


@pytest.fixture(scope="module")
def drive_status(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("drives") / "drives.json"


@pytest.fixture(scope="module")
def served(tmp_path_factory, sample_bundle, drive_status):
    tmp = tmp_path_factory.mktemp("clicker")
    with served_sample(tmp, sample_bundle, f'[drives]\nstatus_file = "{drive_status}"') as (
            url, _data):
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport=HD, locale="zh-CN")
    pg = ctx.new_page()
    yield pg
    ctx.close()


def press(page, *keys: str) -> None:
    for k in keys:
        page.keyboard.press(k)


def shown(page) -> dict:
    return page.evaluate("""() => {
        const s = document.querySelector('section.part:not([hidden])');
        const e = document.activeElement;
        return {kind: s && s.dataset.kind, part: s && s.dataset.part,
                url: location.pathname + location.search,
                focus: e.getAttribute('data-node') || e.getAttribute('data-part')
                       || (e.hasAttribute('data-next-lesson') ? 'next-lesson' : e.tagName)}; }""")


def video_playing(page) -> bool:
    return page.evaluate("() => { const v = document.querySelector("
                         "'section.part:not([hidden]) video'); return !!v && !v.paused; }")


def answer_shown(page) -> bool:
    return page.evaluate("""() => { const li = document.querySelector(
        '.question:not([hidden]) li[data-correct="true"]');
        return getComputedStyle(li).backgroundColor; }""") == GREEN


CLICKER = {"PageDown", "PageUp", "F5", "Escape", "b", "."}


def clicker(page, key: str) -> None:
    """One press of a clicker button; a navigation, if any, is waited for by the caller."""
    assert key in CLICKER
    page.keyboard.press(key)


def test_a_clicker_runs_a_whole_lesson(served, page):
    page.goto(f"{served}/projector")
    assert shown(page)["focus"] == "primary-g1"
    clicker(page, "PageDown")
    assert shown(page)["focus"] == "primary-g3"
    clicker(page, "PageUp")
    with page.expect_navigation():
        clicker(page, "F5")                      # "start slideshow" opens the tile
    assert page.url.endswith(f"/projector/browse/{CH}/primary-g1")
    assert shown(page)["focus"] == L1
    with page.expect_navigation():
        clicker(page, "F5")
    assert f"/projector/lesson/{CH}/{L1}" in page.url
    assert shown(page)["kind"] == "video"

    # F5 plays the video, F5 pauses it; its time shows in big type.
    page.evaluate("() => { const v = document.querySelector('video');"
                  " return v.readyState >= 1 || new Promise(r => v.onloadedmetadata = r); }")
    clicker(page, "F5")
    page.wait_for_function("document.querySelector('video').currentTime > 0.5", timeout=10000)
    assert video_playing(page)
    clicker(page, "F5")
    assert not video_playing(page)
    time_box = page.locator("section.part-video .video-time")
    assert time_box.is_visible() and "/" in time_box.text_content()
    assert float(time_box.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 48

    # PageDown pages through the task sheet (panning down a page as wide as the screen),
    # then the interactive, then the exercise.
    clicker(page, "PageDown")
    assert shown(page)["kind"] == "pdf"
    # Until the page image has arrived there is nothing to pan (it has no size before it
    # loads), so under load PageDown would turn straight to the interactive.
    page.wait_for_function("() => [...document.querySelectorAll("
                           "'section.part:not([hidden]) img.pdf-page:not([hidden])')]"
                           ".every(i => i.complete && i.naturalHeight > 0)")
    presses = 0
    while shown(page)["kind"] == "pdf":
        clicker(page, "PageDown")
        presses += 1
        assert presses < 20
    assert presses >= 2                          # a fit-to-width page needs panning
    assert shown(page)["kind"] == "html5"
    clicker(page, "PageDown")
    assert shown(page)["kind"] == "exercise"
    assert not answer_shown(page)
    clicker(page, "F5")                          # reveal each answer
    assert answer_shown(page)
    clicker(page, "PageDown")
    assert "page=2" in shown(page)["url"] and not answer_shown(page)
    clicker(page, "F5")
    assert answer_shown(page)

    # B and "." blank the screen; any button brings it back and does nothing else.
    clicker(page, "b")
    assert page.locator("#blank").is_visible()
    clicker(page, "PageDown")
    assert not page.locator("#blank").is_visible() and "page=2" in shown(page)["url"]
    clicker(page, ".")
    assert page.locator("#blank").is_visible()
    clicker(page, "F5")
    assert not page.locator("#blank").is_visible() and answer_shown(page)

    # Past the last question: the next lesson is offered (focused), then opened.
    clicker(page, "PageDown")
    assert shown(page)["focus"] == "next-lesson"
    assert page.locator("[data-next-lesson]").is_visible()
    clicker(page, "PageUp")                      # changed its mind: back on the lesson
    assert shown(page)["focus"] == "3" and "page=2" in shown(page)["url"]
    clicker(page, "PageDown")
    with page.expect_navigation():
        clicker(page, "PageDown")
    assert f"/projector/lesson/{CH}/{L2}" in page.url
    assert shown(page)["kind"] == "video"

    # Esc first undoes (pauses the video), then goes back to the unit's lessons.
    clicker(page, "F5")
    page.wait_for_function("!document.querySelector('video').paused", timeout=10000)
    clicker(page, "Escape")
    assert not video_playing(page) and f"/lesson/{CH}/{L2}" in page.url
    with page.expect_navigation():
        clicker(page, "Escape")
    assert page.url.endswith(f"/projector/browse/{CH}/primary-g1?focus={L2}")
    assert shown(page)["focus"] == L2


def test_the_key_hints_name_the_clicker_buttons_and_every_key(served, page):
    page.goto(f"{served}/projector/lesson/{CH}/{L1}")
    hints = page.locator("footer.keys")
    text = hints.text_content()
    assert "翻页笔" in text
    for key in ("PageDown", "PageUp", "F5", "Esc", "B", "Enter", "J", "L", "F", "Q", "Tab",
                "Home", "0"):
        assert hints.locator("kbd", has_text=key).count() >= 1, key
    assert hints.is_visible()
    page.goto(f"{served}/projector")
    text = page.locator("footer.keys").text_content()
    assert "翻页笔" in text and "F5" in text


SHOTS = Path(os.environ["KETANG_SCREENSHOTS"]) if os.environ.get("KETANG_SCREENSHOTS") else None


def shoot(page, name: str, tmp_path: Path, **kw) -> Path:
    """A screenshot in tmp_path, kept in $KETANG_SCREENSHOTS when that is set."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), **kw)
    if SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SHOTS / path.name)
    return path


def test_the_interactive_is_used_without_a_mouse(served, page):
    page.goto(f"{served}/projector/lesson/{CH}/{L1}?part=2")
    assert shown(page)["kind"] == "html5"
    frame_el = page.locator("iframe.lesson-app")
    assert frame_el.get_attribute("tabindex") == "0"
    app = page.frame_locator("iframe.lesson-app")
    app.locator("button.card").first.wait_for()
    press(page, "Enter")                         # the keyboard goes into the app
    assert page.evaluate("document.activeElement.tagName") == "IFRAME"
    assert frame_el.evaluate("e => getComputedStyle(e).outlineStyle") == "solid"
    press(page, "Tab", "Tab", "Enter")           # its second card, pressed
    assert "dì" in app.locator(".detail").text_content()
    assert "1 / 6" in app.locator(".hint").text_content()
    for _ in range(12):                          # Tab past its last button: back out
        if page.evaluate("document.activeElement.tagName") != "IFRAME":
            break
        press(page, "Tab")
    assert page.evaluate("document.activeElement.tagName") != "IFRAME"
    press(page, "PageDown")                      # the clicker works again
    assert shown(page)["kind"] == "exercise"


def test_the_video_seeks_goes_full_screen_and_shows_its_time(served, page, tmp_path):
    page.goto(f"{served}/projector/lesson/{CH}/{L1}")
    video = page.locator("section.part-video video")
    video.evaluate("v => v.readyState >= 1 || new Promise(r => v.onloadedmetadata = r)")
    duration = video.evaluate("v => v.duration")
    assert duration > 5, "the sample video is long enough to seek by 5 s"
    press(page, "l")
    page.wait_for_function("document.querySelector('video').currentTime >= 4.9")
    time_box = page.locator("section.part-video .video-time")
    assert time_box.is_visible()
    assert time_box.text_content().startswith("0:05 / 0:0")
    assert float(time_box.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 48
    press(page, "j")
    page.wait_for_function("document.querySelector('video').currentTime < 0.1")
    press(page, "f")                             # the video alone on the screen
    box = video.bounding_box()
    assert box["width"] == HD["width"] and box["height"] == HD["height"]
    assert not page.locator("nav.parts").is_visible()
    assert not page.locator("footer.keys").is_visible()
    press(page, "Escape")                        # Esc leaves full screen, stays in the lesson
    assert page.locator("nav.parts").is_visible() and "/lesson/" in page.url


def test_a_task_sheet_page_fits_the_width_and_pans_and_zooms(served, page, tmp_path):
    page.goto(f"{served}/projector/lesson/{CH}/{L1}?part=1")
    assert shown(page)["kind"] == "pdf"
    img = page.locator("section.part-pdf img.pdf-page[data-page='1']")
    img.evaluate("i => i.complete || new Promise(r => i.onload = r)")
    box = img.bounding_box()
    assert box["width"] == HD["width"]            # fit to width: as wide as the screen
    assert box["height"] > HD["height"] * 1.2     # an A4 page, taller than the screen
    sheet = page.locator("section.part-pdf")
    top = lambda: sheet.evaluate("s => s.scrollTop")  # noqa: E731
    left = lambda: sheet.evaluate("s => s.scrollLeft")  # noqa: E731
    press(page, "PageDown")
    assert top() > 500 and shown(page)["kind"] == "pdf"
    shot = shoot(page, "projector-task-sheet", tmp_path)   # docs/projector.md shows it
    assert shot.stat().st_size > 50_000
    press(page, "PageUp")
    assert top() == 0
    press(page, "+")                              # zoom in: wider than the screen, pan right
    assert img.bounding_box()["width"] > HD["width"] * 1.2
    press(page, "ArrowRight")
    assert left() > 0
    press(page, "0")                              # back to fit to width
    assert img.bounding_box()["width"] == HD["width"] and left() == 0
    press(page, "F5")                             # the whole page
    whole = img.bounding_box()
    stage = page.locator(".stage").bounding_box()
    assert whole["height"] == pytest.approx(stage["height"], abs=2)
    assert whole["width"] < HD["width"] / 2
    press(page, "Escape")                         # undo the zoom, stay on the sheet
    assert img.bounding_box()["width"] == HD["width"] and "/lesson/" in page.url


# A wait, not a speed target: the tablet hears of a step at its next EventSource reconnect,
# which a loaded CI machine delays by seconds.
FOLLOW_WAIT = 20000


def test_a_following_tablet_follows_every_part_page_and_question(served, browser, page,
                                                                  tmp_path):
    """The sheet's page on the reader (which loads follow.js), back to the lesson for the
    interactive, then each exercise question; a student who opened the sheet keeps following."""
    page.goto(f"{served}/projector/lesson/{CH}/{L1}")
    ctx = browser.new_context(viewport={"width": 800, "height": 1280}, locale="zh-CN")
    tablet = ctx.new_page()

    def marked() -> str:
        return tablet.evaluate("""() => { const e = document.querySelector('.ketang-followed');
            if (!e) return ''; const x = e.querySelector('[data-usage-resource]');
            return e.tagName === 'LI' ? 'question ' + (Array.prototype.indexOf.call(
                e.parentNode.children, e) + 1) : (x || e).getAttribute('data-usage-resource')
                + (x && x.dataset.usagePdfPage ? ' page ' + x.dataset.usagePdfPage : ''); }""")

    try:
        tablet.goto(f"{served}/lessons/{CH}/{L1}?follow=1")
        tablet.locator("#follow [data-follow-start]").click()
        tablet.wait_for_function("document.querySelector('.ketang-followed')", timeout=FOLLOW_WAIT)
        assert marked() == f"{L1}-video"
        # The teacher shows the task sheet: the tablet opens the sheet's reader at that page.
        press(page, "PageDown")
        tablet.wait_for_url(re.compile(rf"/lessons/{CH}/{L1}/pdf/{L1}-pdf\?page=1"),
                            timeout=FOLLOW_WAIT)
        tablet.wait_for_function("document.querySelector('.ketang-followed')", timeout=FOLLOW_WAIT)
        assert marked() == f"{L1}-pdf page 1"
        assert tablet.locator("[data-follow-state='following']").is_visible()
        shot = shoot(tablet, "tablet-task-sheet", tmp_path)
        assert shot.stat().st_size > 30_000
        # On to the interactive: back to the lesson page, at the interactive.
        while shown(page)["kind"] == "pdf":
            press(page, "PageDown")
        tablet.wait_for_url(re.compile(rf"/lessons/{CH}/{L1}\?follow="), timeout=FOLLOW_WAIT)
        tablet.wait_for_function(f"document.querySelector('.ketang-followed [data-usage-resource="
                                 f"\"{L1}-html5\"]')", timeout=FOLLOW_WAIT)
        # The exercise, question by question.
        press(page, "PageDown")
        tablet.wait_for_function("document.querySelector('li.ketang-followed')",
                                 timeout=FOLLOW_WAIT)
        assert marked() == "question 1"
        press(page, "PageDown")
        tablet.wait_for_function("(document.querySelector('li.ketang-followed') || {})"
                                 ".previousElementSibling", timeout=FOLLOW_WAIT)
        assert marked() == "question 2"
        # Back to the sheet: the tablet reader shows it again, still following.
        press(page, "Home", "PageDown")
        tablet.wait_for_url(re.compile(r"/pdf/.*page=1"), timeout=FOLLOW_WAIT)
        tablet.wait_for_function("document.querySelector('[data-follow-state=\"following\"]')",
                                 timeout=FOLLOW_WAIT)
    finally:
        ctx.close()


def test_without_javascript_no_follow_buttons(served, browser):
    ctx = browser.new_context(viewport={"width": 800, "height": 1280}, locale="zh-CN",
                              java_script_enabled=False)
    tablet = ctx.new_page()
    try:
        for url in (f"/lessons/{CH}/{L1}?follow=1", f"/lessons/{CH}/{L1}/pdf/{L1}-pdf?follow=1"):
            tablet.goto(served + url)
            assert tablet.locator("[data-follow-start]:visible, [data-follow-stop]:visible"
                                  ).count() == 0, url
            assert tablet.get_by_text("跟随老师", exact=True).count() == 0 or not \
                tablet.get_by_text("跟随老师", exact=True).first.is_visible()
    finally:
        ctx.close()


def test_e_switches_the_projector_language_on_the_same_screen(served, page):
    page.goto(f"{served}/projector/lesson/{CH}/{L1}")
    press(page, "PageDown")                       # the task sheet: part=1 in the URL
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("footer.keys [data-lang]").text_content() == "English"
    with page.expect_navigation():
        press(page, "e")
    assert page.locator("html").get_attribute("lang") == "en"
    assert "part=1" in page.url and shown(page)["kind"] == "pdf"
    assert "Clicker" in page.locator("footer.keys").text_content()
    with page.expect_navigation():
        press(page, "E")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "翻页笔" in page.locator("footer.keys").text_content()


def test_the_drive_banner_does_not_cover_the_lesson(served, page, drive_status):
    from appliance.drives.status import DriveStatus

    status = DriveStatus(drive_status)
    page.goto(f"{served}/projector/lesson/{CH}/{L1}?part=1")
    parts_before = page.locator("nav.parts").bounding_box()
    try:
        status.set("sdb1", "importing", done=3_200_000_000, total=11_000_000_000)
        page.wait_for_function("document.getElementById('drives').textContent.length > 5",
                               timeout=10000)
        banner = page.locator("#drives").bounding_box()
        for sel in ("header.lesson-bar", ".stage", "nav.parts", "footer.keys"):
            box = page.locator(sel).bounding_box()
            overlap = min(banner["y"] + banner["height"], box["y"] + box["height"]) - max(
                banner["y"], box["y"])
            assert overlap <= 0, f"the banner covers {sel}"
            assert box["y"] + box["height"] <= HD["height"] + 0.5, f"{sel} is pushed off screen"
        assert page.locator("nav.parts").bounding_box()["height"] == parts_before["height"]
        assert page.locator("img.pdf-page[data-page='1']").bounding_box()["width"] == HD["width"]
    finally:
        status.forget("sdb1")


def test_a_tablet_does_not_ask_again_for_the_scripts_and_styles(served, browser):
    """The second page reads style.css, tablet.js, usage.js and follow.js from its cache."""
    ctx = browser.new_context(viewport={"width": 800, "height": 1280}, locale="zh-CN")
    tablet = ctx.new_page()
    try:
        tablet.goto(f"{served}/lessons/{CH}/{L1}", wait_until="load")
        tablet.goto(f"{served}/lessons/{CH}/{L2}", wait_until="load")
        entries = tablet.evaluate("""() => performance.getEntriesByType('resource')
            .filter(e => e.name.indexOf('/ui/') >= 0)
            .map(e => [e.name, e.transferSize])""")
        assert len(entries) >= 4
        assert [e for e in entries if e[1] != 0] == [], "fetched or revalidated over the network"
    finally:
        ctx.close()


SMALL_TARGETS = """() => Array.from(document.querySelectorAll(
        'a[href], button, input, select, textarea, label'))
    .filter(e => e.offsetParent !== null && !(e.tagName === 'INPUT' && e.closest('label')))
    .map(e => { const r = e.getBoundingClientRect();
                return [e.tagName + ' ' + (e.textContent || e.value || '').trim().slice(0, 20),
                        Math.round(r.width), Math.round(r.height)]; })
    .filter(x => x[1] < 44 || x[2] < 44)"""


def test_tablet_touch_targets_are_at_least_44_px(served, browser):
    ctx = browser.new_context(viewport={"width": 800, "height": 1280}, locale="zh-CN")
    tablet = ctx.new_page()
    try:
        for url in ("/", "/browse/cn-basic-edu-demo/primary-g1", f"/lessons/{CH}/{L1}",
                    f"/lessons/{CH}/{L1}/pdf/{L1}-pdf", "/search?q=shu", "/nope"):
            tablet.goto(served + url)
            assert tablet.evaluate(SMALL_TARGETS) == [], url
    finally:
        ctx.close()


def test_exercise_numbers_sit_by_their_question(served, browser):
    ctx = browser.new_context(viewport={"width": 800, "height": 1280}, locale="zh-CN")
    tablet = ctx.new_page()
    try:
        tablet.goto(f"{served}/lessons/{CH}/{L1}")
        rows = tablet.evaluate("""() => Array.from(document.querySelectorAll(
            'ol.questions > li')).map(li => {
              const n = li.querySelector('.qno'), lg = li.querySelector('legend'),
                    c = li.querySelector('.choice');
              return n && [n.textContent.trim(), n.getBoundingClientRect().top,
                           lg.getBoundingClientRect().top, lg.getBoundingClientRect().bottom,
                           c.getBoundingClientRect().top,
                           getComputedStyle(li).listStyleType]; })""")
        assert [r[0] for r in rows] == ["1.", "2."]
        for _n, top, lg_top, lg_bottom, choice_top, marker in rows:
            assert lg_top - 1 <= top < lg_bottom <= choice_top + 1  # on the question's line
            assert marker == "none"                                 # no second number
    finally:
        ctx.close()
