"""A teacher's day in real Chromium against `ketang serve` (issue 19, docs/projector.md):
she adds a class on the projector with keys only, projects lesson 1 to its end with a
presenter clicker only, and after a restart (the next day) the class's next lesson is
lesson 2, one press away. Two tablets following the projector answer its question and
the bars show 1 and 1; a tablet that answers twice is counted once. With
KETANG_SCREENSHOTS=1 it refreshes docs/screenshots/projector-class.png and
projector-answers.png."""

from __future__ import annotations

import re
import shutil

import pytest

from ..helpers import DEMO_PUB, running_server, write_config
from ..support.screenshots import shoot

pytestmark = pytest.mark.slow
CH = "cn-basic-edu-demo"
CURRICULUM = f"{CH}/primary-g1-math-pep"
L1, L2 = "primary-g1-math-pep-v1-u3-l1", "primary-g1-math-pep-v1-u3-l2"
HD = {"width": 1920, "height": 1080}
TABLET = {"width": 800, "height": 1280}
CLICKER = {"PageDown", "PageUp", "F5", "Escape", "b", "."}


@pytest.fixture(scope="module")
def device(tmp_path_factory, sample_bundle):
    """A config over a data folder holding the sample release (each test serves it)."""
    from content_cache.importer import import_bundle
    from content_cache.keys import load_trusted_keys
    from content_cache.library import Library

    tmp = tmp_path_factory.mktemp("teachers-day")
    keys = tmp / "keys"
    keys.mkdir()
    shutil.copyfile(DEMO_PUB, keys / DEMO_PUB.name)
    import_bundle(sample_bundle, Library(tmp / "data"), load_trusted_keys(keys))
    config = write_config(tmp / "ketang.toml", tmp / "data", keys)
    with open(config, "a", encoding="utf-8") as f:
        f.write(f'\n[drives]\nstatus_file = "{tmp}/drives.json"\n')
    return config


def focus(page) -> str:
    return page.evaluate("() => { const e = document.activeElement;"
                         " return e.getAttribute('data-node') || (e.hasAttribute("
                         "'data-next-lesson') ? 'next-lesson' : e.tagName); }")


def settled(page) -> None:
    """Wait until following has scrolled the tablet to the projector's part (a smooth
    scroll: a tap while it moves lands on another question, as a finger would)."""
    page.wait_for_selector(".ketang-followed")
    page.wait_for_function("() => { const y = window.scrollY, same = window.__y === y;"
                           " window.__y = y; return same; }", polling=250, timeout=8000)


def clicker(page, key: str) -> None:
    assert key in CLICKER
    page.keyboard.press(key)


def key_to(page, node: str, key: str = "ArrowRight", limit: int = 40) -> None:
    for _ in range(limit):
        if focus(page) == node:
            return
        page.keyboard.press(key)
    pytest.fail(f"never reached {node}; focus on {focus(page)}")


def test_a_class_added_with_keys_taught_with_a_clicker_and_its_next_lesson_the_next_day(
        device, browser, tmp_path):
    with running_server(device) as base:
        ctx = browser.new_context(viewport=HD, locale="zh-CN")
        page = ctx.new_page()
        page.goto(f"{base}/projector")
        assert focus(page) == "primary-g1"         # no class yet: the grades come first
        page.keyboard.press("End")                  # and "add a class" last
        assert focus(page) == "add-class"
        with page.expect_navigation():
            page.keyboard.press("Enter")
        key_to(page, CURRICULUM)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        key_to(page, "(2)班")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert re.search(r"/projector/classes/\d+$", page.url)
        assert "一年级(2)班 · 数学 · 人教版" in page.text_content("h1")
        assert focus(page) == L1                     # the next lesson, in focus

        # From here on, the clicker only.
        with page.expect_navigation():
            clicker(page, "Escape")
        assert focus(page).startswith("class-next-")
        with page.expect_navigation():
            clicker(page, "F5")
        assert f"/projector/lesson/{CH}/{L1}" in page.url and "class=" in page.url
        for _ in range(80):
            if focus(page) == "next-lesson":
                break
            clicker(page, "PageDown")
            page.wait_for_timeout(60)
        assert focus(page) == "next-lesson", "the clicker never reached the lesson's end"
        page.evaluate("() => window.ketangUsage.flush()")
        page.wait_for_function("window.ketangUsage.pending() === 0", timeout=15000)
        ctx.close()

    with running_server(device) as base:          # the next day
        ctx = browser.new_context(viewport=HD, locale="zh-CN")
        page = ctx.new_page()
        page.goto(f"{base}/projector")
        tile = page.locator("[data-nav]").first
        assert "一年级(2)班" in tile.text_content()
        assert f"/projector/lesson/{CH}/{L2}?class=" in tile.get_attribute("href")
        assert focus(page).startswith("class-next-")
        with page.expect_navigation():
            clicker(page, "F5")                       # one press
        assert f"/projector/lesson/{CH}/{L2}" in page.url
        # the class page: lesson 1 ticked, lesson 2 next (in focus)
        page.goto(f"{base}/projector")
        page.keyboard.press("ArrowRight")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert re.search(r"/projector/classes/\d+", page.url) and focus(page) == L2
        assert page.locator(f'[data-lesson="{L1}"]').get_attribute("data-taught") == "1"
        shoot(page, tmp_path, "class.png", "projector-class.png")
        ctx.close()


def test_typing_another_class_name_is_text_not_the_projector_keys(device, browser):
    with running_server(device) as base:
        ctx = browser.new_context(viewport=HD, locale="zh-CN")
        page = ctx.new_page()
        page.goto(f"{base}/projector/classes/new?curriculum={CURRICULUM}")
        url = page.url
        field = page.locator('input[name="other"]')
        field.focus()
        page.keyboard.type("(3)be班q")
        page.keyboard.press("Backspace")
        assert field.input_value() == "(3)be班"
        assert page.url == url                               # E did not switch language
        assert page.locator("#blank").is_hidden()             # B did not blank the screen
        page.keyboard.press("Escape")                         # leaves the field, stays here
        assert focus(page) != "INPUT" and page.url == url
        page.keyboard.press("b")                              # the keys work again
        assert page.locator("#blank").is_visible()
        ctx.close()


def test_two_tablets_answer_the_projected_question_and_the_bars_show_1_and_1(
        device, browser, tmp_path):
    with running_server(device) as base:
        proj_ctx = browser.new_context(viewport=HD, locale="zh-CN")
        proj = proj_ctx.new_page()
        proj.goto(f"{base}/projector/lesson/{CH}/{L1}?part=3&page=1")
        proj.wait_for_function("document.querySelector('.question:not([hidden]) .live-count')")
        tablets = []
        for _ in range(2):
            ctx = browser.new_context(viewport=TABLET, locale="zh-CN")
            t = ctx.new_page()
            t.goto(f"{base}/lessons/{CH}/{L1}?follow=1")
            t.locator("[data-follow-start]").first.click()
            t.wait_for_function("window.ketangFollow.state && ketangFollow.state.round "
                                "&& ketangFollow.state.kind === 'exercise'", timeout=8000)
            settled(t)
            tablets.append((ctx, t))
        a, b = tablets[0][1], tablets[1][1]
        a.locator('input[name="q0"][value="1"]').click()
        a.wait_for_selector(".live-answer", timeout=8000)
        b.locator('input[name="q0"][value="2"]').click()
        b.wait_for_selector(".live-answer", timeout=8000)
        # a answers again (a new page: its radios are fresh): counted once, its first kept
        a.reload()
        a.wait_for_function("window.ketangFollow.state && ketangFollow.state.round",
                            timeout=8000)
        settled(a)
        a.locator('input[name="q0"][value="0"]').click()
        a.wait_for_selector(".live-answer", timeout=8000)
        assert "B" in a.text_content(".live-answer")
        proj.wait_for_function("document.querySelector('.question:not([hidden]) "
                               ".live-count .n').textContent === '2'", timeout=8000)
        clicker(proj, "F5")                            # reveal: the answer and the bars
        proj.wait_for_function("document.querySelector('.question:not([hidden]) .live-bar')"
                               ".offsetHeight > 0")
        counts = proj.evaluate("""() => Array.from(document.querySelectorAll(
            '.question:not([hidden]) .choices > li')).map(r => r.getAttribute('data-count'))""")
        assert counts == ["0", "1", "1"]
        widths = proj.evaluate("""() => Array.from(document.querySelectorAll(
            '.question:not([hidden]) .live-bar .fill'))
            .map(f => f.getBoundingClientRect().width)""")
        assert widths[0] == 0 and abs(widths[1] - widths[2]) < 1 and widths[1] > 150
        height = proj.evaluate("document.querySelector('.question:not([hidden]) .live-bar .track')"
                               ".getBoundingClientRect().height")
        assert height >= 40                            # read from the back row
        shoot(proj, tmp_path, "answers.png", "projector-answers.png")
        for ctx, _t in tablets:
            ctx.close()
        proj_ctx.close()
