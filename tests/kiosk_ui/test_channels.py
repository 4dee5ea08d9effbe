"""Two channels on one device (issue 19): the sample pack's basic-education and
teacher-training (教师研修) channels are browsed separately and searched together,
each search result saying which channel it comes from (docs/tablet.md)."""

from __future__ import annotations

import html
import re

import pytest

from appliance.cli.demo import SAMPLE_PACKS, setup_demo
from appliance.config import Settings
from appliance.web.app import create_app
from content_cache.library import Library

BASIC = "cn-basic-edu-demo"
TRAINING = "cn-teacher-training-demo"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    data = tmp_path_factory.mktemp("two-channels")
    said: list[str] = []
    settings = setup_demo(Settings(), data, echo=said.append, packs=SAMPLE_PACKS)
    assert f"{BASIC} v1: activated" in said and f"{TRAINING} v1: activated" in said
    app = create_app(settings, Library(data))
    return app.test_client()


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def test_make_demo_publishes_the_teacher_training_channel_beside_basic_education(client):
    cat = client.application.extensions["ketang"].library.catalog(TRAINING)
    lessons = cat.lessons()
    assert len(lessons) == 6
    assert {lesson["path"][0]["title"]["zh"] for lesson in lessons} == {"教师研修"}
    for lesson in lessons:
        assert [r["kind"] for r in cat.lesson(lesson["id"])["resources"]] == ["video", "pdf"]


def test_channels_are_browsed_separately(client):
    front = text(client.get("/"))
    assert "教师研修" in front and "一年级" in front
    training = text(client.get(f"/browse/{TRAINING}"))
    assert "课堂教学" in training and "一年级" not in training
    basic = text(client.get(f"/browse/{BASIC}"))
    assert "一年级" in basic and "课堂教学" not in basic
    topic = text(client.get(f"/browse/{TRAINING}/training-technology"))
    assert "用投影上好一节课" in topic and "平板进课堂" in topic


def test_search_covers_every_channel_and_says_where_each_result_is_from(client):
    page = text(client.get("/search?q=课"))
    items = re.findall(r'<li class="lesson-item">(.*?)</li>', page, re.S)
    channels = {re.search(r'href="/lessons/([^/]+)/', item).group(1) for item in items}
    assert channels == {BASIC, TRAINING}
    for item in items:
        channel = re.search(r'href="/lessons/([^/]+)/', item).group(1)
        label = re.search(r'class="channel-of">([^<]*)<', item).group(1)
        assert ("教师研修" in label) == (channel == TRAINING), item
    # one channel's words find only its lessons, still labelled
    only = text(client.get("/search?q=家长"))
    assert "和家长沟通" in only and 'class="channel-of"' in only


def test_a_tablet_that_scanned_a_class_code_sees_that_class_lesson_for_today(client):
    r = client.post("/api/v1/classes", json={"name": "(2)班", "channel": BASIC,
                                             "node": "primary-g3-math-pep"})
    assert r.status_code == 201, r.get_json()
    k = r.get_json()["id"]
    tablet = client.application.test_client()
    page = tablet.get(f"/?class={k}")
    body = text(page)
    assert "三年级(2)班 · 数学 · 人教版" in body and 'id="today"' in body
    first = client.get(f"/api/v1/classes/{k}").get_json()["next"]
    assert f'href="/lessons/{BASIC}/{first["id"]}?follow=1"' in body
    assert "ketang_class=" in page.headers["Set-Cookie"]
    # the tablet remembers its class; the front page keeps showing today's lesson
    assert first["title"]["zh"] in text(tablet.get("/"))
    client.post(f"/api/v1/classes/{k}/taught",
                json={"channel": BASIC, "lesson": first["id"], "taught": True})
    nxt = client.get(f"/api/v1/classes/{k}").get_json()["next"]
    assert nxt["id"] != first["id"] and nxt["title"]["zh"] in text(tablet.get("/"))
    # an unknown class shows the plain front page and is not remembered
    other = client.application.test_client()
    page = other.get("/?class=999")
    assert 'id="today"' not in text(page) and "Set-Cookie" not in page.headers
    assert 'id="today"' not in text(other.get("/?class=abc"))


def test_the_projector_and_dashboard_open_each_channel(client):
    home = text(client.get("/projector"))
    assert "教师研修 · 示例课程（演示用）" in home
    assert f'href="/projector/browse/{TRAINING}/training-teaching"' in home
    assert home.count("选择年级") == 1 or home.count("Choose a grade") == 1
    topic = text(client.get(f"/projector/browse/{TRAINING}/training-technology"))
    assert "用投影上好一节课" in topic
