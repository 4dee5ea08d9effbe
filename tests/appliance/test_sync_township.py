"""A small township for real: 3 schools on one bridged LAN in network namespaces, each
behind its own emulated 4 Mbit/s, 600 ms satellite uplink to one mirror
(tests/support/township.py).

All on v1; v2 is published; the elected hub fetches the signed metadata over its
uplink, the others from it over the LAN; the delta's pieces are split between the
schools' uplinks (each fetches its share from the mirror, the rest from the others over
the LAN): the mirror sends about the delta once, well under N × delta. Then the hub is
killed (SIGKILL, no zeroconf goodbye): the next device takes over within the hub
timeout and fetches v3 with the school left.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from appliance.sync.feed import write_feed_index
from content_cache.library import Library
from content_cache.publisher import publish

from ..helpers import KETANG, make_source, wait_for
from ..support import needs
from ..support.township import Township, give_release, missing_tools

pytestmark = pytest.mark.slow

N = 3
CHANNEL = "test-channel"
HUB_TIMEOUT = 6


def _publish(src, version, key, out, changed: int, size: int) -> None:
    for i, video in enumerate(sorted((src / "media").glob("*.mp4"))):
        if version == 1 or i < changed:
            video.write_bytes(os.urandom(size))
    publish(src, CHANNEL, version, key, out)
    write_feed_index(out, web_seed=True)


def _hubs(t: Township, schools) -> set[str]:
    return {(t.status(i).get("township") or {}).get("hub", "") for i in schools}


def test_township_takes_the_delta_from_its_hub_and_survives_the_hub(tmp_path, publisher_key):
    needs.require(missing_tools())
    pair, trusted = publisher_key
    src = make_source(tmp_path / "src", lessons=6)
    out = tmp_path / "out"
    size = 600_000
    _publish(src, 1, pair.private_path, out, 6, size)
    with Township(tmp_path / "town", N) as t:
        t.start_mirror(out)
        for i in range(N):
            t.school_config(i, trusted, hub_timeout=HUB_TIMEOUT, lan_stall_seconds=40,
                            poll_interval=2)
            give_release(t.data_dir(i), out, CHANNEL, 1, trusted)
            t.start_school(i)
        wait_for(lambda: _hubs(t, range(N)) == {"school-00"}, 60,
                 "every school to take school-00 for the hub")
        assert t.status(0)["township"]["hub_is_self"]
        assert not t.status(1)["township"]["uses_uplink"]

        # v2: two videos changed (1.2 MB of delta).
        before = t.mirror_egress()
        _publish(src, 2, pair.private_path, out, 2, size)
        delta = 2 * size
        started = time.monotonic()
        wait_for(lambda: all(Library(t.data_dir(i)).active_version(CHANNEL) == 2
                             for i in range(N)), 120, "every school to activate v2")
        took = time.monotonic() - started
        egress = t.mirror_egress() - before
        # Each school alone would have taken the delta from the mirror: N × delta.
        print(f"township v2: mirror sent {egress / delta:.2f} x delta, all on v2 in {took:.0f} s")
        assert egress < 1.6 * delta, (egress, delta, took)
        wait_for(lambda: all(r.get("state") == "seeding" for i in range(N)
                             for r in t.status(i).get("releases", []) if r["version"] == 2),
                 20, "status files to say seeding")
        rels = [next(r for r in t.status(i)["releases"] if r["version"] == 2)
                for i in range(N)]
        # Each piece from the mirror about once (over whichever school's uplink), the
        # rest of what each school lacked from its neighbours.
        assert sum(r["bytes_mirror"] for r in rels) < 1.6 * delta, rels
        assert sum(r["bytes_lan"] for r in rels) >= (N - 1.6) * delta * 0.9, rels
        for rel in rels[1:]:
            assert "/sync/feed/" in rel["source"]  # metadata from a neighbour too
        cli = subprocess.run([*KETANG, "--config", str(t.work / "school01/ketang.toml"),
                              "sync", "status"], capture_output=True, text=True, check=True)
        assert "枢纽：Ketang school 00（school-00）" in cli.stdout, cli.stdout
        assert "Hub: Ketang school 00 (school-00)" in cli.stdout
        assert "来自局域网" in cli.stdout and "From the LAN" in cli.stdout

        # The hub dies without a goodbye: school-01 takes over within the bound.
        t.kill_school(0)
        killed = time.monotonic()
        wait_for(lambda: _hubs(t, range(1, N)) == {"school-01"}, HUB_TIMEOUT + 15,
                 "school-01 to take over as hub")
        takeover = time.monotonic() - killed
        assert takeover <= HUB_TIMEOUT + 2 * max(1.0, HUB_TIMEOUT / 4) + 3, takeover
        assert t.status(1)["township"]["hub_is_self"]

        before = t.mirror_egress()
        _publish(src, 3, pair.private_path, out, 2, size)
        wait_for(lambda: all(Library(t.data_dir(i)).active_version(CHANNEL) == 3
                             for i in range(1, N)), 120, "the others to activate v3")
        egress = t.mirror_egress() - before
        print(f"township v3 (hub killed): mirror sent {egress / delta:.2f} x delta")
        assert egress < 1.6 * delta, (egress, delta)
        wait_for(lambda: any(r["version"] == 3 and r["state"] == "seeding"
                             for r in t.status(2).get("releases", [])), 60, "the status file")
        rels = [next(r for r in t.status(i)["releases"] if r["version"] == 3)
                for i in range(1, N)]
        assert sum(r["bytes_lan"] for r in rels) >= (N - 1 - 1.6) * delta * 0.9, rels
