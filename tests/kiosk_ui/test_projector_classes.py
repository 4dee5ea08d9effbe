"""The projector's class screens without a browser (docs/projector.md, "Classes"):
adding a class from tiles, the class page (next lesson, unit map, QR code), marking,
who may, and bad input."""

from __future__ import annotations

import html
import re

import pytest

from appliance.config import load_settings
from appliance.web.app import create_app
from content_cache.library import Library

CH = "cn-basic-edu-demo"
CURRICULUM = f"{CH}/primary-g1-math-pep"
L1, L2 = "primary-g1-math-pep-v1-u3-l1", "primary-g1-math-pep-v1-u3-l2"
LAN = {"REMOTE_ADDR": "192.168.1.23"}


@pytest.fixture
def client(sample_device):
    settings = load_settings(sample_device)
    app = create_app(settings, Library(settings.device.data_dir))
    return app.test_client()


def text(r) -> str:
    return html.unescape(r.get_data(as_text=True))


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def add(client, name="(2)班"):
    page = text(client.get(f"/projector/classes/new?curriculum={CURRICULUM}"))
    return client.post("/projector/classes/new", data={
        "csrf_token": csrf(page), "curriculum": CURRICULUM, "name": name})


def test_a_class_is_added_from_tiles_and_its_page_shows_the_next_lesson(client):
    first = text(client.get("/projector/classes/new"))
    assert f'href="/projector/classes/new?curriculum={CURRICULUM}"' in first
    assert "一年级 · 数学" in first and "data-nav" in first
    second = text(client.get(f"/projector/classes/new?curriculum={CURRICULUM}"))
    assert second.count('name="name" value="(') == 12 and "一年级(2)班" in second
    r = add(client)
    assert r.status_code == 302
    page = text(client.get(r.headers["Location"]))
    assert "一年级(2)班 · 数学 · 人教版" in page
    k = re.search(r"/projector/classes/(\d+)", r.headers["Location"]).group(1)
    # the next lesson comes first (in focus), opened for the class
    tiles = re.findall(r'<a class="tile[^"]*" href="([^"]+)"', page)
    assert tiles[0] == f"/projector/lesson/{CH}/{L1}?class={k}"
    assert "<svg" in page and f"/?class={k}" in page   # the class's QR code
    assert re.search(r"0\D+2", re.search(r"progress-count\">([^<]*)<", page).group(1))


def test_marking_with_the_form_moves_the_next_lesson(client):
    loc = add(client).headers["Location"]
    page = text(client.get(loc))
    r = client.post(f"{loc}/taught", data={"csrf_token": csrf(page), "lesson": L1,
                                           "taught": "1"})
    assert r.status_code == 302 and f"focus={L1}" in r.headers["Location"]
    page = text(client.get(loc))
    tiles = re.findall(r'<a class="tile[^"]*" href="([^"]+)"', page)
    assert tiles[0].startswith(f"/projector/lesson/{CH}/{L2}?class=")
    assert f'data-lesson="{L1}" data-taught="1"' in page
    r = client.post(f"{loc}/taught", data={"csrf_token": csrf(page), "lesson": L1,
                                           "taught": "0"})
    page = text(client.get(loc))
    assert re.findall(r'<a class="tile[^"]*" href="([^"]+)"', page)[0].startswith(
        f"/projector/lesson/{CH}/{L1}?class=")
    bad = client.post(f"{loc}/taught", data={"csrf_token": csrf(page), "lesson": "nope",
                                             "taught": "1"})
    assert bad.status_code == 400


def test_only_the_projector_adds_or_marks_and_forms_need_their_token(client):
    page = text(client.get(f"/projector/classes/new?curriculum={CURRICULUM}"))
    token = csrf(page)
    r = client.post("/projector/classes/new", environ_base=LAN, data={
        "csrf_token": token, "curriculum": CURRICULUM, "name": "(2)班"})
    assert r.status_code == 403
    r = client.post("/projector/classes/new", data={"curriculum": CURRICULUM,
                                                    "name": "(2)班"})
    assert r.status_code == 400                         # no CSRF token
    assert client.get("/api/v1/classes").get_json()["classes"] == []


@pytest.mark.parametrize("name, words", [("", "name"), ("x" * 30, "20")])
def test_a_bad_name_says_so_on_the_projector_and_adds_nothing(client, name, words):
    r = add(client, name)
    assert r.status_code == 400 and 'role="alert"' in text(r) and words in text(r)
    assert client.get("/api/v1/classes").get_json()["classes"] == []


def test_an_unknown_class_is_a_projector_404(client):
    assert client.get("/projector/classes/999").status_code == 404


def test_the_first_screen_lists_classes_with_their_next_lesson_first(client, sample_device):
    home = text(client.get("/projector"))
    assert 'data-node="add-class"' in home and "class-next-" not in home
    # with no class, the first tile is still the first grade (the add tile comes last)
    assert home.index('data-node="primary-g1"') < home.index('data-node="add-class"')
    add(client)
    home = text(client.get("/projector"))
    tiles = re.findall(r'<a class="tile[^"]*" href="([^"]+)" data-nav data-node="([^"]+)"', home)
    assert tiles[0] == (f"/projector/lesson/{CH}/{L1}?class=1", "class-next-1")
    assert tiles[1][1] == "class-1" and tiles[2][1] == "add-class"
    assert "一年级(2)班 · 数学 · 人教版" in home and "5以内的加法" in home


def test_the_follow_state_carries_the_round_of_live_answers(client):
    page = text(client.get(f"/projector/lesson/{CH}/{L1}"))
    token = re.search(r'data-csrf="([^"]+)"', page).group(1)

    def post(doc):
        return client.post("/projector/follow", json=doc, headers={"X-CSRFToken": token})

    r = post({"channel": CH, "lesson": L1, "part": 3, "page": 1, "round": "20261130-c1"})
    assert r.status_code == 200 and r.get_json()["round"] == "20261130-c1"
    for bad in ("x", 5, "20261130-c"):
        r = post({"channel": CH, "lesson": L1, "round": bad})
        assert r.status_code == 400 and "round" in r.get_json()["error"]
    assert client.get("/projector/follow/state").get_json()["state"]["round"] == "20261130-c1"


# ---- what the class screen offers first: next, continue, others went on to ----------------

SCIENCE = "primary-g1-science-jiaoke-v1-u1-l1"


def parts(lesson: str) -> list[str]:
    return [f"{lesson}-{k}" for k in ("video", "pdf", "html5", "exercise")]


def usage(client, *events) -> None:
    import json
    import uuid
    from datetime import UTC, datetime

    body = {"events": [dict({"id": str(uuid.uuid4()), "time": datetime.now(UTC).isoformat(),
                             "actor": "projector-0001", "view": "projector", "channel": CH},
                            **e) for e in events]}
    r = client.post("/api/v1/usage", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 200, r.get_json()


def projected(client, k: int, lesson: str, which: list[int]) -> None:
    usage(client, *[{"type": "part-projected", "resource": parts(lesson)[i], "lesson": lesson,
                     "extra": {"class": k}} for i in which])


def rec_tiles(page: str) -> dict[str, list[str]]:
    out = {}
    for name in ("next", "continue", "others"):
        box = re.search(rf'<div class="rec rec-{name}">(.*?)</div>(?=\s*(?:<div class="rec|'
                        r'</div>\s*</section>))', page, re.S)
        out[name] = re.findall(r'<a class="tile[^"]*" href="([^"]+)"', box.group(1)) if box \
            else []
    return out


def test_the_class_screen_offers_next_continue_and_others_each_one_press_away(
        client, sample_device):
    from appliance.usage import cousage

    loc = add(client).headers["Location"]
    k = int(loc.rsplit("/", 1)[1])
    page = text(client.get(loc))
    assert rec_tiles(page) == {"next": [f"/projector/lesson/{CH}/{L1}?class={k}"],
                               "continue": [], "others": []}   # nothing begun, no anchor

    projected(client, k, L2, [0, 1])      # lesson 2 begun (two parts of four), not 1
    page = text(client.get(loc))
    tiles = rec_tiles(page)
    assert tiles["next"] == [f"/projector/lesson/{CH}/{L1}?class={k}"]
    assert tiles["continue"] == [f"/projector/lesson/{CH}/{L2}?class={k}&part=2"]
    assert "从第 3 部分继续" in page

    projected(client, k, L1, [0, 1, 2, 3])    # lesson 1 taught: next is 2, where it stopped
    for n in range(4):                        # tablets went from lesson 1 to science
        usage(client, *[{"type": "lesson-opened", "resource": lesson, "actor": f"tablet-{n:04d}",
                         "view": "tablet"} for lesson in (L1, SCIENCE)])
    assert cousage.refresh(load_settings(sample_device)) > 0
    page = text(client.get(loc))
    tiles = rec_tiles(page)
    assert tiles["next"] == [f"/projector/lesson/{CH}/{L2}?class={k}&part=2"]
    assert tiles["continue"] == []            # it is the next lesson: one tile, not two
    assert tiles["others"] == [f"/projector/lesson/{CH}/{SCIENCE}?class={k}"]
    assert "我们知道的植物" in page
    home = text(client.get("/projector"))     # the first screen's class tile goes on too
    assert f'href="/projector/lesson/{CH}/{L2}?class={k}&amp;part=2"' in \
        client.get("/projector").get_data(as_text=True) and "5以内的减法" in home

    # the rest of the curriculum taught: nothing to go on with, others still offered
    projected(client, k, L2, [2, 3])
    tiles = rec_tiles(text(client.get(loc)))
    assert tiles["next"] == [] and tiles["continue"] == []
    assert tiles["others"] == [f"/projector/lesson/{CH}/{SCIENCE}?class={k}"]
