"""Usage statements against a real LRS (Ralph): exactly once, failures, the drive path."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from appliance.config import load_settings
from appliance.drives.outbox import write_outbox
from appliance.usage import outbox as usage_outbox
from appliance.usage.db import UsageDB
from appliance.usage.events import Where, check_event
from appliance.usage.upload import upload, usage_summary

from ..helpers import KETANG
from ..support.lrs import ralph_missing, running_ralph
from ..support.lrs_proxy import FlakyLrs
from ..support.needs import require

require(ralph_missing() or None)

pytestmark = pytest.mark.slow
LESSON = "primary-g1-math-pep-v1-u3-l1"

usage_outbox.register()  # as the device does at start


@pytest.fixture(scope="module")
def lrs(tmp_path_factory):
    with running_ralph(tmp_path_factory.mktemp("ralph")) as lrs:
        yield lrs


def device(config, lrs_url: str, username: str, password: str, extra: str = ""):
    """The device's settings with a [usage] section naming this LRS (the file rewritten)."""
    base = config.with_suffix(".base")
    if not base.exists():
        shutil.copyfile(config, base)
    shutil.copyfile(base, config)
    with open(config, "a", encoding="utf-8") as f:
        f.write(f'\n[usage]\nlrs_url = "{lrs_url}"\nlrs_username = "{username}"\n'
                f'lrs_password = "{password}"\nupload_batch = 40\nupload_timeout = 2\n'
                f'upload_retries = 2\n{extra}')
    return load_settings(config)


def add_events(settings, n: int) -> list[str]:
    """Store ``n`` events as the API would (with their place in the catalog)."""
    db = UsageDB(settings.device.data_dir, settings.usage)
    now = datetime.now(UTC)
    kinds = [("video-progress", LESSON + "-video", {"position": 30.0, "seconds": 30.0}),
             ("lesson-opened", LESSON, {}), ("pdf-page-viewed", LESSON + "-pdf", {"page": 2}),
             ("exercise-answered", LESSON + "-exercise", {"correct": True}),
             ("projected", LESSON, {"seconds": 1200.0}),
             ("video-played", LESSON + "-video", {"position": 0.0, "duration": 6.0}),
             ("video-paused", LESSON + "-video", {"position": 3.5, "seconds": 3.5}),
             ("video-completed", LESSON + "-video", {"position": 6.0, "seconds": 2.5}),
             ("exercise-attempted", LESSON + "-exercise", {}),
             ("app-opened", LESSON + "-html5", {})]  # every type, so the LRS checks each
    events = []
    for i in range(n):
        etype, res, extra = kinds[i % len(kinds)]
        doc = {"id": str(uuid.uuid4()), "type": etype, "resource": res,
               "time": (now - timedelta(seconds=n - i)).isoformat(), "extra": extra,
               "actor": f"9a1b2c3d-0000-4000-8000-00000000000{i % 7}",
               "view": "projector" if etype == "projected" else "tablet"}
        events.append(check_event(doc, now, timedelta(0), 180))
    where = Where("cn-basic-edu-demo", 1, LESSON, "一年级", "数学", "video")
    db.store([[(e, where) for e in events]])
    return [e.id for e in events]


def held(lrs, ids) -> Counter:
    """How many times the LRS holds each of ``ids``."""
    wanted = set(ids)
    return Counter(s["id"] for s in lrs.statements() if s["id"] in wanted)


def test_exactly_once_through_repeats_and_lost_acknowledgements(sample_device, lrs):
    s = device(sample_device, lrs.url, lrs.username, lrs.password)
    ids = add_events(s, 130)
    first = upload(s, backoff=0.01)
    assert (first.sent, first.pending, first.error) == (130, 0, ""), first.error
    again = upload(s, backoff=0.01)
    assert again.sent == 0
    assert held(lrs, ids) == Counter({i: 1 for i in ids})
    (st,) = [x for x in lrs.statements() if x["id"] == ids[0]]
    assert st["verb"]["id"] == "http://adlnet.gov/expapi/verbs/progressed"
    assert st["actor"]["account"]["homePage"] == "http://ketang.lan"
    assert st["object"]["id"] == f"http://ketang.lan/resource/cn-basic-edu-demo/{LESSON}-video"

    # The LRS stores two batches but the device never hears it acknowledge them.
    more = add_events(s, 150)
    proxy = FlakyLrs(lrs.url).start()
    try:
        flaky = device(sample_device, proxy.url, lrs.username, lrs.password)
        proxy.mode, proxy.lose_after = "lose-ack", 1
        cut = upload(flaky, backoff=0.01)
        assert cut.sent == 40 and cut.error and cut.pending == 110
        assert usage_summary(flaky)["last_error"] == cut.error
        assert len(held(lrs, more)) > 40  # the LRS holds more than the device knows
        proxy.mode = "pass"
        rest = upload(flaky, backoff=0.01)
        assert (rest.sent, rest.pending, rest.error) == (110, 0, "")
    finally:
        proxy.stop()
    assert held(lrs, ids + more) == Counter({i: 1 for i in ids + more})
    summary = usage_summary(flaky)
    assert summary["sent"] == 280 and summary["pending"] == 0 and summary["last_error"] == ""


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_an_lrs_that_fails_loses_nothing_and_is_tried_again(sample_device, lrs, mode):
    proxy = FlakyLrs(lrs.url).start()
    proxy.mode, proxy.hang_seconds = mode, 3.0
    try:
        s = device(sample_device, proxy.url, lrs.username, lrs.password)
        ids = add_events(s, 50)
        r = upload(s, backoff=0.01)
        assert r.sent == 0 and r.pending == 50
        assert ("HTTP 500" if mode == "error" else "did not answer in 2 s") in r.error
        assert proxy.posts == 2  # upload_retries
        status = subprocess.run([*KETANG, "--config", str(sample_device), "usage", "status",
                                 "--json"], capture_output=True, text=True, check=True)
        doc = json.loads(status.stdout)
        assert doc["pending"] == 50 and doc["sent"] == 0 and doc["last_error"] == r.error
        out = subprocess.run([*KETANG, "--config", str(sample_device), "usage", "upload"],
                             capture_output=True, text=True)
        assert out.returncode == 1 and "Nothing was lost" in out.stderr
        proxy.mode = "pass"
        later = subprocess.run([*KETANG, "--config", str(sample_device), "usage", "upload"],
                               capture_output=True, text=True)
        assert later.returncode == 0, later.stderr
        assert "Uploaded 50 statements; 0 still pending" in later.stdout
    finally:
        proxy.stop()
    assert held(lrs, ids) == Counter({i: 1 for i in ids})


def test_two_uploads_at_once_send_each_batch_once(sample_device, lrs):
    """One uploader at a time per device, across processes: two `ketang usage upload`
    started together neither double-count nor post a batch twice."""
    proxy = FlakyLrs(lrs.url).start()
    proxy.mode, proxy.hang_seconds = "slow", 0.2
    try:
        s = device(sample_device, proxy.url, lrs.username, lrs.password)
        ids = add_events(s, 400)
        cmd = [*KETANG, "--config", str(sample_device), "usage", "upload", "--now"]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        proxy.stop()
    assert [p.returncode for p in procs] == [0, 0], outs
    said = sorted(outs, key=lambda o: "another upload is running" in o[0])
    assert "Uploaded 400 statements" in said[0][0] and "another upload" in said[1][0], outs
    assert proxy.posts == 10  # 400 statements in batches of 40, each posted once
    summary = usage_summary(s)
    assert summary["sent"] == 400 and summary["pending"] == 0
    assert held(lrs, ids) == Counter({i: 1 for i in ids})


def test_upload_waits_for_its_window(sample_device, lrs):
    now = datetime.now()
    window = f"{(now + timedelta(hours=2)):%H:%M}-{(now + timedelta(hours=3)):%H:%M}"
    s = device(sample_device, lrs.url, lrs.username, lrs.password,
               f'upload_windows = ["{window}"]\n')
    ids = add_events(s, 5)
    r = upload(s)
    assert r.sent == 0 and "outside the upload windows" in r.skipped
    assert upload(s, force=True).sent == 5
    assert len(held(lrs, ids)) == 5


def ketang_ingest(drive, lrs, keys):
    return subprocess.run([*KETANG, "usage", "ingest", str(drive), "--lrs", lrs.url,
                           "--keys", str(keys), "--user", lrs.username, "--password",
                           lrs.password], capture_output=True, text=True)


def test_drive_path_end_to_end_and_twice(sample_device, lrs, tmp_path):
    s = device(sample_device, "", "", "")
    ids = add_events(s, 120)
    drive = tmp_path / "drive"
    bundle = drive / "KETANG"
    written = write_outbox(bundle, s, {"status.json": b"{}"})
    usage = [p for p in written if p.name.startswith("usage-")]
    assert [p.name for p in usage] == ["usage-000000000001-000000000120.jsonl.gz",
                                      "usage-000000000001-000000000120.jsonl.gz.sig"]
    lines = gzip.decompress(usage[0].read_bytes()).splitlines()
    assert [json.loads(x)["id"] for x in lines] == ids
    summary = usage_summary(s)
    assert summary["carried"] == 120 and summary["pending"] == 0
    assert summary["pending_lrs"] == 120  # an LRS upload would still send them (harmlessly)
    # A second trip has nothing new to carry.
    assert [p.name for p in write_outbox(bundle, s, {})] == []

    keys = tmp_path / "device-keys"
    keys.mkdir()
    shutil.copyfile(s.device.data_dir / "device.pub", keys / "school-1.pub")
    first = ketang_ingest(drive, lrs, keys)
    assert first.returncode == 0, first.stderr
    assert "Ingested 1 files, 120 statements" in first.stdout
    twice = ketang_ingest(drive, lrs, keys)
    assert twice.returncode == 0, twice.stderr
    assert held(lrs, ids) == Counter({i: 1 for i in ids})
    # The LRS upload of the same statements later adds nothing either.
    s2 = device(sample_device, lrs.url, lrs.username, lrs.password)
    assert upload(s2, backoff=0.01).sent == 120
    assert held(lrs, ids) == Counter({i: 1 for i in ids})


def test_a_tampered_or_unknown_usage_file_is_refused(sample_device, lrs, tmp_path):
    s = device(sample_device, "", "", "")
    ids = add_events(s, 30)
    bundle = tmp_path / "drive" / "KETANG"
    (gz, _sig) = sorted(write_outbox(bundle, s, {}))
    keys = tmp_path / "device-keys"
    keys.mkdir()
    other = tmp_path / "other-keys"
    from content_cache.keys import generate_keypair
    generate_keypair(other, "another-school")
    shutil.copyfile(other / "another-school.pub", keys / "another-school.pub")
    unknown = ketang_ingest(tmp_path / "drive", lrs, keys)
    assert unknown.returncode == 1
    assert "which this device does not trust" in unknown.stdout

    shutil.copyfile(s.device.data_dir / "device.pub", keys / "school-1.pub")
    data = bytearray(gz.read_bytes())
    data[len(data) // 2] ^= 0x01
    gz.write_bytes(bytes(data))
    tampered = ketang_ingest(tmp_path / "drive", lrs, keys)
    assert tampered.returncode == 1
    assert f"Refused {gz}" in tampered.stdout
    assert "does not match its signature" in tampered.stdout
    assert "1 files refused" in tampered.stderr
    assert held(lrs, ids) == Counter()


def test_ketang_serve_uploads_on_its_own_schedule(sample_device, lrs):
    """Tablets post to a running server; it sends their statements to the LRS by itself."""
    import time
    import urllib.request

    from ..helpers import running_server

    device(sample_device, lrs.url, lrs.username, lrs.password, "upload_interval = 1\n")
    now = datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in range(5)]
    batch = {"events": [{"id": i, "type": "lesson-opened", "resource": LESSON,
                         "time": (now - timedelta(seconds=5 - n)).isoformat(),
                         "actor": "9a1b2c3d-0000-4000-8000-000000000001", "view": "tablet"}
                        for n, i in enumerate(ids)]}
    with running_server(sample_device) as base:
        req = urllib.request.Request(f"{base}/api/v1/usage", data=json.dumps(batch).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
        deadline = time.monotonic() + 30
        while held(lrs, ids) != Counter({i: 1 for i in ids}) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert held(lrs, ids) == Counter({i: 1 for i in ids})
