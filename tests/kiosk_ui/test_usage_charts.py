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
    assert names == ["taught", "top", "tablets", "outbox"]
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
