"""A class screen's first row in real Chromium against `ketang serve` (issue 20,
docs/projector.md, "Classes"): the next lesson opened where the class stopped, "others
went on to" from the school's co-usage, and "continue" for a lesson begun from there,
each one clicker press away. With KETANG_SCREENSHOTS=1 it refreshes
docs/screenshots/projector-class-recommend.png."""

from __future__ import annotations

import json
import urllib.request
import uuid
from datetime import UTC, datetime

import pytest

from appliance.config import load_settings
from appliance.usage import cousage

from ..helpers import served_sample
from ..support.screenshots import shoot
from .test_classes_e2e import CH, HD, L1, L2, clicker, focus

pytestmark = pytest.mark.slow
SCIENCE = "primary-g1-science-jiaoke-v1-u1-l1"      # 我们知道的植物
CHINESE = "primary-g1-chinese-tongbian-v1-u1-l1"    # 天地人


def post(url: str, doc: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def events(base: str, *docs: dict) -> None:
    now = datetime.now(UTC).isoformat()
    post(f"{base}/api/v1/usage", {"events": [dict({
        "id": str(uuid.uuid4()), "time": now, "actor": "projector-0001", "view": "projector",
        "channel": CH}, **d) for d in docs]})


def parts(lesson: str, which: range, k: int) -> list[dict]:
    names = ("video", "pdf", "html5", "exercise")
    return [{"type": "part-projected", "resource": f"{lesson}-{names[i]}", "lesson": lesson,
             "extra": {"class": k}} for i in which]


def test_next_others_and_continue_on_the_class_screen_one_press_each(
        tmp_path, sample_bundle, browser):
    with served_sample(tmp_path, sample_bundle) as (base, data):
        k = post(f"{base}/api/v1/classes", {"name": "(2)班", "channel": CH,
                                             "node": "primary-g1-math-pep"})["id"]
        events(base, *parts(L1, range(4), k), *parts(L2, range(2), k))   # L1 taught, L2 begun
        for n, went in enumerate([SCIENCE] * 4 + [CHINESE] * 2):          # tablets' co-usage
            events(base, *[{"type": "lesson-opened", "resource": lesson, "view": "tablet",
                            "actor": f"tablet-{n:04d}"} for lesson in (L1, went)])
        assert cousage.refresh(load_settings(tmp_path / "ketang.toml")) > 0

        ctx = browser.new_context(viewport=HD, locale="zh-CN")
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/projector/classes/{k}")
        assert focus(page) == L2                     # the next lesson, where it stopped
        assert page.locator(".rec-next a").get_attribute("href").endswith("&part=2")
        assert "从第 3 部分继续" in page.locator(".rec-next").inner_text()
        others = page.locator(".rec-others a")
        assert [others.nth(i).get_attribute("data-node") for i in range(others.count())] \
            == [SCIENCE, CHINESE]
        assert "其他老师和班级接着上了" in page.locator(".rec-others").inner_text()

        clicker(page, "PageDown")                    # others went on to: science
        assert focus(page) == SCIENCE
        with page.expect_navigation():
            clicker(page, "F5")
        assert f"/projector/lesson/{CH}/{SCIENCE}?" in page.url and f"class={k}" in page.url
        page.wait_for_function("window.ketangUsage && window.ketangUsage.pending() > 0")
        page.evaluate("() => window.ketangUsage.flush()")
        page.wait_for_function("window.ketangUsage.pending() === 0", timeout=15000)
        with page.expect_navigation():
            clicker(page, "Escape")                  # back to the class: science begun
        assert f"/projector/classes/{k}" in page.url
        cont = page.locator(".rec-continue a")
        assert cont.get_attribute("data-node") == SCIENCE
        assert cont.get_attribute("href") == f"/projector/lesson/{CH}/{SCIENCE}?class={k}" \
                                             "&part=1"
        assert [others.nth(i).get_attribute("data-node") for i in range(others.count())] \
            == [CHINESE]
        shoot(page, tmp_path, "class.png", "projector-class-recommend.png")

        page.keyboard.press("Home")                  # the next lesson, one press
        assert focus(page) == L2
        with page.expect_navigation():
            clicker(page, "F5")
        assert f"/projector/lesson/{CH}/{L2}" in page.url and "part=2" in page.url
        assert page.locator(".part-tab").nth(2).get_attribute("aria-current") == "step"
        assert errors == []
        ctx.close()
