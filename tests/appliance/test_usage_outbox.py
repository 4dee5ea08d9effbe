"""Usage without an LRS: the drive outbox cursor, the status before any event, bad settings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from appliance.cli import main
from appliance.config import Settings
from appliance.drives.outbox import device_id, write_outbox
from appliance.usage import outbox as usage_outbox
from appliance.usage.db import UsageDB, db_path
from appliance.usage.events import Where, check_event
from appliance.usage.upload import in_windows, upload, usage_summary
from content_cache.errors import KetangError

usage_outbox.register()  # as the device does at start


def settings_in(tmp_path) -> Settings:
    return Settings().with_overrides("device", data_dir=tmp_path / "data", id="school-7")


def store(s: Settings, n: int) -> None:
    now = datetime.now(UTC)
    events = [check_event({"id": str(uuid.uuid4()), "type": "lesson-opened", "resource": "l1",
                           "time": now.isoformat(), "actor": "abcdef12-3456",
                           "view": "tablet"}, now, timedelta(0), 180) for _ in range(n)]
    UsageDB(s.device.data_dir, s.usage).store([[(e, Where()) for e in events]])


def test_the_status_before_any_event_is_all_zeros_and_writes_nothing(tmp_path):
    s = settings_in(tmp_path)
    summary = usage_summary(s)
    assert summary["events"] == summary["pending"] == summary["sent"] == 0
    assert summary["last_error"] == "" and summary["lrs_url"] == ""
    assert not db_path(s.device.data_dir).exists()
    assert write_outbox(tmp_path / "KETANG", s, {}) == []


def test_the_drive_cursor_moves_only_once_the_files_are_on_the_drive(tmp_path):
    s = settings_in(tmp_path)
    store(s, 12)
    bundle = tmp_path / "KETANG"
    (bundle / "outbox").mkdir(parents=True)
    (bundle / "outbox" / device_id(s)).write_text("a file where the folder should be")
    with pytest.raises(OSError):
        write_outbox(bundle, s, {})
    assert usage_summary(s)["carried"] == 0 and usage_summary(s)["pending"] == 12
    (bundle / "outbox" / device_id(s)).unlink()
    names = sorted(p.name for p in write_outbox(bundle, s, {}))
    assert names == ["usage-000000000001-000000000012.jsonl.gz",
                     "usage-000000000001-000000000012.jsonl.gz.sig"]
    summary = usage_summary(s)
    assert summary["carried"] == 12 and summary["pending"] == 0
    store(s, 3)  # the next trip carries only what is new
    assert [p.name for p in write_outbox(bundle, s, {})][0] == \
        "usage-000000000013-000000000015.jsonl.gz"


def test_upload_needs_an_lrs_and_windows_must_be_ranges(tmp_path):
    s = settings_in(tmp_path)
    with pytest.raises(KetangError, match="usage.lrs_url is empty"):
        upload(s)
    with pytest.raises(KetangError, match="usage.upload_windows: '25:00' is not a range"):
        in_windows(["25:00"])
    noon = datetime(2026, 11, 23, 12, 0)
    assert in_windows(["22:00-06:00"], noon.replace(hour=23))
    assert in_windows(["22:00-06:00"], noon.replace(hour=5))
    assert not in_windows(["22:00-06:00"], noon)
    assert in_windows([], noon)


def test_usage_key_prints_the_same_key_each_time(tmp_path):
    data = tmp_path / "data"
    runner = CliRunner()
    first = runner.invoke(main, ["usage", "key", "--data-dir", str(data)])
    assert first.exit_code == 0, first.output
    assert "BEGIN PUBLIC KEY" in first.output and (data / "device.key").stat().st_mode & 0o077 == 0
    again = runner.invoke(main, ["usage", "key", "--data-dir", str(data)])
    assert again.output == first.output
