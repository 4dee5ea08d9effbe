"""`ketang report`: the district's self-contained HTML usage report from drive outboxes
or an LRS export, per school and for all, with the schools that have gone quiet."""

from __future__ import annotations

import re
import shutil
import uuid
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from appliance.cli import main
from appliance.config import Settings
from appliance.drives.outbox import write_outbox
from appliance.usage import outbox as usage_outbox
from appliance.usage.db import UsageDB
from appliance.usage.events import Where, check_event
from appliance.usage.keys import key_paths

usage_outbox.register()  # as the device does at start

LESSON = "primary-g1-math-pep-v1-u3-l1"


def school(tmp_path, name: str, days_ago: int, n: int) -> Settings:
    s = Settings().with_overrides("device", data_dir=tmp_path / name, id=f"id-{name}",
                                  name=name)
    now = datetime.now(UTC)
    when = (now - timedelta(days=days_ago)).isoformat()
    events = [(check_event({"id": str(uuid.uuid4()), "type": t, "resource": LESSON,
                            "time": when, "actor": f"tablet-{days_ago}-{i}", "view": view},
                           now, timedelta(0), 180),
               Where("cn-basic-edu-demo", 1, LESSON, "一年级", "数学", "lesson"))
              for i in range(n) for t, view in [("projected", "projector"),
                                                ("lesson-opened", "tablet")]]
    db = UsageDB(s.device.data_dir, s.usage)
    try:
        db.store([events])
    finally:
        db.close()
    return s


def drives_of(tmp_path, schools: list[tuple[str, int, int]]):
    drives, keys = tmp_path / "drives", tmp_path / "keys"
    keys.mkdir()
    for name, days_ago, n in schools:
        s = school(tmp_path, name, days_ago, n)
        write_outbox(drives / name / "KETANG", s, {})
        shutil.copyfile(key_paths(s.device.data_dir)[1], keys / f"{name}.pub")
    return drives, keys


def test_the_report_has_every_school_its_charts_and_who_went_quiet(tmp_path):
    drives, keys = drives_of(tmp_path, [("东风小学", 1, 3), ("红星小学", 30, 2)])
    out = tmp_path / "report"
    r = CliRunner().invoke(main, ["report", str(drives), "--keys", str(keys), "--out",
                                  str(out)])
    assert r.exit_code == 0, r.output
    assert "Report of 2 schools (1 late) from 10 statements" in r.output
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "1 schools have not reported for 14 days or more" in index
    late = re.search(r'<tr class="late">(.*?)</tr>', index).group(1)
    assert "红星小学" in late and "<td>30</td>" in late
    assert index.count("<svg") == 4 and "<script" not in index
    assert not re.search(r'(src|href)="(https?:)?//', index)      # self-contained
    pages = sorted(p.name for p in out.glob("school-*.html"))
    assert pages == ["school-1.html", "school-2.html"]
    page = (out / "school-1.html").read_text(encoding="utf-8")
    assert "东风小学" in page and "数学" in page and page.count("<svg") == 4


def test_a_tampered_outbox_file_is_refused_and_left_out_of_the_report(tmp_path):
    drives, keys = drives_of(tmp_path, [("东风小学", 1, 3), ("红星小学", 2, 2)])
    bad = next((drives / "红星小学").rglob("usage-*.jsonl.gz"))
    bad.write_bytes(b"\x1f\x8b" + bad.read_bytes()[2:-3] + b"abc")
    out = tmp_path / "report"
    r = CliRunner().invoke(main, ["report", str(drives), "--keys", str(keys), "--out",
                                  str(out)])
    assert r.exit_code == 1
    assert f"Refused {bad}" in r.output and "Report of 1 schools" in r.output
    assert "红星小学" not in (out / "index.html").read_text(encoding="utf-8")


def test_the_report_needs_usage_to_read(tmp_path):
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["report", str(tmp_path / "empty"), "--out",
                                  str(tmp_path / "out")])
    assert r.exit_code == 1 and "holds no KETANG/outbox/ folder" in r.output
    assert not (tmp_path / "out").exists()


def test_the_report_draws_lessons_per_week_by_class_from_the_class_in_the_statements(
        tmp_path):
    """A class's number travels in part-projected statements (its name does not leave
    the device): the report names it by school, grade, subject and number."""
    from appliance.usage.figures import statement_figures
    from appliance.usage.sources import load

    s = school(tmp_path, "东风小学", 1, 1)
    now = datetime.now(UTC)
    parts = [(check_event({"id": str(uuid.uuid4()), "type": "part-projected",
                           "resource": f"{LESSON}-{p}", "lesson": LESSON,
                           "time": (now - timedelta(days=1)).isoformat(),
                           "actor": "proj-0001", "view": "projector",
                           "extra": {"class": 3}}, now, timedelta(0), 180),
              Where("cn-basic-edu-demo", 1, LESSON, "一年级", "数学", "video"))
             for p in ("video", "pdf", "video")]
    db = UsageDB(s.device.data_dir, s.usage)
    try:
        db.store([parts])
    finally:
        db.close()
    drives, keys = tmp_path / "drives", tmp_path / "keys"
    keys.mkdir()
    write_outbox(drives / "东风小学" / "KETANG", s, {})
    shutil.copyfile(key_paths(s.device.data_dir)[1], keys / "东风小学.pub")
    out = tmp_path / "report"
    r = CliRunner().invoke(main, ["report", str(drives), "--keys", str(keys), "--out",
                                  str(out)])
    assert r.exit_code == 0, r.output
    page = (out / "school-1.html").read_text(encoding="utf-8")
    assert "Lessons taught per week, by class" in page
    assert "一年级数学 班级 class 3" in page
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "东风小学 · 一年级数学 班级 class 3" in index
    statements = load(drives, keys).statements
    everyone, schools = statement_figures(statements)
    week = sum(schools["东风小学"].classes["一年级数学 班级 class 3"])
    assert week == 1                                   # one lesson, whatever its parts
