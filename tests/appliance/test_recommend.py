"""Recommendations: co-usage counted incrementally on the device, the national table
built from drive outboxes, signed into a release, and blended on the lesson page."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from appliance.cli import main
from appliance.config import Settings, load_settings
from appliance.drives.outbox import write_outbox
from appliance.usage import cousage
from appliance.usage import outbox as usage_outbox
from appliance.usage.db import UsageDB
from appliance.usage.events import Where, check_event
from appliance.usage.keys import key_paths
from appliance.web.app import create_app
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library

from ..helpers import DEMO_KEY, SAMPLE_PACK, write_config

usage_outbox.register()  # as the device does at start

CHANNEL = "cn-basic-edu-demo"
A = "primary-g1-math-pep-v1-u3-l1"          # curriculum next: …-u3-l2
B = "primary-g1-math-pep-v1-u3-l2"
C = "primary-g3-science-jiaoke-v1-u1-l2"    # far away in the curriculum
D = "primary-g1-chinese-tongbian-v1-u1-l1"


def settings_in(tmp_path, name: str = "data") -> Settings:
    return Settings().with_overrides("device", data_dir=tmp_path / name, id=f"school-{name}")


def store_moves(s: Settings, actor: str, lessons: list[str], start: datetime | None = None
                ) -> None:
    """``actor`` opens ``lessons`` in order, a minute apart."""
    t = start or datetime.now(UTC) - timedelta(hours=1)
    events = []
    for i, lesson in enumerate(lessons):
        when = (t + timedelta(minutes=i)).isoformat()
        events.append((check_event({"id": str(uuid.uuid4()), "type": "lesson-opened",
                                    "resource": lesson, "time": when, "actor": actor,
                                    "view": "tablet"}, datetime.now(UTC), timedelta(0), 180),
                       Where(channel=CHANNEL, version=1, lesson=lesson, kind="lesson")))
    db = UsageDB(s.device.data_dir, s.usage)
    try:
        db.store([events])
    finally:
        db.close()


def test_the_counter_counts_moves_and_the_one_after():
    c = cousage.Counter()
    for lesson in ["a", "a", "b", "c", "b"]:
        c.add("t1", lesson)
    c.add("t2", "a")
    c.add("t2", "c")
    assert c.pairs == {"a": {"b": 1.0, "c": 1.5}, "b": {"c": 1.0}, "c": {"b": 1.0}}
    assert c.table()["a"] == [("c", 1.5), ("b", 1.0)]


def test_the_blend_follows_the_nation_until_the_school_has_seen_enough():
    national = [("n1", 10.0), ("n2", 5.0)]
    assert cousage.blend({}, national, set()) == ["n1", "n2"]
    assert cousage.blend({"s1": 2}, national, set())[0] == "n1"
    assert cousage.blend({"s1": 200}, national, set())[0] == "s1"
    assert cousage.blend({"s1": 200}, national, {"s1"}) == ["n1", "n2"]


def test_refresh_counts_only_new_events_and_rebuilds_a_damaged_file(tmp_path):
    s = settings_in(tmp_path)
    assert cousage.refresh(s) == 0 and not cousage.table_path(s.device.data_dir).exists()
    store_moves(s, "tablet-0001", [A, C])
    assert cousage.refresh(s) == 2
    path = cousage.table_path(s.device.data_dir)
    stamp = path.stat().st_mtime_ns
    assert cousage.refresh(s) == 0
    assert path.stat().st_mtime_ns == stamp          # nothing new: nothing written
    store_moves(s, "tablet-0001", [B])                # a move across two runs counts
    assert cousage.refresh(s) == 1
    assert cousage.load_state(path)[1].pairs == {A: {C: 1.0, B: 0.5}, C: {B: 1.0}}
    assert not list(path.parent.glob("*.tmp*"))
    path.write_text("{half a file")
    assert cousage.refresh(s) == 3                   # rebuilt from usage.db
    assert cousage.load_state(path)[1].pairs[A] == {C: 1.0, B: 0.5}


@pytest.fixture
def device(sample_device):
    with open(sample_device, "a", encoding="utf-8") as f:
        f.write("\n[captive]\nenabled = false\n")
    settings = load_settings(sample_device)
    return create_app(settings).test_client(), settings


def test_the_lesson_page_shows_next_and_what_this_school_went_on_to(device):
    client, s = device
    page = client.get(f"/lessons/{CHANNEL}/{A}").get_data(as_text=True)
    assert "课程中的下一课" in page and f"/lessons/{CHANNEL}/{B}" in page
    assert "data-recommended" not in page             # nothing counted yet
    for i in range(3):
        store_moves(s, f"tablet-000{i}", [A, C])
    cousage.refresh(s)
    page = client.get(f"/lessons/{CHANNEL}/{A}").get_data(as_text=True)
    assert f'data-recommended="{C}"' in page
    assert "<script" in page and "data-continue hidden" in page
    r = client.get(f"/api/v1/channels/{CHANNEL}/lessons/{A}/recommendations")
    doc = r.get_json()
    assert r.status_code == 200
    assert doc["next"][0]["id"] == B and doc["next"][0]["url"] == f"/lessons/{CHANNEL}/{B}"
    assert [o["id"] for o in doc["others"]] == [C]
    r = client.get(f"/api/v1/channels/{CHANNEL}/lessons/no-such-lesson/recommendations")
    assert r.status_code == 404 and "no-such-lesson" in r.get_json()["error"]["message"]


def test_the_loop_two_schools_to_a_signed_table_to_a_third_school(tmp_path):
    """Two devices record usage → drive outboxes → `ketang recommend build` → a signed
    release carrying the table → imported → "others went on to" shows it."""
    drives = tmp_path / "drives"
    keys = tmp_path / "device-keys"
    keys.mkdir()
    for n, name in enumerate(["north", "south"]):
        s = settings_in(tmp_path, name)
        for i in range(4):
            store_moves(s, f"tablet-{name}-{i}", [A, C, D])
        write_outbox(drives / name / "KETANG", s, {})
        shutil.copyfile(key_paths(s.device.data_dir)[1], keys / f"{name}-{n}.pub")
    runner = CliRunner()
    related = tmp_path / "related.json"
    r = runner.invoke(main, ["recommend", "build", str(drives), "--keys", str(keys),
                             "--out", str(related)])
    assert r.exit_code == 0, r.output
    assert "from 24 statements in 2 files" in r.output
    assert json.loads(related.read_text())["lessons"][A][0] == [C, 8.0]

    bundle = tmp_path / "bundle"
    r = runner.invoke(main, ["publish", str(SAMPLE_PACK), "--channel", CHANNEL, "--version",
                             "2", "--key", str(DEMO_KEY), "--out", str(bundle),
                             "--related", str(related)])
    assert r.exit_code == 0, r.output
    assert "co-usage of 2 lessons" in r.output
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    shutil.copyfile(DEMO_KEY.with_suffix(".pub"), trusted / "demo.pub")
    data = tmp_path / "third"
    import_bundle(bundle, Library(data), load_trusted_keys(trusted))
    config = write_config(tmp_path / "ketang.toml", data, trusted)
    with open(config, "a", encoding="utf-8") as f:
        f.write("\n[captive]\nenabled = false\n")
    client = create_app(load_settings(config)).test_client()
    page = client.get(f"/lessons/{CHANNEL}/{A}").get_data(as_text=True)
    assert f'data-recommended="{C}"' in page


def test_build_refuses_a_tampered_outbox_file_and_counts_the_rest(tmp_path):
    drives = tmp_path / "drives"
    keys = tmp_path / "device-keys"
    keys.mkdir()
    for name in ["north", "south"]:
        s = settings_in(tmp_path, name)
        store_moves(s, f"tablet-{name}", [A, C])
        write_outbox(drives / name / "KETANG", s, {})
        shutil.copyfile(key_paths(s.device.data_dir)[1], keys / f"{name}.pub")
    bad = next((drives / "south").rglob("usage-*.jsonl.gz"))
    bad.write_bytes(bad.read_bytes()[:-4] + b"xxxx")
    out = tmp_path / "related.json"
    r = CliRunner().invoke(main, ["recommend", "build", str(drives), "--keys", str(keys),
                                  "--out", str(out)])
    assert r.exit_code == 1
    assert f"Refused {bad}" in r.output and "from 2 statements in 1 files" in r.output


def test_build_reads_an_lrs_export_and_refuses_what_is_not_one(tmp_path):
    from appliance.usage import xapi
    from appliance.usage.db import Row

    s = settings_in(tmp_path)
    rows = [Row(i, str(uuid.uuid4()), "lesson-opened", f"2026-11-2{i}T08:00:00Z", "tab-01",
                "tablet", lesson, lesson, CHANNEL, 1, "", "", "lesson", {})
            for i, lesson in enumerate([A, B, C])]
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"statements": [xapi.statement(r, s, "dev") for r in rows],
                                  "more": ""}))
    out = tmp_path / "related.json"
    r = CliRunner().invoke(main, ["recommend", "build", str(export), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["lessons"] == {A: [[B, 1.0], [C, 0.5]], B: [[C, 1.0]]}
    export.write_text("[1, 2]")
    r = CliRunner().invoke(main, ["recommend", "build", str(export), "--out", str(out)])
    assert r.exit_code == 1 and "statement 1 is not an xAPI statement" in r.output
