"""The link emulator itself, and a web-seed download that survives repeated drops."""

from __future__ import annotations

import os
import time
import urllib.request

import pytest

from content_cache.library import Library
from content_cache.transfer import ReleaseTransfer, make_session

from ..support.linkemu import LinkEmulator
from ..support.webseed import web_seed
from .test_transfer import publish_big, verified


def test_link_caps_rate_adds_latency_and_counts_bytes(tmp_path):
    (tmp_path / "f").write_bytes(os.urandom(300_000))
    with web_seed(tmp_path) as (url, _):
        port = int(url.rsplit(":", 1)[1].strip("/"))
        with LinkEmulator(("127.0.0.1", port), rate=1_000_000, latency=0.2) as link:
            t0 = time.monotonic()
            body = urllib.request.urlopen(f"http://127.0.0.1:{link.port}/f", timeout=10).read()
            took = time.monotonic() - t0
    assert body == (tmp_path / "f").read_bytes()
    assert took >= 0.3 + 0.4  # 300 kB at 1 MB/s, plus a round trip each way
    assert link.bytes_down >= 300_000 and link.bytes_up > 0


def test_link_refuses_non_loopback_targets():
    with pytest.raises(ValueError):
        LinkEmulator(("192.0.2.1", 80))


@pytest.mark.slow
def test_web_seed_download_survives_ten_drops(tmp_path, publisher_key):
    pair, trusted = publisher_key
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with web_seed(mirror) as (seed_url, _):
        seed_port = int(seed_url.rsplit(":", 1)[1].strip("/"))
        link = LinkEmulator(("127.0.0.1", seed_port), rate=600_000, latency=0.05,
                            drop_every=1.0, outage=0.2, max_drops=10)
        # Published before the link starts dropping, so every drop falls in the download.
        out = publish_big(tmp_path, pair.private_path, lessons=8, size=600_000,
                          web_seeds=[f"http://127.0.0.1:{link.port}/"])
        os.rename(out / "KETANG", mirror / "KETANG")
        manifest, data, sig, torrent = verified(mirror, trusted)
        lib = Library(tmp_path / "device")
        with link:
            ses = make_session(extra={"urlseed_wait_retry": 1})
            status = ReleaseTransfer(ses, lib, manifest, data, sig, torrent).run(timeout=120)
    assert status.activated
    assert sorted(status.fetched) == sorted(manifest.blobs())
    assert link.drops == 10 and link.cuts >= 8  # outages that cut a live download
    assert link.connections > 5
    needed = sum(manifest.blobs().values())
    # Bytes the link carried ÷ bytes of blobs: HTTP headers and re-sent partial
    # pieces after each drop are the overhead.
    ratio = link.bytes_down / needed
    print(f"{link.cuts} cuts; link carried {link.bytes_down} B for {needed} B: {ratio:.3f}")
    assert 1.0 <= ratio < 1.5
