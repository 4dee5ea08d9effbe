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
        assert charts.count() == 4
        page.wait_for_function("[...document.querySelectorAll('#section-charts img')]"
                               ".every(i => i.complete && i.naturalWidth > 0)")
    finally:
        context.close()
