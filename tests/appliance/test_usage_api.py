"""POST /api/v1/usage: validation, duplicates, limits, rollups, and SIGKILL durability."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import psutil
import pytest

from appliance.config import load_settings
from appliance.usage.db import UsageDB, db_path
from appliance.web.app import create_app
from appliance.web.context import state

from ..helpers import running_server

LESSON = "primary-g1-math-pep-v1-u3-l1"
VIDEO = LESSON + "-video"


def event(**kw) -> dict:
    """A valid event; keyword arguments replace fields."""
    doc = {"id": str(uuid.uuid4()), "type": "video-played",
           "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
           "actor": "5f0c2b1e-0d7a-4c41-9b7e-2f3a9c1d0e11", "view": "tablet",
           "resource": VIDEO, "extra": {"position": 0.0, "duration": 120.0}}
    doc.update(kw)
    return doc


@pytest.fixture
def client(sample_device, tmp_path):
    with open(sample_device, "a", encoding="utf-8") as f:
        f.write("\n[captive]\nenabled = false\n\n[usage]\nrate_per_minute = 1000\n"
                "commit_delay_ms = 0\n")
    settings = load_settings(sample_device)
    app = create_app(settings)
    return app.test_client(), settings.device.data_dir


def stored_ids(data_dir) -> set[str]:
    if not db_path(data_dir).exists():
        return set()
    return UsageDB(data_dir).ids()


def test_a_batch_is_stored_once_with_its_place_in_the_catalog(client):
    c, data = client
    events = [event(), event(type="lesson-opened", resource=LESSON, extra={}),
              event(type="projected", view="projector", resource=LESSON,
                    extra={"seconds": 1500})]
    r = c.post("/api/v1/usage", json={"events": events})
    assert r.status_code == 200, r.json
    assert r.json["stored"] == 3 and r.json["duplicates"] == 0
    assert r.json["ids"] == [e["id"] for e in events]
    again = c.post("/api/v1/usage", json={"events": events[:2] + [event()]})
    assert again.json["stored"] == 1 and again.json["duplicates"] == 2
    db = UsageDB(data)
    assert len(db.ids()) == 4
    rows = db.after(0, 10)
    assert rows[0].channel == "cn-basic-edu-demo" and rows[0].version == 1
    assert rows[0].lesson == LESSON and rows[0].kind == "video"
    roll = {(r["type"], r["view"]): r for r in db.rollups()}
    assert roll[("video-played", "tablet")]["events"] == 2
    assert roll[("video-played", "tablet")]["grade"] == "一年级"
    assert roll[("video-played", "tablet")]["subject"] == "数学"
    assert roll[("projected", "projector")]["seconds"] == 1500
    assert (data / "device.key").is_file() and (data / "device.pub").is_file()


def test_a_wrong_clock_is_corrected_by_sent_at(client):
    c, data = client
    off = datetime.now(UTC) - timedelta(days=400)  # a tablet that lost the date
    ev = event(time=off.isoformat())
    r = c.post("/api/v1/usage", json={"events": [ev], "sent_at": off.isoformat()})
    assert r.status_code == 200, r.json
    (row,) = UsageDB(data).after(0, 1)
    assert abs(datetime.fromisoformat(row.time.replace("Z", "+00:00")) -
               datetime.now(UTC)) < timedelta(minutes=1)


FUTURE = (datetime.now(UTC) + timedelta(days=2)).isoformat()
OLD = (datetime.now(UTC) - timedelta(days=400)).isoformat()


@pytest.mark.parametrize("bad, words", [
    ({"id": "123"}, "id must be a UUID"),
    ({"type": "danced"}, "type 'danced' is not one of"),
    ({"view": "phone"}, "view 'phone'"),
    ({"actor": "Zhang San"}, "actor must be the tablet's pseudonymous id"),
    ({"time": "yesterday"}, "time is not an ISO 8601 time"),
    ({"time": "2026-11-23T10:00:00"}, "has no time zone"),
    ({"time": FUTURE}, "is in the future"),
    ({"time": OLD}, "older than 180 days"),
    ({"resource": "../../etc/passwd"}, "resource must be a short id"),
    ({"extra": {"page": -1}}, "extra.page = -1"),
    ({"extra": {"name": "Li Lei"}}, "extra.name is not a known field"),
    ({"student": "Li Lei"}, "unknown fields ['student']"),
])
def test_a_bad_event_refuses_the_whole_batch_and_says_which(client, bad, words):
    c, data = client
    events = [event(), event(**bad), event()]
    r = c.post("/api/v1/usage", json={"events": events})
    assert r.status_code == 400
    err = r.json["error"]
    assert err["event"] == 1 and err["id"] == events[1].get("id")
    assert words in err["message"] and "event 1" in err["message"]
    assert "nothing of it was stored" in err["message"]
    assert stored_ids(data) == set()


def test_bad_bodies_are_refused(client):
    c, data = client
    r = c.post("/api/v1/usage", data=b"{not json", content_type="application/json")
    assert r.status_code == 400 and "not JSON" in r.json["error"]["message"]
    r = c.post("/api/v1/usage", json=[event()])
    assert r.status_code == 400 and '{"events": [...]}' in r.json["error"]["message"]
    r = c.post("/api/v1/usage", json={"events": []})
    assert r.status_code == 400 and "no events" in r.json["error"]["message"]
    r = c.post("/api/v1/usage", json={"events": [event() for _ in range(101)]})
    assert r.status_code == 400 and "at most 100" in r.json["error"]["message"]
    big = json.dumps({"events": [event(resource="x" * 100)] * 100, "pad": "x" * 300_000})
    r = c.post("/api/v1/usage", data=big, content_type="application/json")
    assert r.status_code == 413 and "at most 262144 bytes" in r.json["error"]["message"]
    assert stored_ids(data) == set()


def test_too_many_events_from_one_client_get_429(sample_device):
    with open(sample_device, "a", encoding="utf-8") as f:
        f.write("\n[usage]\nrate_per_minute = 30\n")
    settings = load_settings(sample_device)
    c = create_app(settings).test_client()
    assert c.post("/api/v1/usage", json={"events": [event() for _ in range(25)]}).status_code \
        == 200
    r = c.post("/api/v1/usage", json={"events": [event() for _ in range(10)]})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "at most 30 a minute" in r.json["error"]["message"]
    other = c.post("/api/v1/usage", json={"events": [event()]},
                   environ_base={"REMOTE_ADDR": "192.168.4.20"})
    assert other.status_code == 200
    assert len(UsageDB(settings.device.data_dir).ids()) == 26


def test_usage_off_keeps_nothing(sample_device):
    with open(sample_device, "a", encoding="utf-8") as f:
        f.write("\n[usage]\nenabled = false\n")
    settings = load_settings(sample_device)
    r = create_app(settings).test_client().post("/api/v1/usage", json={"events": [event()]})
    assert r.status_code == 403 and "usage.enabled" in r.json["error"]["message"]
    assert not db_path(settings.device.data_dir).exists()


def test_retention_and_cap(tmp_path):
    from appliance.config import UsageSettings
    from appliance.usage.db import UsageFull
    from appliance.usage.events import Where, check_event

    s = UsageSettings(max_mb=1, raw_max_mb=1, raw_max_days=30)
    db = UsageDB(tmp_path, s)
    now = datetime.now(UTC)
    old = check_event(event(time=(now - timedelta(days=29)).isoformat()), now,
                      timedelta(0), 30)
    db.store([[(old, Where())]])
    assert db.prune(now=now + timedelta(days=2)) == 1
    assert db.meta()["dropped"] == "1"
    assert db.rollups()  # rollups outlive raw events
    acknowledged: set[str] = set()
    with pytest.raises(UsageFull, match="not left the device yet"):
        for _ in range(60):  # ~6,000 events: more than 1 MB
            batch = [(check_event(event(resource="r" * 100), now, timedelta(0), 30), Where())
                     for _ in range(100)]
            db.store([batch])
            acknowledged |= {ev.id for ev, _ in batch}
    # Full of events that never left: every acknowledged one is kept, new ones refused.
    assert 1000 < len(acknowledged) < 6000
    assert db.ids() == acknowledged and "dropped" not in db.meta() or \
        db.meta()["dropped"] == "1"
    assert db_path(tmp_path).stat().st_size <= 1_000_000
    # Once the LRS has taken the first half, those make room for new events.
    rows = db.after(0, len(acknowledged))
    half = rows[len(rows) // 2].seq
    db.advance("lrs", half, "sent", len(rows) // 2)
    fresh = [(check_event(event(), now, timedelta(0), 30), Where()) for _ in range(100)]
    assert db.store([fresh]) == [[True] * 100]
    kept = db.ids()
    assert {r.id for r in rows if r.seq > half} <= kept          # nothing unsent removed
    assert {ev.id for ev, _ in fresh} <= kept
    assert db.meta()["dropped"] == "1"


def test_a_flood_from_many_addresses_never_pushes_out_acknowledged_events(sample_device):
    """100 addresses, each within its own limit, cannot make room by dropping the events
    acknowledged before: the device's own rate limit holds them to a bounded rate, and
    once the database is full new events get 503 with nothing acknowledged."""
    with open(sample_device, "a", encoding="utf-8") as f:
        f.write("\n[usage]\nmax_mb = 1\nraw_max_mb = 1\nrate_per_minute = 100\n"
                "device_rate_per_minute = 3000\ncommit_delay_ms = 0\n")
    settings = load_settings(sample_device)
    c = create_app(settings).test_client()
    earlier = [event() for _ in range(500)]
    for i in range(0, 500, 100):
        r = c.post("/api/v1/usage", json={"events": earlier[i:i + 100]},
                   environ_base={"REMOTE_ADDR": f"10.1.0.{i // 100}"})
        assert r.status_code == 200, r.json
    statuses: dict[int, int] = {}
    device_429 = full_503 = ""
    for _round in range(3):
        for a in range(100):
            r = c.post("/api/v1/usage", json={"events": [event(resource="r" * 100)
                                                         for _ in range(100)]},
                       environ_base={"REMOTE_ADDR": f"10.2.0.{a}"})
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 429:
                device_429 = r.json["error"]["message"]
            if r.status_code == 503:
                full_503 = r.json["error"]["message"]
                assert "ids" not in r.json and "stored" not in r.json
        limits = state(c.application).usage_limits
        limits._buckets.clear()      # a minute later: every bucket full again
    assert "from all tablets together" in device_429
    assert "nothing was acknowledged" in full_503 and "not left the device" in full_503
    assert statuses[200] < 100 and statuses[503] > 0
    kept = UsageDB(settings.device.data_dir).ids()
    assert {e["id"] for e in earlier} <= kept
    assert "dropped" not in UsageDB(settings.device.data_dir).meta()


def test_the_same_id_at_another_time_is_stored_once(client):
    c, data = client
    first = event()
    later = dict(first, time=(datetime.now(UTC) - timedelta(minutes=5)).isoformat())
    assert c.post("/api/v1/usage", json={"events": [first]}).json["stored"] == 1
    r = c.post("/api/v1/usage", json={"events": [later, event()]})
    assert r.json["stored"] == 1 and r.json["duplicates"] == 1
    assert r.json["ids"][0] == first["id"]
    # Also after a restart (a new writer reads the stored ids back) and in one commit.
    _app2 = create_app(load_settings(data.parent / "ketang.toml")).test_client()
    again = dict(first, time=(datetime.now(UTC) - timedelta(minutes=9)).isoformat())
    assert _app2.post("/api/v1/usage", json={"events": [again]}).json["duplicates"] == 1
    db = UsageDB(data)
    assert db.count_after(0) == 2
    assert sum(r["events"] for r in db.rollups()) == 2


@pytest.mark.parametrize("body", [
    "[" * 100_000 + "]" * 100_000,
    '{"events": [{"extra": ' + '{"a":' * 20_000 + "1" + "}" * 20_000 + "}]}",
])
def test_deeply_nested_json_is_a_400_and_stores_nothing(client, body):
    c, data = client
    r = c.post("/api/v1/usage", data=body, content_type="application/json")
    assert r.status_code == 400 and "nested too deeply" in r.json["error"]["message"]
    assert stored_ids(data) == set()
    assert c.post("/api/v1/usage", json={"events": [event()]}).status_code == 200


@pytest.mark.slow
def test_every_acknowledged_event_survives_sigkill(sample_device):
    """Tablets post while the server is SIGKILLed: every 2xx event is in the database."""
    with open(sample_device, "a", encoding="utf-8") as f:
        f.write("\n[usage]\nrate_per_minute = 1000000\n")
    acked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def tablet(host: str, port: int) -> None:
        actor = str(uuid.uuid4())
        while not stop.is_set():
            batch = [event(actor=actor) for _ in range(10)]
            body = json.dumps({"events": batch})
            try:
                conn = http.client.HTTPConnection(host, port, timeout=5)
                conn.request("POST", "/api/v1/usage", body,
                             {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                conn.close()
            except (OSError, http.client.HTTPException):  # killed mid-response: no ack
                continue
            if 200 <= r.status < 300:
                with lock:
                    acked.update(json.loads(data)["ids"])

    with running_server(sample_device) as url:
        parts = urlsplit(url)
        (server,) = [p for p in psutil.Process().children()
                     if "serve" in p.cmdline() and str(sample_device) in p.cmdline()]
        threads = [threading.Thread(target=tablet, args=(parts.hostname, parts.port))
                   for _ in range(8)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        stop.set()
        for t in threads:
            t.join()
    data_dir = load_settings(sample_device).device.data_dir
    assert len(acked) >= 300
    missing = acked - UsageDB(data_dir).ids()
    assert not missing, f"{len(missing)} acknowledged events were lost"
