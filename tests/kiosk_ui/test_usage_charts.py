"""Usage you can see: the dashboard's server-drawn SVG charts (no JavaScript)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from appliance.usage.db import UsageDB
from appliance.usage.events import Where, check_event
from appliance.usage.figures import device_figures

from .test_admin import PASSWORD, app, data, log_in, make_app  # noqa: F401  (fixtures below)  # noqa: F401

LESSON = "primary-g1-math-pep-v1-u3-l1"


def store(data_dir, kinds: list[tuple[str, str, str]], days_ago: int = 0) -> None:
    """Events (type, view, actor) on ``LESSON``, ``days_ago`` days back."""
    now = datetime.now(UTC)
    when = (now - timedelta(days=days_ago)).isoformat()
    events = [(check_event({"id": str(uuid.uuid4()), "type": t, "resource": LESSON,
                            "time": when, "actor": actor, "view": view,
                            **({"extra": {"seconds": 600}} if t == "projected" else {})},
                           now, timedelta(0), 180),
               Where("cn-basic-edu-demo", 1, LESSON, "一年级", "数学", "lesson"))
              for t, view, actor in kinds]
    put(data_dir, events)


def put(data_dir, events) -> None:
    """Store checked events with their catalog places in the device's usage.db."""
    db = UsageDB(data_dir)
    try:
        db.store([events])
    finally:
        db.close()


def test_the_figures_count_lessons_taught_tablets_and_what_waits(data):  # noqa: F811
    store(data, [("projected", "projector", "proj-0001")] * 2
          + [("lesson-opened", "tablet", f"tablet-000{i}") for i in range(3)])
    store(data, [("lesson-opened", "tablet", "tablet-0001")], days_ago=1)
    from appliance.config import Settings

    fig = device_figures(data, Settings().usage)
    assert fig.taught == {"数学": [0] * 7 + [2]}
    assert fig.tablets[-2:] == [1, 3]
    assert fig.top == [(LESSON, 6)]
    assert fig.outbox["pending"] == 6 and fig.outbox["sent"] == 0


def test_the_dashboard_shows_the_charts_as_images_without_javascript(app, data):  # noqa: F811
    store(data, [("projected", "projector", "proj-0001"),
                 ("lesson-opened", "tablet", "tablet-0001")])
    client = app.test_client()
    assert client.get("/admin/charts/taught.svg").status_code == 302   # login first
    log_in(client)
    page = client.get("/admin/").get_data(as_text=True)
    names = re.findall(r'<img src="/admin/charts/(\w+)\.svg"', page)
    assert names == ["taught", "classes", "top", "tablets", "outbox"]
    for name in names:
        r = client.get(f"/admin/charts/{name}.svg")
        assert r.status_code == 200 and r.mimetype == "image/svg+xml"
        svg = r.get_data(as_text=True)
        ElementTree.fromstring(svg.encode())                      # well-formed SVG
        assert "<script" not in svg
        assert "src=" not in svg and "href=\"http" not in svg     # nothing fetched
    top = client.get("/admin/charts/top.svg").get_data(as_text=True)
    assert "5以内的加法" in top                                     # named by its title
    assert client.get("/admin/charts/nothing.svg").status_code == 404


# ---- lessons taught per week, by class (issue 20) -----------------------------------------

L2 = "primary-g1-math-pep-v1-u3-l2"


def store_parts(data_dir, rows: list[tuple[int, str, int, int]]) -> None:
    """Parts projected for classes: (class, lesson, part, days ago)."""
    now = datetime.now(UTC)
    events = [(check_event({"id": str(uuid.uuid4()), "type": "part-projected",
                            "resource": f"{lesson}-p{part}", "lesson": lesson,
                            "time": (now - timedelta(days=ago)).isoformat(),
                            "actor": "proj-0001", "view": "projector",
                            "extra": {"class": k}}, now, timedelta(0), 180),
               Where("cn-basic-edu-demo", 1, lesson, "一年级", "数学", "video"))
              for k, lesson, part, ago in rows]
    put(data_dir, events)


def test_lessons_per_week_by_class_count_each_lesson_once_per_class_and_week(data):  # noqa: F811
    from appliance.config import Settings

    store_parts(data, [(1, LESSON, 0, 0), (1, LESSON, 1, 0), (1, LESSON, 0, 0),  # one lesson
                       (1, L2, 0, 0),                                           # a second
                       (1, LESSON, 2, 14),                                      # 2 weeks ago
                       (9, LESSON, 0, 0)])                                      # a class gone
    store(data, [("projected", "projector", "proj-0001")])      # no class: not by class
    fig = device_figures(data, Settings().usage,
                         class_labels={1: "一年级(2)班 · 数学 · 人教版"})
    assert fig.classes == {"一年级(2)班 · 数学 · 人教版": [0] * 5 + [1, 0, 2],
                           "班级 class 9": [0] * 7 + [1]}
    assert fig.taught == {"数学": [0] * 7 + [1]}                 # by subject as before


def test_more_than_eight_classes_add_up_the_rest(data):  # noqa: F811
    from appliance.config import Settings
    from appliance.usage.figures import CLASS_SERIES, OTHER_CLASSES

    store_parts(data, [(k, LESSON, 0, 0) for k in range(1, 11)] + [(10, L2, 0, 0)])
    fig = device_figures(data, Settings().usage)
    assert len(fig.classes) == CLASS_SERIES + 1
    assert fig.classes["班级 class 10"][-1] == 2                 # the busiest is drawn
    assert fig.classes[OTHER_CLASSES][-1] == 2                   # two classes added up


def test_the_dashboard_chart_by_class_names_the_classes(app, data):  # noqa: F811
    from appliance.classes.store import ClassesDB

    db = ClassesDB(data)
    k = db.add("(2)班", "cn-basic-edu-demo", "primary-g1-math-pep", "一年级", "数学", "人教版")
    db.close()
    store_parts(data, [(k.id, LESSON, 0, 0), (k.id, L2, 1, 7)])
    client = app.test_client()
    log_in(client)
    svg = client.get("/admin/charts/classes.svg").get_data(as_text=True)
    ElementTree.fromstring(svg.encode())
    assert "一年级(2)班 · 数学 · 人教版" in svg and "<script" not in svg
    assert "Lessons taught per week, by class" in svg


def test_no_class_no_classes_file_and_an_empty_chart(app, data):  # noqa: F811
    client = app.test_client()
    log_in(client)
    svg = client.get("/admin/charts/classes.svg").get_data(as_text=True)
    assert "暂无数据" in svg
    assert not (data / "classes.db").exists()                   # reading made no file
