"""The sync service in-process: real libtorrent and a feed served over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime
from pathlib import Path

import pytest

from appliance.config import parse_settings
from appliance.sync.feed import fetch_release, hand_to_sync, staged_folders, write_feed_index
from appliance.sync.service import SyncService
from appliance.sync.status import format_summary, sync_summary
from content_cache.errors import KetangError, SignatureError
from content_cache.keys import generate_keypair, load_private_key, load_trusted_keys, sign
from content_cache.library import Library

from .. import helpers
from ..content_cache.test_transfer import publish_big
from ..helpers import snapshot
from ..support.webseed import web_seed


def settings_for(tmp_path: Path, trusted: Path, **sync) -> object:
    doc = {
        "device": {"data_dir": str(tmp_path / "device"), "reserve_mb": 0},
        "trust": {"keys_dir": str(trusted)},
        "zeroconf": {"enabled": False},
        "sync": {"enabled": True, "listen_interfaces": "127.0.0.1:0", "lsd": False,
                 "resume_interval": 1, "poll_interval": 3600,
                 "status_file": str(tmp_path / "run" / "sync.json"), **sync},
    }
    return parse_settings(doc, "test")


def wait_for(cond, timeout: float = 60.0, what: str = "condition") -> None:
    helpers.wait_for(cond, timeout, what)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def feed(tmp_path, publisher_key):
    """A published release (no blobs on the device) served as a feed and web seed."""
    pair, trusted = publisher_key
    out = tmp_path / "out"
    out.mkdir()
    with web_seed(out) as (url, requests):
        publish_big(tmp_path, pair.private_path, lessons=4, size=300_000, web_seeds=[url])
        write_feed_index(out)
        yield url, out, trusted, requests


def start(settings, **kw) -> SyncService:
    svc = SyncService(settings, Library(settings.device.data_dir),
                      session_settings={"urlseed_wait_retry": 1}, **kw)
    svc.start()
    return svc


def test_service_takes_a_release_from_a_feed_and_activates_it(tmp_path, feed):
    url, out, trusted, requests = feed
    s = settings_for(tmp_path, trusted, feeds=[url])
    svc = start(s)
    lib = svc.library
    try:
        wait_for(lambda: lib.active_version("test-channel") == 1, what="activation")
        wait_for(lambda: sync_summary(s)["releases"]
                 and sync_summary(s)["releases"][0]["state"] == "seeding", 10, "status")
        summary = sync_summary(s)
        assert summary["running"] and summary["state"] == "idle"
        rel = summary["releases"][0]
        assert rel["needed_bytes"] == rel["done_bytes"] > 1_000_000
        assert rel["web_seeds"][0]["url"] == url
        assert summary["feeds"][0]["ok"] is True
        assert summary["window"]["open"] and summary["window"]["next_start"] is None
        assert "test-channel v1" in format_summary(summary)
        # The torrent is kept with the release, for this device's own feed.
        assert (lib.release_dir("test-channel", 1) / "release.torrent").is_file()
        assert any("/KETANG/blobs/" in r for r in requests)
    finally:
        svc.close()
    summary = sync_summary(s)
    assert not summary["running"] and summary["state"] == "off"
    assert (lib.data_dir / "sync/test-channel/1/resume.dat").is_file()


def test_downloads_wait_for_the_window(tmp_path, feed):
    url, out, trusted, requests = feed
    s = settings_for(tmp_path, trusted, windows=["01:00-06:00"])
    assert hand_to_sync(s.device.data_dir, trusted, out) == [
        "test-channel v1: 已交给同步服务 / handed to the sync service"]
    clock = Clock(datetime(2026, 11, 23, 14, 0))
    svc = start(s, clock=clock)
    try:
        wait_for(lambda: sync_summary(s)["state"] == "waiting-window", 10, "waiting")
        time.sleep(2)
        assert not any("/KETANG/blobs/" in r for r in requests)
        assert "01:00" in sync_summary(s)["message"]
        clock.now = datetime(2026, 11, 24, 1, 30)
        wait_for(lambda: svc.library.active_version("test-channel") == 1, what="activation")
    finally:
        svc.close()


def test_downloads_stop_when_the_quota_is_used_up(tmp_path, feed):
    url, out, trusted, requests = feed
    s = settings_for(tmp_path, trusted, daily_quota_mb=1)
    hand_to_sync(s.device.data_dir, trusted, out)
    # 2 MB crossed the uplink earlier today (counted before a restart).
    quota_file = Path(s.device.data_dir) / "sync/quota.json"
    quota_file.write_text(json.dumps({"day": datetime.now().date().isoformat(),
                                      "used": 2_000_000, "counter": 0, "boot": 0}))
    svc = start(s, counter=lambda: 0)
    try:
        wait_for(lambda: sync_summary(s)["state"] == "waiting-quota", 10, "quota")
        summary = sync_summary(s)
        assert summary["quota"]["used_bytes"] >= 2_000_000
        assert summary["quota"]["remaining_bytes"] == 0
        time.sleep(1.5)
        assert svc.library.active_version("test-channel") is None
        assert not any("/KETANG/blobs/" in r for r in requests)
    finally:
        svc.close()


def test_a_feed_with_a_bad_signature_is_refused_and_nothing_changes(tmp_path, feed):
    url, out, trusted, requests = feed
    rdir = out / "KETANG/releases/test-channel/1"
    other = generate_keypair(tmp_path / "other", "other")
    sig = rdir / "manifest.json.sig"
    sig.write_bytes(sign(load_private_key(other.private_path),
                         (rdir / "manifest.json").read_bytes()))
    with pytest.raises(SignatureError, match="does not trust"):
        fetch_release(url, "test-channel", 1, load_trusted_keys(trusted))
    s = settings_for(tmp_path, trusted, feeds=[url])
    data = Path(s.device.data_dir)
    data.mkdir(parents=True)
    before = snapshot(data)
    svc = start(s)
    try:
        wait_for(lambda: sync_summary(s)["feeds"] and
                 sync_summary(s)["feeds"][0]["ok"] is False, 20, "feed error")
        summary = sync_summary(s)
        assert "does not trust" in summary["feeds"][0]["error"]
        assert any("does not trust" in e for e in summary["errors"])
    finally:
        svc.close()
    assert snapshot(data) == before
    assert not requests or all("/blobs/" not in r and "release.torrent" not in r
                               for r in requests)


def test_the_signature_is_checked_before_the_manifest_is_read(tmp_path, feed):
    url, out, trusted, requests = feed
    manifest = out / "KETANG/releases/test-channel/1/manifest.json"
    manifest.write_bytes(b"{ not json at all")
    with pytest.raises(SignatureError, match="does not match its signature"):
        fetch_release(url, "test-channel", 1, load_trusted_keys(trusted))
    assert not any(r.endswith("release.torrent") for r in requests)


def test_hand_to_sync_refuses_a_torrent_of_another_release(tmp_path, feed, publisher_key):
    url, out, trusted, requests = feed
    s = settings_for(tmp_path, trusted)
    other = tmp_path / "other"
    other_src = tmp_path / "o"
    other_src.mkdir()
    from content_cache.publisher import publish

    from ..helpers import make_source
    publish(make_source(other_src, seed="z"), "test-channel", 1, publisher_key[0].private_path,
            other)
    shutil.copyfile(other / "KETANG/releases/test-channel/1/release.torrent",
                    out / "KETANG/releases/test-channel/1/release.torrent")
    with pytest.raises(KetangError, match="wrong torrent|another release"):
        hand_to_sync(s.device.data_dir, trusted, out)
    assert staged_folders(s.device.data_dir) == []
    assert hand_to_sync(s.device.data_dir, trusted, other, active={"test-channel": 1}) == [
        "test-channel v1: 已是最新 / this device already has v1"]


def test_sync_summary_without_a_service_says_so(tmp_path, publisher_key):
    s = settings_for(tmp_path, publisher_key[1], windows=["bad"])
    summary = sync_summary(s)
    assert summary["state"] == "off" and not summary["running"]
    assert "not running" in summary["message"]
    assert "HH:MM-HH:MM" in summary["window"]["error"]
    json.dumps(summary)
    with pytest.raises(KetangError, match="sync.windows"):
        SyncService(s, Library(tmp_path / "d"))
