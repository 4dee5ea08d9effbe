"""Classes, progress and live class answers, through the JSON API (docs/projector.md):
who may change classes, what counts as taught, the next lesson, one answer per tablet
and question, and what survives a restart."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime

import pytest

from appliance.classes.answers import round_of
from appliance.classes.store import ClassesDB
from appliance.config import load_settings
from appliance.usage.db import UsageDB
from appliance.usage.xapi import statement
from appliance.web.app import create_app
from content_cache.library import Library

from ..helpers import snapshot

CH = "cn-basic-edu-demo"
NODE = "primary-g1-math-pep"
L1, L2 = "primary-g1-math-pep-v1-u3-l1", "primary-g1-math-pep-v1-u3-l2"
PARTS = [f"{L1}-{k}" for k in ("video", "pdf", "html5", "exercise")]
EXERCISE = f"{L1}-exercise"
LAN = {"REMOTE_ADDR": "192.168.1.23"}


def make_app(config):
    settings = load_settings(config)
    return create_app(settings, Library(settings.device.data_dir)), settings


@pytest.fixture
def device(sample_device):
    app, settings = make_app(sample_device)
    app.config_path = sample_device
    return app, settings


def add(client, name="(2)班", node=NODE, **kw):
    return client.post("/api/v1/classes", json={"name": name, "channel": CH, "node": node},
                       **kw)


def usage(client, *events):
    body = {"events": [dict({"id": str(uuid.uuid4()), "time": datetime.now(UTC).isoformat(),
                             "actor": "projector-0001", "view": "projector", "channel": CH},
                            **e) for e in events]}
    r = client.post("/api/v1/usage", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 200, r.get_json()


def projected(resource, klass, **kw):
    return dict({"type": "part-projected", "resource": resource, "lesson": L1,
                 "extra": {"class": klass}}, **kw)


def test_a_class_is_added_listed_with_its_next_lesson_and_removed(device):
    app, settings = device
    c = app.test_client()
    curricula = c.get("/api/v1/classes/curricula").get_json()["curricula"]
    math = next(x for x in curricula if x["node"] == NODE)
    assert (math["grade"], math["subject"], math["edition"]) == ("一年级", "数学", "人教版")
    r = add(c)
    assert r.status_code == 201, r.get_json()
    k = r.get_json()
    assert k["label"] == "一年级(2)班 · 数学 · 人教版"
    [listed] = c.get("/api/v1/classes").get_json()["classes"]
    assert listed["next"]["id"] == L1 and (listed["taught"], listed["total"]) == (0, 2)
    assert c.delete(f"/api/v1/classes/{k['id']}").status_code == 200
    assert c.get("/api/v1/classes").get_json()["classes"] == []
    assert c.delete(f"/api/v1/classes/{k['id']}").status_code == 404


@pytest.mark.parametrize("doc, status, words", [
    ({"name": "", "channel": CH, "node": NODE}, 400, "empty"),
    ({"name": "x" * 21, "channel": CH, "node": NODE}, 400, "at most 20"),
    ({"name": "<b>2班", "channel": CH, "node": NODE}, 400, "not allowed"),
    ({"name": 7, "channel": CH, "node": NODE}, 400, "must be text"),
    ({"name": "(2)班", "channel": CH, "node": "primary-g1"}, 400, "not a subject"),
    ({"name": "(2)班", "channel": "nope", "node": NODE}, 400, "not a subject"),
    ({"name": "(2)班", "node": NODE}, 400, "give the channel"),
])
def test_a_bad_class_is_refused_with_a_reason_and_nothing_is_stored(device, doc, status, words):
    app, settings = device
    c = app.test_client()
    add(c, name="(1)班")
    before = c.get("/api/v1/classes").get_json()
    r = c.post("/api/v1/classes", json=doc)
    assert r.status_code == status
    message = r.get_json()["error"]["message"]
    assert words in message and "\n" not in message
    assert c.get("/api/v1/classes").get_json() == before


def test_only_the_projector_or_a_technician_changes_classes(device):
    app, settings = device
    c = app.test_client()
    data = settings.device.data_dir
    r = add(c, environ_base=LAN)
    assert r.status_code == 403 and "projector" in r.get_json()["error"]["message"]
    assert not (data / "classes.db").exists() or c.get("/api/v1/classes").get_json()[
        "classes"] == []
    k = add(c).get_json()
    for r in (c.delete(f"/api/v1/classes/{k['id']}", environ_base=LAN),
              c.post(f"/api/v1/classes/{k['id']}/taught", environ_base=LAN,
                     json={"channel": CH, "lesson": L1, "taught": True})):
        assert r.status_code == 403
    r = c.post("/api/v1/classes", data="name=x", environ_base=LAN,
               content_type="application/x-www-form-urlencoded")
    assert r.status_code == 403
    assert c.get("/api/v1/classes").get_json()["classes"][0]["taught"] == 0
    assert add(c, "(3)班", environ_base=LAN,
               headers={"X-Ketang-Projector-Token": "wrong"}).status_code == 403


def test_duplicate_class_is_refused(device):
    app, _ = device
    c = app.test_client()
    assert add(c).status_code == 201
    r = add(c, name=" (2)班 ")
    assert r.status_code == 409 and "already" in r.get_json()["error"]["message"]
    assert len(c.get("/api/v1/classes").get_json()["classes"]) == 1


def test_a_lesson_projected_whole_for_a_class_is_taught_and_the_next_is_lesson_2(device):
    app, settings = device
    c = app.test_client()
    k = add(c).get_json()["id"]
    other = add(c, "(3)班").get_json()["id"]
    usage(c, *[projected(p, k) for p in PARTS[:3]])           # three of four parts
    usage(c, projected(PARTS[3], other))                     # another class
    usage(c, {"type": "part-projected", "resource": PARTS[3], "lesson": L1})   # no class
    usage(c, projected(PARTS[3], k, view="tablet"))          # not the projector
    assert c.get(f"/api/v1/classes/{k}").get_json()["next"]["id"] == L1
    usage(c, projected(PARTS[3], k))
    doc = c.get(f"/api/v1/classes/{k}").get_json()
    assert doc["next"]["id"] == L2 and doc["taught"] == 1
    [unit] = doc["units"]
    assert [(x["id"], x["taught"], x["source"]) for x in unit["lessons"]] == [
        (L1, True, "projected"), (L2, False, "")]
    assert c.get(f"/api/v1/classes/{other}").get_json()["next"]["id"] == L1
    # the next day: a new server over the same data
    app2, _ = make_app(app.config_path)
    again = app2.test_client().get("/api/v1/classes").get_json()["classes"]
    assert {x["id"]: x["next"]["id"] for x in again} == {k: L2, other: L1}


def test_the_teacher_marks_and_unmarks(device):
    app, _ = device
    c = app.test_client()
    k = add(c).get_json()["id"]

    def mark(lesson, taught):
        return c.post(f"/api/v1/classes/{k}/taught",
                      json={"channel": CH, "lesson": lesson, "taught": taught})

    r = mark(L2, True)
    assert r.status_code == 200 and r.get_json()["next"] is None   # the last is taught
    r = mark(L2, False)
    assert r.get_json()["next"]["id"] == L1
    usage(c, *[projected(p, k) for p in PARTS])
    assert c.get(f"/api/v1/classes/{k}").get_json()["next"]["id"] == L2
    r = mark(L1, False)                         # unmark a lesson taught by projecting it
    assert r.get_json()["next"]["id"] == L1 and r.get_json()["taught"] == 0
    usage(c, *[projected(p, k) for p in PARTS[:2]])   # half of it again: not taught yet
    assert c.get(f"/api/v1/classes/{k}").get_json()["next"]["id"] == L1
    usage(c, *[projected(p, k) for p in PARTS[2:]])
    assert c.get(f"/api/v1/classes/{k}").get_json()["next"]["id"] == L2
    for lesson, taught, status in (("primary-g1-chinese-tongbian-v1-u1-l1", True, 400),
                                   (L1, "yes", 400)):
        r = mark(lesson, taught)
        assert r.status_code == status, r.get_json()
    assert c.post("/api/v1/classes/999/taught",
                  json={"channel": CH, "lesson": L1, "taught": True}).status_code == 404


def test_reading_progress_writes_nothing_when_no_event_arrived(device):
    app, settings = device
    c = app.test_client()
    k = add(c).get_json()["id"]
    usage(c, *[projected(p, k) for p in PARTS])
    c.get("/api/v1/classes")
    data = settings.device.data_dir
    ClassesDB(data).db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    before = snapshot(data)
    for _ in range(3):
        c.get("/api/v1/classes")
        c.get(f"/api/v1/classes/{k}")
    after = snapshot(data)
    changed = [n for n in after if before.get(n) != after[n] and "classes.db" in n]
    assert changed == []


def test_the_classes_database_is_wal_with_full_sync(device):
    app, settings = device
    add(app.test_client())
    db = sqlite3.connect(settings.device.data_dir / "classes.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ---- live class answers -------------------------------------------------------------

def answer(client, who, pick, question=0, rnd=None, **kw):
    doc = {"round": rnd or round_of(0), "tablet": who, "channel": CH, "lesson": L1,
           "resource": EXERCISE, "question": question, "choice": pick}
    doc.update(kw)
    return client.post("/api/v1/answers", json=doc, environ_base=LAN)


def counts(client, question=0, rnd=None):
    r = client.get("/projector/answers", query_string={
        "round": rnd or round_of(0), "channel": CH, "lesson": L1, "resource": EXERCISE,
        "question": question})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_two_tablets_answer_and_a_tablet_answering_twice_counts_once(device):
    app, settings = device
    c = app.test_client()
    assert counts(c)["answered"] == 0
    r = answer(c, "tablet-aaaa-0001", 1)
    assert r.status_code == 200 and r.get_json() == {"counted": True, "choice": 1}
    assert answer(c, "tablet-bbbb-0002", 2).get_json()["counted"] is True
    r = answer(c, "tablet-aaaa-0001", 0)          # changes its mind: the first one stays
    assert r.get_json() == {"counted": False, "choice": 1}
    doc = counts(c)
    assert doc["answered"] == 2 and doc["counts"] == [0, 1, 1, 0][:len(doc["counts"])]
    assert doc["shares"][1] == doc["shares"][2] == 0.5
    assert counts(c, question=1)["answered"] == 0
    other_round = round_of(5)
    assert counts(c, rnd=other_round)["answered"] == 0
    assert answer(c, "tablet-aaaa-0001", 0, rnd=other_round).get_json()["counted"] is True
    # stored as usage events: one per tablet, question and round
    rows = UsageDB(settings.device.data_dir).of_type("question-answered", "2020-01-01")
    assert len(rows) == 3
    first = rows[0]
    assert (first.actor, first.resource, first.lesson, first.view) == (
        "tablet-aaaa-0001", EXERCISE, L1, "tablet")
    st = statement(first, settings, "device-1")
    assert st["id"] == first.id and st["verb"]["id"].endswith("/answered")
    assert st["object"]["id"].endswith(f"{EXERCISE}/q1")
    assert st["result"] == {"success": True, "response": "1"}   # 2 + 3 = 5 is choice 1
    assert st["context"]["contextActivities"]["parent"][0]["id"].endswith(EXERCISE)
    # a new server over the same data counts the same, and still once per tablet
    app2, _ = make_app(app.config_path)
    c2 = app2.test_client()
    assert counts(c2)["counts"][1:3] == [1, 1]
    assert answer(c2, "tablet-bbbb-0002", 0).get_json() == {"counted": False, "choice": 2}
    assert counts(c2)["answered"] == 2


@pytest.mark.parametrize("change, status, words", [
    ({"round": "yesterday"}, 400, "round"),
    ({"round": "20261399-c0"}, 400, "real date"),
    ({"tablet": "x"}, 400, "tablet"),
    ({"choice": 3}, 400, "choices"),
    ({"choice": -1}, 400, "choice"),
    ({"choice": True}, 400, "choice"),
    ({"question": 9}, 404, "no question"),
    ({"resource": f"{L1}-video"}, 404, "no question"),
    ({"lesson": "no-such-lesson"}, 404, "no question"),
    ({"extra": 1}, 400, "unknown fields"),
])
def test_a_bad_answer_is_refused_and_nothing_is_counted(device, change, status, words):
    app, settings = device
    c = app.test_client()
    r = answer(c, "tablet-cccc-0003", 1, **change)
    assert r.status_code == status
    assert words in r.get_json()["error"]["message"]
    assert counts(c)["answered"] == 0
    path = settings.device.data_dir / "usage.db"
    assert not path.exists() or not UsageDB(settings.device.data_dir).of_type(
        "question-answered", "2020-01-01")


def test_answers_are_not_json_or_too_big(device):
    app, _ = device
    c = app.test_client()
    assert c.post("/api/v1/answers", data="choice=1", environ_base=LAN).status_code == 400
    r = c.post("/api/v1/answers", data=b"{" + b" " * 5000 + b"}",
               content_type="application/json", environ_base=LAN)
    assert r.status_code == 413


def test_only_the_projector_sees_the_counts_and_pages_cannot_forge_answers(device):
    app, _ = device
    c = app.test_client()
    r = c.get("/projector/answers", environ_base=LAN, query_string={
        "round": round_of(0), "channel": CH, "lesson": L1, "resource": EXERCISE,
        "question": 0})
    assert r.status_code == 403
    body = {"events": [{"id": str(uuid.uuid4()), "type": "question-answered",
                        "time": datetime.now(UTC).isoformat(), "actor": "tablet-dddd-0004",
                        "view": "tablet", "resource": EXERCISE}]}
    r = c.post("/api/v1/usage", data=json.dumps(body), content_type="application/json")
    assert r.status_code == 400


def test_reading_before_any_class_makes_no_file(device):
    app, settings = device
    c = app.test_client()
    assert c.get("/api/v1/classes", environ_base=LAN).get_json() == {"classes": []}
    assert c.get("/api/v1/classes/1", environ_base=LAN).status_code == 404
    assert c.get("/?class=1", environ_base=LAN).status_code == 200
    assert c.get("/projector").status_code == 200
    assert c.get(f"/projector/lesson/{CH}/{L1}?class=1").status_code == 200
    assert not (settings.device.data_dir / "classes.db").exists()
