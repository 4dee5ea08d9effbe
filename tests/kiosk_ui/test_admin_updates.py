"""The dashboard's software-update card (docs/updates.md): both slots' versions, the one
running, the last update and its outcome, the reason of a rollback; Chinese first, English
on request. Flask's test client over a real data folder and the status file that
``ketang update`` writes."""

from __future__ import annotations

import json
from pathlib import Path

from .test_admin import app, data, log_in  # noqa: F401 - the fixtures

ROLLED_BACK = {
    "booted_slot": "b", "booted_version": "0.2.0", "next_boot": "b",
    "slots": {"a": {"version": "0.3.0", "boot": "bad", "device": "/dev/vda2"},
              "b": {"version": "0.2.0", "boot": "good", "device": "/dev/vda3"}},
    "last_update": {"version": "0.3.0", "from_version": "0.2.0", "source": "drive",
                    "slot": "a", "outcome": "rolled-back",
                    "finished_at": "2026-11-30T18:02:11Z",
                    "reason": "ketang serve does not answer its front page (HTTP no answer)"},
    "last_refusal": {"bundle": "unknown.raucb", "reason": "signed by a key this device "
                     "does not trust"},
    "health": {"ok": True, "slot": "b", "at": "2026-11-30T18:09:40Z"},
}


def write_status(data_dir: Path, doc) -> None:
    path = data_dir / "updates" / "status.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")


def card(client) -> str:
    return client.get("/admin/status.json").json["sections"]["updates"]


def test_without_a_status_file_the_card_says_not_set_up(app, data):  # noqa: F811
    client = app.test_client()
    log_in(client)
    assert "未配置" in card(client)
    write_status(data, "{not json")                 # a damaged file: the same, no crash
    assert "未配置" in card(client)
    assert client.get("/admin/").status_code == 200


def test_a_rollback_shows_both_slots_the_running_one_and_the_reason(app, data):  # noqa: F811
    write_status(data, ROLLED_BACK)
    client = app.test_client()
    log_in(client)
    page = client.get("/admin/").get_data(as_text=True)
    assert 'id="section-updates"' in page
    html = card(client)
    for words in ("软件更新", "0.3.0", "0.2.0", "已放弃", "正常", "正在运行",
                  "已回退：原来的系统重新运行", "原因", "unknown.raucb", "2026-11-30 18:02:11",
                  "ketang serve does not answer its front page"):
        assert words in html, words
    assert 'class="slot slot-b booted"' in html
    client.get("/lang/en")
    html = card(client)
    for words in ("Software updates", "Rolled back: the previous system runs again",
                  "abandoned", "Running", "Why"):
        assert words in html, words


def test_an_install_cut_by_a_restart_shows_as_interrupted(app, data):  # noqa: F811
    client = app.test_client()
    log_in(client)
    here = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    doc = dict(ROLLED_BACK, last_update={"version": "0.4.0", "outcome": "installing",
                                         "boot_id": here, "started_at": "2026-11-30T19:00:00Z"})
    write_status(data, doc)
    assert "正在安装" in card(client)
    doc["last_update"]["boot_id"] = "another-boot"
    write_status(data, doc)
    html = card(client)
    assert "安装中断" in html and "正在安装" not in html
    assert json.loads((data / "updates" / "status.json").read_text()) == doc   # read only


def test_an_update_the_sync_service_fetches_shows_its_progress(data, tmp_path):  # noqa: F811
    """The sync service's software channel (its status file): the bundle, its state in
    words, the bytes; a refusal with RAUC's one line."""
    import os

    from appliance.config import Settings
    from appliance.web.app import create_app
    from content_cache.library import Library

    sync_file = tmp_path / "sync.json"
    s = Settings().with_overrides("device", data_dir=data).with_overrides(
        "sync", status_file=sync_file)
    web = create_app(s, Library(data))
    web.config["TESTING"] = True
    write_status(data, ROLLED_BACK)
    client = web.test_client()
    log_in(client)
    software = {"state": "waiting-window", "error": "", "bundle": "ketang-0.4.0-amd64.raucb",
                "version": "0.4.0", "kind": "whole-os", "size": 630_000_000,
                "done": 120_000_000, "source": "http://mirror.test/"}
    sync_file.write_text(json.dumps({"pid": os.getpid(), "state": "idle",
                                     "software": software}))
    html = card(client)
    for words in ("网络下载", "0.4.0", "等待传输时段", "120", "630"):
        assert words in html, words
    client.get("/lang/en")
    assert "Waiting for the transfer window" in card(client)
    sync_file.write_text(json.dumps({"pid": os.getpid(), "state": "idle", "software": dict(
        software, state="refused", error="The bundle is signed by a key this device does "
        "not trust")}))
    html = card(client)
    assert "Refused" in html and "does not trust" in html
    sync_file.write_text(json.dumps({"pid": os.getpid(), "state": "idle",
                                     "software": {"state": "idle", "error": ""}}))
    assert "Over the network" not in card(client)
