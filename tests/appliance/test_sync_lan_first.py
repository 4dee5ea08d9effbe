"""LAN first, the hub, and the limits of each link (appliance/sync/township.py), with
the real sync service where it matters: libtorrent sessions and HTTP on 127.0.0.1.

The township as a whole (namespaces, a bridge, emulated uplinks) is
tests/appliance/test_sync_township.py (slow).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest

from appliance.sync.feed import FeedError, read_device_feed, staged_folders
from appliance.sync.service import SyncService
from appliance.sync.status import sync_summary
from appliance.sync.township import (
    ByteSources,
    elect_hub,
    in_networks,
    lan_pieces,
    lan_supply,
    mirror_share,
    missing_pieces,
    network_range,
    own_pieces,
    web_seed_wanted,
)
from content_cache.errors import KetangError
from content_cache.keys import generate_keypair
from content_cache.library import Library

from ..content_cache.test_transfer import publish_big
from ..helpers import snapshot
from ..support.webseed import web_seed
from .test_sync_service import Clock, feed, settings_for, start, wait_for  # noqa: F401

# -- the hub -------------------------------------------------------------------------


def test_the_lowest_candidate_id_is_the_hub_on_every_device():
    devices = {"school-03": True, "school-01": True, "school-02": True, "school-00": False}
    views = {}
    for me in devices:
        others = [d for d in devices if d != me]
        hub = elect_hub(me, "auto" if devices[me] else "never",
                        [d for d in others if devices[d]], others)
        views[me] = hub
    assert {h.id for h in views.values()} == {"school-01"}  # school-00 is "never"
    assert views["school-01"].is_self and views["school-01"].how == "elected"
    assert not views["school-02"].is_self


def test_a_configured_hub_wins_while_it_answers_then_the_election_decides():
    assert elect_hub("b", "z", ["a", "z"], ["a", "z"]).id == "z"
    assert elect_hub("b", "z", ["a", "z"], ["a", "z"]).how == "configured"
    assert elect_hub("z", "z", [], ["a"]).is_self
    gone = elect_hub("b", "z", ["a"], ["a"])   # z stopped answering
    assert (gone.id, gone.how) == ("a", "elected")


def test_the_next_device_takes_over_when_the_hub_stops_answering():
    alive = ["a", "c"]
    assert elect_hub("b", "auto", alive, alive).id == "a"
    alive.remove("a")
    after = elect_hub("b", "auto", alive, alive)
    assert after.id == "b" and after.is_self


def test_a_school_alone_is_its_own_hub_as_before():
    alone = elect_hub("x", "auto", [], [])
    assert alone.is_self and alone.how == "alone"
    never = elect_hub("x", "never", [], [])
    assert never.id == "" and not never.is_self
    nobody = elect_hub("x", "never", [], ["y"])  # y answers but is no candidate
    assert nobody.id == "" and not nobody.is_self


# -- LAN first -----------------------------------------------------------------------


@pytest.mark.parametrize("uplink_open,uses_uplink,lan,idle,want", [
    (True, True, False, 0, True),      # hub, no neighbour has the pieces: the mirror
    (True, True, True, 0, False),      # hub, a neighbour has them: the LAN first
    (True, True, True, 61, True),      # ... unless the LAN stalled
    (True, False, False, 10, False),   # not the hub: wait for the hub's pieces
    (True, False, False, 60, True),    # ... until the LAN stalled
    (True, False, True, 5, False),
    (False, True, False, 999, False),  # outside the window: never the uplink
    (False, False, True, 0, False),
])
def test_web_seeds_wait_for_the_lan(uplink_open, uses_uplink, lan, idle, want):
    assert web_seed_wanted(uplink_open=uplink_open, uses_uplink=uses_uplink,
                           lan_can_supply=lan, lan_idle=idle, stall=60) is want


def test_a_new_transfer_gives_neighbours_that_have_it_a_head_start():
    """Just started, a neighbour known to hold the release, its pieces not seen yet: the
    hub does not ask the mirror first."""
    assert web_seed_wanted(uplink_open=True, uses_uplink=True, lan_can_supply=False,
                           lan_idle=1, stall=60, lan_expected=True) is False
    assert web_seed_wanted(uplink_open=True, uses_uplink=True, lan_can_supply=False,
                           lan_idle=61, stall=60, lan_expected=True) is True


def test_lan_supply_counts_wanted_pieces_a_peer_has():
    ours = [True, False, False, False]
    wanted = [True, True, True, False]
    assert lan_supply(ours, wanted, [[True, True, False, True]]) == 1
    assert lan_supply(ours, wanted, [[True, False, False, True], [False, True, True]]) == 2
    assert lan_supply(ours, wanted, []) == 0


def test_lan_pieces_and_missing_pieces():
    ours, wanted = [True, False, False, False], [True, True, True, False]
    assert missing_pieces(ours, wanted) == {1, 2}
    assert lan_pieces(ours, wanted, [[False, False, True, True]]) == {2}


# -- shares of the mirror ----------------------------------------------------------------


def _views(devices: dict[str, tuple[int, int, bool]], version: int = 2):
    """Each device's share as it sees the others: devices id -> (holds, fetches, candidate)."""
    return {me: mirror_share(me, devices[me][2], version,
                             [(d, *devices[d]) for d in devices if d != me])
            for me in devices}


def test_schools_fetching_together_split_the_mirrors_pieces_once():
    """Every school computes the same split; each missing piece is fetched from the
    mirror by exactly one of them; what a LAN peer has is fetched by none."""
    devices = {f"school-{i:02d}": (1, 2 if i < 3 else 0, True) for i in range(8)}
    views = _views(devices)
    assert sorted(views.values()) == [(r, 8) for r in range(8)]
    assert views["school-00"] == (0, 8) and views["school-07"] == (7, 8)
    missing = list(range(3, 40))
    on_lan = {5, 6, 7}
    shares = [own_pieces(missing, v, on_lan) for v in views.values() if v]
    got = sorted(p for share in shares for p in share)
    assert got == sorted(set(missing) - on_lan)  # once each, nothing the LAN has
    assert max(len(x) for x in shares) - min(len(x) for x in shares) <= 2


def test_no_share_when_a_neighbour_holds_the_release_or_nobody_fetches_with_us():
    assert mirror_share("a", True, 2, [("b", 2, 0, True), ("c", 1, 2, True)]) is None
    assert mirror_share("a", True, 2, []) is None            # alone: as before
    assert mirror_share("a", True, 2, [("b", 0, 0, True)]) is None  # b lacks the channel
    assert mirror_share("a", True, 2, [("b", 1, 0, False)]) is None  # b is "never"


def test_a_device_that_may_not_use_its_uplink_fetches_no_share():
    assert mirror_share("a", False, 2, [("b", 1, 2, True), ("c", 1, 0, True)]) == (-1, 2)
    assert own_pieces(range(10), (-1, 2), []) == []


def test_when_a_school_stops_answering_its_pieces_are_split_among_the_rest():
    devices = {"a": (1, 2, True), "b": (1, 2, True), "c": (1, 2, True)}
    before = _views(devices)
    del devices["a"]  # dropped out after sync.hub_timeout
    after = _views(devices)
    assert before["b"] == (1, 3) and after["b"] == (0, 2) and after["c"] == (1, 2)
    missing = range(12)
    assert sorted(own_pieces(missing, after["b"], []) + own_pieces(missing, after["c"], [])) \
        == list(missing)


def test_lan_networks():
    assert in_networks("10.21.0.5", ["10.0.0.0/8"])
    assert not in_networks("198.19.0.1", ["10.0.0.0/8", "bad"])
    assert not in_networks("not an address", ["10.0.0.0/8"])
    assert in_networks("fe80::1%eth0", ["fe80::/10"])
    assert network_range("192.168.1.0/24") == ("192.168.1.0", "192.168.1.255")


def test_byte_sources_count_the_lan_and_the_mirror():
    b = ByteSources()
    b.update([("10.0.0.2", 6881, False, 1000), ("198.19.0.1", 8080, True, 500)], 1500, True)
    assert (b.lan, b.mirror) == (1000, 500)
    # A LAN peer sent 300 more then closed; web seeds were off: the rest is the LAN's.
    b.update([("198.19.0.1", 8080, True, 500)], 1800, False)
    assert (b.lan, b.mirror) == (1300, 500)
    # The web seed reconnected (its counter starts again) and a LAN peer came back.
    b.update([("198.19.0.1", 8080, True, 100), ("10.0.0.2", 6881, False, 100)], 2000, True)
    assert (b.lan, b.mirror) == (1400, 600)
    # 400 more over connections that closed, both kinds ran: shared as sampled (1:1).
    b.update([], 2400, True)
    assert (b.lan, b.mirror) == (1600, 800)
    b.update([], 2400, True)  # nothing new
    assert (b.lan, b.mirror) == (1600, 800)


# -- a neighbour's feed ----------------------------------------------------------------


def _device_feed(root: Path, doc) -> None:
    d = root / "sync/feed/KETANG"
    d.mkdir(parents=True, exist_ok=True)
    (d / "feed.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))


GOOD = {"format": "ketang-feed/1", "channels": {"test-channel": 1}, "web_seed": True,
        "device": {"id": "aaa", "hub_candidate": True, "hub": "aaa"},
        "fetching": {"test-channel": 2}, "upstream_web_seed": True}


@pytest.mark.parametrize("bad", [
    "{not json", "[]", {**GOOD, "device": "aaa"}, {**GOOD, "device": {"id": "../x"}},
    {**GOOD, "device": {"id": "a", "hub": 7}}, {**GOOD, "fetching": {"test-channel": -1}},
    {**GOOD, "fetching": {"../x": 1}}, {**GOOD, "fetching": []},
    {**GOOD, "format": "other"}, {**GOOD, "channels": {"c": True}},
])
def test_a_bad_neighbour_feed_is_refused_in_words(tmp_path, bad):
    _device_feed(tmp_path, bad)
    with web_seed(tmp_path) as (url, _):
        with pytest.raises(FeedError, match="not a Ketang device's feed"):
            read_device_feed(url + "sync/feed/")


def test_a_neighbour_feed_says_what_it_holds_and_fetches(tmp_path):
    _device_feed(tmp_path, GOOD)
    with web_seed(tmp_path) as (url, _):
        f = read_device_feed(url + "sync/feed/")
    assert (f.id, f.hub_candidate, f.hub) == ("aaa", True, "aaa")
    assert f.active == {"test-channel": 1} and f.fetching == {"test-channel": 2}
    assert f.upstream_web_seed


def _peer(url: str, dev_id: str = "aaa", bt_port: int | None = None, channels=None) -> dict:
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    return {"id": dev_id, "name": f"Ketang {dev_id}", "addresses": ["127.0.0.1"], "port": port,
            "bt_port": bt_port, "channels": channels or {}}


def test_a_release_with_a_bad_signature_from_a_neighbour_is_refused(tmp_path, publisher_key):
    """A neighbour offers a release signed by a key this device does not trust: refused
    in words, nothing staged, nothing in the data folder changed."""
    _, trusted = publisher_key
    other = generate_keypair(tmp_path / "other", "other")
    root = tmp_path / "neighbour"
    publish_big(tmp_path, other.private_path, lessons=2, size=50_000)
    (root / "sync/feed").mkdir(parents=True)
    (tmp_path / "out/KETANG").rename(root / "sync/feed/KETANG")
    _device_feed(root, {**GOOD, "channels": {}, "fetching": {"test-channel": 1}})
    s = settings_for(tmp_path, trusted, hub_timeout=4)
    data = Path(s.device.data_dir)
    data.mkdir(parents=True)
    before = snapshot(data)
    with web_seed(root) as (url, requests):
        svc = SyncService(s, Library(data), dev_id="bbb")
        svc.peer_source = lambda: [_peer(url)]
        svc.start()
        try:
            wait_for(lambda: any("does not trust" in e for e in sync_summary(s)["errors"]),
                     20, "the neighbour's release to be refused")
            township = sync_summary(s)["township"]
            assert township["hub"] == "aaa" and not township["uses_uplink"]
            assert township["neighbours"][0]["ok"]
        finally:
            svc.close()
    assert staged_folders(data) == []
    assert snapshot(data) == before
    assert not any(r.endswith("release.torrent") for r in requests)  # signature first


def test_a_neighbour_that_lies_about_its_id_is_ignored(tmp_path, publisher_key):
    _, trusted = publisher_key
    _device_feed(tmp_path / "n", GOOD)
    s = settings_for(tmp_path, trusted, hub_timeout=4)
    with web_seed(tmp_path / "n") as (url, _):
        svc = SyncService(s, Library(s.device.data_dir), dev_id="bbb")
        svc.peer_source = lambda: [_peer(url, dev_id="zzz")]
        svc.start()
        try:
            wait_for(lambda: any("zeroconf announced 'zzz'" in e
                                 for e in sync_summary(s)["errors"]), 20, "the lie")
            assert sync_summary(s)["township"]["hub"] == "bbb"
        finally:
            svc.close()


def test_bad_township_settings_are_refused(tmp_path, publisher_key):
    for bad in ({"hub_timeout": 1}, {"lan_stall_seconds": 0}, {"lan_networks": ["10.0.0/33"]}):
        s = settings_for(tmp_path, publisher_key[1], **bad)
        with pytest.raises(KetangError, match="sync.hub_timeout|sync.lan_networks"):
            SyncService(s, Library(tmp_path / "d"))


# -- with a neighbour that holds the release -----------------------------------------------


def _seeder(tmp_path: Path, url: str, trusted: Path, requests: list[str]) -> SyncService:
    """Device A: takes v1 from the feed, then seeds it."""
    s = settings_for(tmp_path / "a", trusted, feeds=[url])
    a = start(s)
    wait_for(lambda: a.library.active_version("test-channel") == 1, what="A's activation")
    wait_for(lambda: any(j.state == "seeding" and j.transfer.handle is not None
                         for j in a.jobs.values()), 10, "A to seed")
    return a


def test_the_lan_goes_first_and_outside_the_window(tmp_path, feed):  # noqa: F811
    """B's uplink window is closed, yet it takes the release from neighbour A over the
    LAN; its web seed (the feed) is never asked for a blob."""
    url, out, trusted, requests = feed
    a = _seeder(tmp_path, url, trusted, requests)
    try:
        blob_requests = sum("/KETANG/blobs/" in r for r in requests)
        s = settings_for(tmp_path / "b", trusted, feeds=[url], windows=["01:00-02:00"])
        b = SyncService(s, Library(s.device.data_dir), clock=Clock(datetime(2026, 11, 23, 14)),
                        session_settings={"urlseed_wait_retry": 1}, dev_id="bbb")
        b.peer_source = lambda: [_peer("http://127.0.0.1:9/", "aaa", a.listen_port,
                                       {"test-channel": 1})]
        from appliance.sync.feed import hand_to_sync
        hand_to_sync(s.device.data_dir, trusted, out)  # the metadata, from a drive
        b.start()
        try:
            wait_for(lambda: b.library.active_version("test-channel") == 1, 60,
                     "B to take v1 from A outside its window")
            wait_for(lambda: sync_summary(s)["releases"]
                     and sync_summary(s)["releases"][0]["state"] == "seeding", 10, "status")
            rel = sync_summary(s)["releases"][0]
            assert rel["bytes_lan"] >= 0.9 * rel["needed_bytes"] > 0  # counted per block
            assert rel["bytes_mirror"] == 0
            # Read at B's (fake) time: the wall clock may be inside 01:00-02:00.
            assert sync_summary(s, now=datetime(2026, 11, 23, 14))["window"]["open"] is False
        finally:
            b.close()
        assert sum("/KETANG/blobs/" in r for r in requests) == blob_requests
    finally:
        a.close()


def test_a_device_that_is_not_the_hub_uses_its_web_seed_after_a_lan_stall(tmp_path, feed):  # noqa: F811, E501
    """A hub (a lower id) answers but has nothing to give: after sync.lan_stall_seconds
    the device's web seed runs and the release completes."""
    url, out, trusted, requests = feed
    _device_feed(tmp_path / "hub", {**GOOD, "channels": {}, "fetching": {}})
    s = settings_for(tmp_path, trusted, lan_stall_seconds=4, hub_timeout=4)
    from appliance.sync.feed import hand_to_sync
    hand_to_sync(s.device.data_dir, trusted, out)
    with web_seed(tmp_path / "hub") as (hub_url, _):
        b = SyncService(s, Library(s.device.data_dir), dev_id="bbb",
                        session_settings={"urlseed_wait_retry": 1})
        b.peer_source = lambda: [_peer(hub_url)]
        b.start()
        try:
            wait_for(lambda: sync_summary(s)["township"]["hub"] == "aaa", 10, "the hub")
            time.sleep(1.5)
            assert not any("/KETANG/blobs/" in r for r in requests)
            rel = sync_summary(s)["releases"][0]
            assert rel["web_seeds"] and rel["web_seeds"][0]["state"] == "held"
            wait_for(lambda: b.library.active_version("test-channel") == 1, 60,
                     "the web seed after the stall")
            assert any("/KETANG/blobs/" in r for r in requests)
            wait_for(lambda: sync_summary(s)["releases"][0]["state"] == "seeding", 10,
                     "the status file")
            rel = sync_summary(s)["releases"][0]
            assert rel["bytes_mirror"] >= 0.9 * rel["needed_bytes"] > 0, rel
        finally:
            b.close()


def test_lan_peers_have_their_own_peer_class(tmp_path, publisher_key):
    s = settings_for(tmp_path, publisher_key[1], lan_rate_kbps=80_000, upload_rate_kbps=100)
    svc = start(s)
    try:
        ses = svc.session
        assert ses is not None
        classes = [ses.get_peer_class(c) for c in range(3, 5)]
        lan = next(c for c in classes if c["label"] == "lan")
        assert lan["upload_limit"] == lan["download_limit"] == 80_000 * 1000 // 8
        assert lan["connection_limit_factor"] == 100
        assert ses.get_settings()["upload_rate_limit"] == 100 * 1000 // 8
        assert ses.get_settings()["urlseed_max_request_bytes"] <= 4 * 1024 * 1024
    finally:
        svc.close()


# -- neighbours announce what they fetch -------------------------------------------------


def test_a_fetch_is_announced_by_zeroconf_at_once(tmp_path):
    """The sync service's txt_fields ride on the zeroconf record: a neighbour hears of a
    fetch within a second or two of refresh_now (multicast on 127.0.0.1 only), not at
    the next refresh, and its on_change hook is called with it."""
    from appliance.discovery import REFRESH_SECONDS, Discovery

    fields: dict[str, str] = {}
    common = {"port": 1, "apps_port": None, "interfaces": ["127.0.0.1"], "host": "127.0.0.1"}
    a = Discovery(name="Ketang A", dev_id="aaa", library=Library(tmp_path / "a"),
                  txt_source=lambda: dict(fields), **common)
    b = Discovery(name="Ketang B", dev_id="bbb", library=Library(tmp_path / "b"), **common)
    seen: list[dict] = []
    b.on_change = seen.append
    a.start()
    b.start()
    try:
        wait_for(lambda: any(p["id"] == "aaa" for p in b.peers()), 20, "B to see A")
        assert next(p for p in b.peers() if p["id"] == "aaa")["fetching"] == {}
        fields["fetch.test-channel"] = "2"
        asked = time.monotonic()
        a.refresh_now()
        wait_for(lambda: any(p["fetching"] == {"test-channel": 2} for p in b.peers()),
                 REFRESH_SECONDS - 2, "B to hear that A fetches v2")
        assert time.monotonic() - asked < REFRESH_SECONDS - 2
        assert seen and seen[-1]["fetching"] == {"test-channel": 2}
    finally:
        b.close()
        a.close()


def test_a_neighbour_that_changes_is_asked_at_once(tmp_path, publisher_key):
    """neighbour_changed (zeroconf saw a record change) makes the service ask the
    neighbours' feeds within about a second, not at the next probe (5 s here)."""
    _device_feed(tmp_path / "n", {**GOOD, "fetching": {}})
    s = settings_for(tmp_path, publisher_key[1], hub_timeout=20)
    with web_seed(tmp_path / "n") as (url, _):
        svc = SyncService(s, Library(s.device.data_dir), dev_id="bbb")
        svc.peer_source = lambda: [_peer(url)]
        announced: list[dict] = []
        svc.on_announce = lambda: announced.append(svc.txt_fields())
        svc.start()
        try:
            wait_for(lambda: "aaa" in svc.neighbours and svc.neighbours["aaa"].feed, 10,
                     "the first probe")
            assert svc.probe_interval == 5
            time.sleep(0.5)
            _device_feed(tmp_path / "n", {**GOOD, "fetching": {"test-channel": 3}})
            asked = time.monotonic()
            svc.neighbour_changed({"id": "aaa"})
            wait_for(lambda: svc.neighbours["aaa"].feed.fetching == {"test-channel": 3}, 4,
                     "the neighbour to be asked again")
            assert time.monotonic() - asked < 3.0
            assert svc.txt_fields() == {} and announced == []  # it fetches nothing itself
        finally:
            svc.close()
