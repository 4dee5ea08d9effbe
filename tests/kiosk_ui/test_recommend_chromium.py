""""What next" on the tablet's lesson page in real Chromium against `ketang serve`:
"continue" kept in this tablet's browser only, next and others without JavaScript."""

from __future__ import annotations

import pytest

from ..helpers import served_sample
from .test_tablet import tablet_page, tap

pytestmark = pytest.mark.slow
CH = "cn-basic-edu-demo"
A = "primary-g1-math-pep-v1-u3-l1"
B = "primary-g1-math-pep-v1-u3-l2"


@pytest.fixture(scope="module")
def base(tmp_path_factory, sample_bundle):
    with served_sample(tmp_path_factory.mktemp("rec"), sample_bundle) as (url, _data):
        yield url


def test_continue_lists_a_lesson_left_unfinished_until_it_is_watched(base, browser):
    errors: list[str] = []
    with tablet_page(browser) as page:
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/lessons/{CH}/{B}")
        assert page.locator("[data-continue]").is_hidden()      # nothing unfinished yet
        page.goto(f"{base}/lessons/{CH}/{A}")
        video = page.locator("video")
        video.evaluate("v => { v.muted = true; return v.play(); }")
        page.wait_for_function("document.querySelector('video').currentTime > 0.2")
        video.evaluate("v => v.pause()")
        page.goto(f"{base}/lessons/{CH}/{B}")
        box = page.locator("[data-continue]")
        assert box.is_visible()
        assert box.locator("a").get_attribute("href") == f"/lessons/{CH}/{A}"
        assert "5以内的加法" in box.inner_text()
        # Watched to the end: no longer unfinished.
        page.goto(f"{base}/lessons/{CH}/{A}")
        page.locator("video").evaluate(
            "v => { v.muted = true; v.currentTime = v.duration - 0.3; return v.play(); }")
        page.wait_for_function("document.querySelector('video').ended", timeout=10000)
        page.goto(f"{base}/lessons/{CH}/{B}")
        assert page.locator("[data-continue]").is_hidden()
    assert errors == []


def test_next_in_the_course_works_without_javascript(base, browser):
    with tablet_page(browser, js=False) as page:
        page.goto(f"{base}/lessons/{CH}/{A}")
        assert page.locator("[data-continue]").is_hidden()
        nxt = page.locator(".rec-next a").first
        assert nxt.get_attribute("href") == f"/lessons/{CH}/{B}"
        tap(page, nxt)
        assert page.url.endswith(f"/lessons/{CH}/{B}")
