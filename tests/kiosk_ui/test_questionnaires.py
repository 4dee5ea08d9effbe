"""Questionnaires: signed into a release, answered on the dashboard (CSRF), stored
atomically as a usage event, leaving exactly once with the questionnaire's id."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from appliance import auth as admin_auth
from appliance.drives.outbox import write_outbox
from appliance.usage import outbox as usage_outbox
from appliance.usage.db import UsageDB
from content_cache.errors import ManifestError, SignatureError
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.publisher import publish

from ..helpers import make_source, resign_release, snapshot
from .test_admin import PASSWORD, TOKEN, log_in, make_app, token

usage_outbox.register()  # as the device does at start

CHANNEL = "test-channel"
TODAY = datetime.now(UTC).date()


def questionnaire(**kw) -> dict:
    doc = {"format": "ketang-questionnaire/1", "id": "q-autumn",
           "title": {"zh": "秋季教师问卷", "en": "Autumn teachers' survey"},
           "audience": "teachers", "opens": (TODAY - timedelta(days=1)).isoformat(),
           "closes": (TODAY + timedelta(days=30)).isoformat(),
           "questions": [
               {"id": "use", "kind": "single", "text": {"zh": "您多久使用一次？"},
                "choices": [{"zh": "每天"}, {"zh": "每周"}, {"zh": "很少"}]},
               {"id": "parts", "kind": "multiple", "text": {"zh": "常用哪些部分？"},
                "choices": [{"zh": "视频"}, {"zh": "任务单"}, {"zh": "练习"}]},
               {"id": "useful", "kind": "scale", "text": {"zh": "有多大帮助？"},
                "min": 1, "max": 5},
               {"id": "wish", "kind": "text", "text": {"zh": "建议"}, "max_length": 200}]}
    doc.update(kw)
    return doc


def source_with(tmp_path, *docs) -> object:
    src = make_source(tmp_path / "src", lessons=2)
    names = []
    for i, d in enumerate(docs):
        (src / f"q{i}.json").write_text(json.dumps(d, ensure_ascii=False), encoding="utf-8")
        names.append(f"q{i}.json")
    s = json.loads((src / "source.json").read_text(encoding="utf-8"))
    s["questionnaires"] = names
    (src / "source.json").write_text(json.dumps(s, ensure_ascii=False), encoding="utf-8")
    return src


@pytest.fixture
def device(tmp_path, publisher_key):
    pair, trusted = publisher_key
    out = tmp_path / "bundle"
    publish(source_with(tmp_path, questionnaire()), CHANNEL, 1, pair.private_path, out)
    data = tmp_path / "data"
    import_bundle(out, Library(data), load_trusted_keys(trusted))
    admin_auth.set_password(data, PASSWORD)
    app = make_app(data)
    return app, data


def test_answered_once_on_the_dashboard_and_carried_once_with_its_id(device, tmp_path):
    app, data = device
    client = app.test_client()
    log_in(client)
    page = client.get("/admin/").get_data(as_text=True)
    url = f"/admin/questionnaires/{CHANNEL}/q-autumn"
    assert f'href="{url}"' in page and "秋季教师问卷" in page
    form = client.get(url).get_data(as_text=True)
    assert 'name="csrf_token"' in form and 'type="checkbox" name="parts"' in form

    def stored() -> int:
        db = UsageDB(data)
        try:
            return db.db.execute_sql("SELECT count(*) FROM event").fetchone()[0]
        except Exception:
            return 0
        finally:
            db.close()

    answers = {"use": "1", "parts": ["0", "2"], "useful": "4", "wish": "多一些实验视频"}
    r = client.post(url, data=answers)                       # no CSRF token
    assert r.status_code == 400 and stored() == 0
    r = client.post(url, data={**answers, "useful": "9", "csrf_token": token(client, url)})
    assert r.status_code == 400 and "useful: not on the scale" in r.get_data(as_text=True)
    assert stored() == 0
    r = client.post(url, data={**answers, "csrf_token": token(client, url)})
    assert r.status_code == 302 and stored() == 1
    assert "您的回答已保存" in client.get(url).get_data(as_text=True)
    r = client.post(url, data={**answers, "csrf_token": token(client, "/admin/")})
    assert stored() == 1                                     # once per device

    from appliance.config import Settings
    s = Settings().with_overrides("device", data_dir=data, id="school-q")
    files = write_outbox(tmp_path / "KETANG", s, {})
    usage_file = next(p for p in files if p.name.endswith(".jsonl.gz"))
    (st,) = [json.loads(line) for line in gzip.decompress(usage_file.read_bytes()).splitlines()]
    ext = "http://ketang.lan/xapi/extensions/"
    assert st["verb"]["id"] == "http://adlnet.gov/expapi/verbs/responded"
    assert st["context"]["extensions"][ext + "questionnaire"] == "q-autumn"
    assert st["result"]["extensions"][ext + "answers"] == {
        "use": 1, "parts": [0, 2], "useful": 4, "wish": "多一些实验视频"}
    assert write_outbox(tmp_path / "KETANG", s, {}) == []    # carried once


def test_a_closed_questionnaire_is_not_shown(tmp_path, publisher_key):
    pair, trusted = publisher_key
    out = tmp_path / "bundle"
    old = questionnaire(opens="2025-01-01", closes="2025-02-01")
    publish(source_with(tmp_path, old), CHANNEL, 1, pair.private_path, out)
    data = tmp_path / "data"
    import_bundle(out, Library(data), load_trusted_keys(trusted))
    admin_auth.set_password(data, PASSWORD)
    client = make_app(data).test_client()
    log_in(client)
    assert "q-autumn" not in client.get("/admin/").get_data(as_text=True)
    assert client.get(f"/admin/questionnaires/{CHANNEL}/q-autumn").status_code == 404


@pytest.mark.parametrize("change, message", [
    ({"audience": "pupils"}, "audience 'pupils' is not one of teachers, school"),
    ({"closes": "2020-01-01"}, "is before opens"),
    ({"opens": "tomorrow"}, "must be a day, YYYY-MM-DD"),
    ({"questions": []}, "questions must be a list of 1 to"),
    ({"questions": [{"id": "a", "kind": "essay", "text": {"zh": "?"}}]}, "kind 'essay'"),
    ({"questions": [{"id": "a", "kind": "single", "text": {"zh": "?"},
                     "choices": [{"zh": "only one"}]}]}, "choices must be a list of 2"),
    ({"questions": [{"id": "a", "kind": "scale", "text": {"zh": "?"}, "min": 3, "max": 2}]},
     "a scale runs from min to max"),
])
def test_a_bad_questionnaire_is_refused_by_the_publisher_and_by_the_device(
        tmp_path, publisher_key, change, message):
    pair, trusted = publisher_key
    with pytest.raises(ManifestError, match=message):
        publish(source_with(tmp_path, questionnaire(**change)), CHANNEL, 1,
                pair.private_path, tmp_path / "refused")
    out = tmp_path / "bundle"
    publish(source_with(tmp_path, questionnaire()), CHANNEL, 1, pair.private_path, out)
    resign_release(out, CHANNEL, 1, pair.private_path,
                   lambda doc: doc["questionnaires"][0].update(change))
    lib = Library(tmp_path / "data")
    before = snapshot(lib.data_dir)
    with pytest.raises(ManifestError, match=message):
        import_bundle(out, lib, load_trusted_keys(trusted))
    assert snapshot(lib.data_dir) == before


def test_a_tampered_questionnaire_is_refused_like_any_tampered_release(tmp_path,
                                                                        publisher_key):
    pair, trusted = publisher_key
    out = tmp_path / "bundle"
    publish(source_with(tmp_path, questionnaire()), CHANNEL, 1, pair.private_path, out)
    path = out / "KETANG" / "releases" / CHANNEL / "1" / "manifest.json"
    doc = json.loads(path.read_bytes())
    doc["questionnaires"][0]["questions"][0]["text"]["zh"] = "改过的问题"
    path.write_bytes(json.dumps(doc, ensure_ascii=False).encode())
    lib = Library(tmp_path / "data")
    before = snapshot(lib.data_dir)
    with pytest.raises(SignatureError):
        import_bundle(out, lib, load_trusted_keys(trusted))
    assert snapshot(lib.data_dir) == before


# ---- on the projector (docs/projector.md, "Questionnaires") -----------------------------

def answers_in(data) -> list[dict]:
    db = UsageDB(data)
    try:
        rows = db.db.execute_sql("SELECT view, extra FROM event WHERE type ="
                                 " 'questionnaire-answered'").fetchall()
    finally:
        db.close()
    return [{"view": v, **json.loads(x)} for v, x in rows]


def test_the_projector_shows_an_open_questionnaire_and_stores_its_answers_once(device):
    app, data = device
    client = app.test_client()
    url = f"/projector/questionnaires/{CHANNEL}/q-autumn"
    home = client.get("/projector").get_data(as_text=True)
    assert f'href="{url}"' in home and "秋季教师问卷" in home
    screen = client.get(url).get_data(as_text=True)
    assert screen.count('class="tile q-choice"') == 3 + 3 + 5
    assert 'name="csrf_token"' in screen and 'data-node="send"' in screen
    csrf = TOKEN.search(screen).group(1)
    answers = {"use": "1", "parts": ["0", "2"], "useful": "4"}

    # failure paths: each refused with a reason, nothing stored
    assert client.post(url, data=answers).status_code == 400               # no CSRF token
    r = client.post(url, data={**answers, "use": "7", "csrf_token": csrf})
    assert r.status_code == 400 and "use: choose one" in r.get_data(as_text=True)
    r = client.post(url, data={"csrf_token": csrf})
    assert r.status_code == 400 and "请至少回答一个问题" in r.get_data(as_text=True)
    other = client.post(url, data={**answers, "csrf_token": csrf},
                        environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 403 and "只有投影机" in other.get_data(as_text=True)
    assert answers_in(data) == []

    r = client.post(url, data={**answers, "csrf_token": csrf})
    assert r.status_code == 302 and "saved=1" in r.headers["Location"]
    (stored,) = answers_in(data)
    assert stored["view"] == "projector"
    assert stored["answers"] == {"use": 1, "parts": [0, 2], "useful": 4}
    r = client.post(url, data={**answers, "use": "0", "csrf_token": csrf})   # again
    assert r.status_code == 200 and "您的回答已保存" in r.get_data(as_text=True)
    assert len(answers_in(data)) == 1
    assert url not in client.get("/projector").get_data(as_text=True)       # answered
    log_in(client)                                   # the dashboard says it is answered
    assert "已回答" in client.get("/admin/").get_data(as_text=True)
    dash = f"/admin/questionnaires/{CHANNEL}/q-autumn"
    client.post(dash, data={**answers, "csrf_token": token(client, "/admin/")})
    assert len(answers_in(data)) == 1


def test_answered_twice_at_once_is_stored_once(device):
    """The dashboard and the projector sending at the same moment: one answer."""
    import threading

    from appliance.config import Settings
    from appliance.usage import answers as usage_answers
    from content_cache.questionnaire import parse_questionnaire

    _app, data = device
    s = Settings().with_overrides("device", data_dir=data)
    q = parse_questionnaire(questionnaire(), "test")
    ids: list = []
    go = threading.Barrier(4)

    def send(n: int) -> None:
        go.wait()
        ids.append(usage_answers.store(s, CHANNEL, 1, q, {"useful": n}))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([i for i in ids if i]) == 1 and len(answers_in(data)) == 1
    assert usage_answers.store(s, CHANNEL, 1, q, {"useful": 2}) is None


def test_a_closed_or_future_questionnaire_is_not_on_the_projector(tmp_path, publisher_key):
    pair, trusted = publisher_key
    out = tmp_path / "bundle"
    closed = questionnaire(id="q-closed", opens="2025-01-01", closes="2025-02-01")
    future = questionnaire(id="q-future", opens=(TODAY + timedelta(days=2)).isoformat(),
                           closes=(TODAY + timedelta(days=9)).isoformat())
    publish(source_with(tmp_path, closed, future), CHANNEL, 1, pair.private_path, out)
    data = tmp_path / "data"
    import_bundle(out, Library(data), load_trusted_keys(trusted))
    client = make_app(data).test_client()
    home = client.get("/projector").get_data(as_text=True)
    assert "q-closed" not in home and "q-future" not in home and "问卷" not in home
    for qid in ("q-closed", "q-future"):
        url = f"/projector/questionnaires/{CHANNEL}/{qid}"
        assert client.get(url).status_code == 404
        assert client.post(url, data={"use": "1"}).status_code in (400, 404)
    assert not (data / "usage.db").exists()


KILLED_AFTER_SAVING = """
import json, os, signal, sys
from appliance.config import Settings
from appliance.usage import answers
from content_cache.questionnaire import parse_questionnaire
s = Settings().with_overrides("device", data_dir=sys.argv[1])
q = parse_questionnaire(json.loads(sys.argv[2]), "test")
print(answers.store(s, "test-channel", 1, q, {"useful": 5}, view="projector"), flush=True)
os.kill(os.getpid(), signal.SIGKILL)      # the power goes right after "saved"
"""


def test_an_answer_acknowledged_survives_a_kill_right_after_and_is_not_stored_again(
        device):
    import sqlite3
    import subprocess
    import sys

    _app, data = device
    doc = json.dumps(questionnaire())
    runs = [subprocess.run([sys.executable, "-c", KILLED_AFTER_SAVING, str(data), doc],
                           capture_output=True, text=True, timeout=60) for _ in range(2)]
    assert [r.returncode for r in runs] == [-9, -9]
    first, second = (r.stdout.strip() for r in runs)
    assert first != "None" and second == "None"      # the second: already answered
    raw = sqlite3.connect(data / "usage.db")
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    (row,) = answers_in(data)
    assert row["answers"] == {"useful": 5} and row["view"] == "projector"
    db = UsageDB(data)
    try:
        assert db.has(first)
    finally:
        db.close()
