"""A questionnaire answered on the dashboard in real Chromium against `ketang serve`,
stored once, and the usage charts drawn as images."""

from __future__ import annotations

import pytest

from appliance import auth as admin_auth
from appliance.usage.db import UsageDB
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.publisher import publish

from ..helpers import running_server, write_config
from .test_admin_e2e import PASSWORD, log_in
from .test_questionnaires import CHANNEL, questionnaire, source_with

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path, publisher_key):
    pair, trusted = publisher_key
    publish(source_with(tmp_path, questionnaire()), CHANNEL, 1, pair.private_path,
            tmp_path / "bundle")
    data = tmp_path / "data"
    import_bundle(tmp_path / "bundle", Library(data), load_trusted_keys(trusted))
    admin_auth.set_password(data, PASSWORD)
    with running_server(write_config(tmp_path / "ketang.toml", data, trusted)) as url:
        yield url, data


def answers_stored(data) -> int:
    db = UsageDB(data)
    try:
        return db.db.execute_sql("SELECT count(*) FROM event WHERE type ="
                                 " 'questionnaire-answered'").fetchone()[0]
    finally:
        db.close()


def test_a_teacher_answers_on_the_dashboard(served, browser):
    base, data = served
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page = context.new_page()
    try:
        log_in(page, base)
        link = page.locator("#section-questionnaires a")
        assert link.inner_text() == "秋季教师问卷"
        link.click()
        page.wait_for_load_state()
        page.check("input[name=use][value='0']")
        page.check("input[name=parts][value='1']")
        page.check("input[name=parts][value='2']")
        page.check("input[name=useful][value='5']")
        page.fill("textarea[name=wish]", "多一些实验视频")
        page.click("form.questionnaire button[type=submit]")
        page.wait_for_load_state()
        assert "您的回答已保存" in page.content()
        assert answers_stored(data) == 1
        page.go_back()                          # the form again, submitted again
        page.wait_for_load_state()
        if page.locator("form.questionnaire button").count():
            page.click("form.questionnaire button[type=submit]")
            page.wait_for_load_state()
        assert answers_stored(data) == 1
        page.goto(f"{base}/admin/")
        assert "已回答" in page.locator("#section-questionnaires").inner_text()
        charts = page.locator("#section-charts img")
        assert charts.count() == 5
        page.wait_for_function("[...document.querySelectorAll('#section-charts img')]"
                               ".every(i => i.complete && i.naturalWidth > 0)")
    finally:
        context.close()


def answer_rows(data) -> list[tuple[str, str]]:
    db = UsageDB(data)
    try:
        return db.db.execute_sql("SELECT id, extra FROM event WHERE type ="
                                 " 'questionnaire-answered'").fetchall()
    finally:
        db.close()


def test_a_teacher_answers_on_the_projector_with_the_clicker_keys_only(served, browser,
                                                                        tmp_path):
    """The first screen shows the open questionnaire; the clicker's keys (and a
    keyboard's arrows) answer it; bad keys change nothing; stored once, and with Ralph
    present, once in the LRS after two uploads."""
    import json

    from appliance.config import load_settings
    from appliance.usage.upload import upload

    from ..support.lrs import ralph_missing, running_ralph
    from ..support.needs import require
    from ..support.screenshots import shoot
    from .test_classes_e2e import HD, clicker, focus, key_to

    base, data = served
    ctx = browser.new_context(viewport=HD, locale="zh-CN")
    page = ctx.new_page()
    try:
        page.goto(f"{base}/projector")
        tile = f"questionnaire-{CHANNEL}/q-autumn"
        assert "秋季教师问卷" in page.locator(f'[data-node="{tile}"]').inner_text()
        assert focus(page) != tile                       # it does not take the first press
        shoot(page, tmp_path, "home.png")
        key_to(page, tile, "PageUp")
        with page.expect_navigation():
            clicker(page, "F5")
        assert "/projector/questionnaires/" in page.url
        assert focus(page) == "use-0"
        clicker(page, "F5")                              # chosen, then Esc: nothing kept
        with page.expect_navigation():
            clicker(page, "Escape")
        assert page.url.endswith("/projector") and answer_rows(data) == []
        key_to(page, tile, "PageUp")
        with page.expect_navigation():
            clicker(page, "F5")
        shoot(page, tmp_path, "questionnaire-empty.png")

        def chosen() -> list[str]:
            return page.evaluate("() => [...document.querySelectorAll('input:checked')]"
                                 ".map(i => i.name + '=' + i.value)")

        # keys that mean nothing here change nothing (and blanking comes back as it was)
        for key in ("x", "7", "q", "Delete", "Tab"):
            page.keyboard.press(key)
        page.keyboard.press("Shift+Tab")
        clicker(page, "b")
        clicker(page, "PageDown")                       # any key: the picture back only
        assert chosen() == [] and page.locator("#blank").is_hidden()
        page.locator('[data-node="use-0"]').focus()

        clicker(page, "PageDown")
        clicker(page, "F5")                             # use = 1 (每周)
        page.keyboard.press("ArrowRight")
        page.keyboard.press("Enter")                    # use = 2 …
        page.keyboard.press("ArrowLeft")
        page.keyboard.press(" ")                        # … and back to 1: one radio
        key_to(page, "parts-0", "PageDown")
        clicker(page, "F5")
        key_to(page, "parts-2", "PageDown")
        clicker(page, "F5")
        key_to(page, "parts-1", "PageUp")
        clicker(page, "F5")
        clicker(page, "F5")                             # on and off again
        key_to(page, "useful-4", "PageDown")
        clicker(page, "F5")
        assert chosen() == ["use=1", "parts=0", "parts=2", "useful=4"]
        key_to(page, "wish", "PageDown")
        page.keyboard.type("B 多些实验")                # typed text is text, not keys
        assert page.locator("#blank").is_hidden()
        clicker(page, "PageDown")
        assert focus(page) == "send"
        assert answer_rows(data) == []                  # nothing stored before "Send"
        shoot(page, tmp_path, "questionnaire.png", "projector-questionnaire.png")
        with page.expect_navigation():
            clicker(page, "F5")
        assert "saved=1" in page.url and "您的回答已保存" in page.content()
        (row,) = answer_rows(data)
        assert json.loads(row[1])["answers"] == {"use": 1, "parts": [0, 2], "useful": 4,
                                                 "wish": "B 多些实验"}
        # the form again (Back), sent again: still one answer
        page.go_back()
        page.wait_for_load_state()
        if page.locator('[data-node="send"]').count():
            page.locator('[data-node="send"]').focus()
            with page.expect_navigation():
                clicker(page, "F5")
        assert len(answer_rows(data)) == 1
        page.goto(f"{base}/projector")
        assert page.locator(f'[data-node="{tile}"]').count() == 0
    finally:
        ctx.close()

    why = ralph_missing()
    if why:
        require(why)
        return
    with running_ralph(tmp_path / "ralph") as lrs:
        config = tmp_path / "ketang.toml"
        with open(config, "a", encoding="utf-8") as f:
            f.write(f'\n[usage]\nlrs_url = "{lrs.url}"\nlrs_username = "{lrs.username}"\n'
                    f'lrs_password = "{lrs.password}"\nupload_retries = 2\n')
        s = load_settings(config)
        assert upload(s, force=True, backoff=0.01).error == ""
        assert upload(s, force=True, backoff=0.01).sent == 0
        held = [st for st in lrs.statements()
                if st["verb"]["id"] == "http://adlnet.gov/expapi/verbs/responded"]
        assert [st["id"] for st in held] == [row[0]]
        ext = held[0]["context"]["extensions"]
        assert ext["http://ketang.lan/xapi/extensions/questionnaire"] == "q-autumn"
        assert ext["http://ketang.lan/xapi/extensions/view"] == "projector"
