"""`ketang serve` with sync enabled: a feed and web seed on 127.0.0.1, then a LAN neighbour.

Device A pulls a release from an HTTP feed (the feed's server is also the web seed).
Then the feed goes away and device B, with no feed at all, finds A over zeroconf
(on 127.0.0.1), fetches the signed release from A's own feed and its blobs from A's
libtorrent session.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from appliance.config import load_settings
from appliance.sync.feed import write_feed_index
from appliance.sync.status import sync_summary
from content_cache.blobstore import sha256_file
from content_cache.library import Library

from ..content_cache.test_transfer import publish_big
from ..helpers import KETANG, http, http_json, running_server, write_config
from ..support.webseed import web_seed
from .test_sync_service import wait_for

ZEROCONF = 'enabled = true\ninterfaces = ["127.0.0.1"]'


def device_config(tmp_path, name, trusted, feeds=()):
    data = tmp_path / name / "data"
    (tmp_path / name).mkdir()
    config = write_config(tmp_path / name / "ketang.toml", data, trusted, zeroconf=ZEROCONF)
    with open(config, "a", encoding="utf-8") as f:
        f.write(f'\n[sync]\nenabled = true\nfeeds = {json.dumps(list(feeds))}\n'
                'listen_interfaces = "127.0.0.1:0"\nlsd = false\nresume_interval = 2\n'
                f'status_file = "{tmp_path / name / "sync.json"}"\n')
    with open(config, "r+", encoding="utf-8") as f:
        text = f.read().replace("[device]\n", f'[device]\nname = "Ketang {name}"\n'
                                f'id = "dev-{name}"\n')
        f.seek(0)
        f.write(text)
    return config, data


@pytest.mark.slow
def test_serve_syncs_from_a_feed_then_a_neighbour_syncs_from_it(tmp_path, publisher_key):
    pair, trusted = publisher_key
    out = tmp_path / "out"
    out.mkdir()
    config_a, data_a = device_config(tmp_path, "a", trusted)
    config_b, data_b = device_config(tmp_path, "b", trusted)
    with web_seed(out) as (feed_url, requests):
        publish_big(tmp_path, pair.private_path, lessons=4, size=300_000)
        write_feed_index(out)
        config_a.write_text(config_a.read_text().replace("feeds = []",
                                                         f'feeds = ["{feed_url}"]'))
        with running_server(config_a) as url_a:
            settings_a = load_settings(config_a)
            wait_for(lambda: Library(data_a).active_version("test-channel") == 1, 60,
                     "device A to activate v1 from the feed")
            status, doc = http_json(url_a + "/api/v1/channels")
            assert status == 200 and "test-channel" in json.dumps(doc)
            # A is now a feed for its neighbours.
            status, doc = http_json(url_a + "/sync/feed/KETANG/feed.json")
            assert doc["channels"] == {"test-channel": 1}
            status, _, body = http(url_a + "/sync/feed/KETANG/releases/test-channel/1/"
                                   "release.torrent")
            assert status == 200 and body.startswith(b"d")
            out_cli = subprocess.run([*KETANG, "--config", str(config_a), "sync", "status",
                                      "--json"], capture_output=True, text=True, check=True)
            summary = json.loads(out_cli.stdout)
            assert summary["running"] and summary["feeds"][0]["ok"]
            assert summary["releases"][0]["channel"] == "test-channel"
            assert summary["listen_port"] > 0
            assert any("/KETANG/blobs/" in r for r in requests)

    # The feed server is gone (B cannot use it); A is restarted and seeds v1 again.
    with running_server(config_a) as url_a, running_server(config_b):
        wait_for(lambda: Library(data_b).active_version("test-channel") == 1, 90,
                 "device B to activate v1 from its neighbour A")
        settings_b = load_settings(config_b)
        wait_for(lambda: sync_summary(settings_b)["releases"][0]["state"] == "seeding", 10,
                 "B's status file to say so")
        rel = sync_summary(settings_b)["releases"][0]
        assert rel["source"].startswith("http://127.0.0.1:") and "/sync/feed/" in rel["source"]
        assert rel["needed_bytes"] == rel["done_bytes"] > 1_000_000
        blobs = [p for p in (data_b / "blobs/sha256").rglob("*") if p.is_file()]
        assert len(blobs) == 8
        for p in blobs:
            assert sha256_file(p) == p.name
    assert sync_summary(settings_b)["state"] == "off"
    assert json.loads(settings_b.sync.status_file.read_text())["state"] == "stopped"
    assert sync_summary(settings_a)["state"] == "off"
    assert (data_b / "sync/test-channel/1/resume.dat").is_file()
